#include "universe.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "version.h"

/* Grow ARRAY (with COUNT used and CAPACITY allocated) to hold one more element. */
#define RESERVE(array, count, capacity)                                                                                \
	do {                                                                                                           \
		if ((count) == (capacity)) {                                                                           \
			(capacity) = (capacity) ? (capacity)*2 : 256;                                                  \
			(array) = xreallocarray((array), (capacity), sizeof(*(array)));                                \
		}                                                                                                      \
	} while (0)

static uint32_t add_role(struct universe *u, uint32_t name_id, const char *name)
{
	RESERVE(u->roles, u->role_count, u->role_capacity);
	struct role *r = &u->roles[u->role_count];
	r->name_id = name_id;
	r->name = name;
	r->cand_first = u->candidate_count;
	r->cand_count = 0;
	return u->role_count++;
}

/* Candidates of one role must be added together, right after the role. */
static void add_candidate(struct universe *u, uint32_t role, uint32_t impl)
{
	RESERVE(u->candidates, u->candidate_count, u->candidate_capacity);
	u->candidates[u->candidate_count++] = impl;
	u->roles[role].cand_count++;
}

static uint32_t add_impl(struct universe *u, uint32_t role, uint32_t package)
{
	RESERVE(u->impls, u->impl_count, u->impl_capacity);
	struct impl *im = &u->impls[u->impl_count];
	memset(im, 0, sizeof(*im));
	im->role = role;
	im->package = package;
	return u->impl_count++;
}

/* Close a role's candidate list with its dummy. */
static void add_dummy(struct universe *u, uint32_t role)
{
	uint32_t impl = add_impl(u, role, NO_ID);

	u->impls[impl].dummy = true;
	add_candidate(u, role, impl);
	RESERVE(u->dummies, u->dummy_count, u->dummy_capacity);
	u->dummies[u->dummy_count++] = impl;
}

uint32_t universe_role_for_name(struct universe *u, const char *name)
{
	const struct package_name *n = repo_find_name(u->repo, name);

	if (n)
		return u->role_of_name[n - u->repo->names];
	for (uint32_t i = 0; i < u->unknown_count; i++)
		if (strcmp(u->roles[u->unknown_roles[i]].name, name) == 0)
			return u->unknown_roles[i];

	uint32_t role = add_role(u, NO_ID, arena_strdup(&u->arena, name));
	add_dummy(u, role);
	RESERVE(u->unknown_roles, u->unknown_count, u->unknown_capacity);
	u->unknown_roles[u->unknown_count++] = role;
	return role;
}

/* Store literals and constraints. */

static void store_lit(struct constraint_store *s, uint32_t lit)
{
	RESERVE(s->lits, s->lit_count, s->lit_capacity);
	s->lits[s->lit_count++] = lit;
}

static void open_clause(struct constraint_store *s)
{
	/* clause_start has one more entry than there are clauses: the end of the last one. */
	if (s->clause_count + 2 > s->clause_capacity) {
		s->clause_capacity = s->clause_capacity ? s->clause_capacity * 2 : 256;
		s->clause_start = xreallocarray(s->clause_start, s->clause_capacity, sizeof(*s->clause_start));
	}
	s->clause_start[s->clause_count] = s->lit_count;
}

static void close_clause(struct constraint_store *s)
{
	s->clause_count++;
	s->clause_start[s->clause_count] = s->lit_count;
}

static void open_amo(struct constraint_store *s)
{
	if (s->amo_count + 2 > s->amo_capacity) {
		s->amo_capacity = s->amo_capacity ? s->amo_capacity * 2 : 256;
		s->amo_start = xreallocarray(s->amo_start, s->amo_capacity, sizeof(*s->amo_start));
	}
	s->amo_start[s->amo_count] = s->amo_var_count;
}

static void amo_add(struct constraint_store *s, uint32_t var)
{
	RESERVE(s->amo_vars, s->amo_var_count, s->amo_var_capacity);
	s->amo_vars[s->amo_var_count++] = var;
}

static void close_amo(struct constraint_store *s)
{
	s->amo_count++;
	s->amo_start[s->amo_count] = s->amo_var_count;
}

bool universe_impl_meets(const struct universe *u, uint32_t impl, const struct requirement *r)
{
	const struct package *p = universe_impl_package(u, impl);

	/* A conflict without a version formula rules out every version (opam-0install 0.5). */
	if (!r->restriction)
		return r->importance == IMPORTANCE_ESSENTIAL || !p;
	if (!p)
		return true;
	return vformula_check(r->restriction, p->version);
}

/*
 * Essential requirement: choosing IMPL means choosing a candidate of the role that passes the
 * restriction. Restriction: choosing IMPL rules out every candidate that fails it.
 */
void universe_encode_requirements(struct universe *u, uint32_t impl, uint32_t first, uint32_t count)
{
	struct constraint_store *s = &u->store;

	u->impls[impl].clause_first = s->clause_count;
	u->impls[impl].amo_first = s->amo_count;
	for (uint32_t i = first; i < first + count; i++) {
		const struct requirement *r = &u->requirements[i];
		const struct role *role = &u->roles[r->role];

		if (r->importance == IMPORTANCE_ESSENTIAL) {
			open_clause(s);
			store_lit(s, 2 * impl + 1);
			for (uint32_t c = 0; c < role->cand_count; c++) {
				uint32_t cand = u->candidates[role->cand_first + c];
				if (universe_impl_meets(u, cand, r))
					store_lit(s, 2 * cand);
			}
			close_clause(s);
			continue;
		}

		bool any_fail = false, fails_itself = false;
		for (uint32_t c = 0; c < role->cand_count; c++) {
			uint32_t cand = u->candidates[role->cand_first + c];
			if (!universe_impl_meets(u, cand, r)) {
				any_fail = true;
				fails_itself |= cand == impl;
			}
		}
		/* A package that conflicts with itself can never be chosen, as in 0install. */
		if (fails_itself) {
			open_clause(s);
			store_lit(s, 2 * impl + 1);
			close_clause(s);
			continue;
		}
		if (!any_fail)
			continue;
		open_amo(s);
		amo_add(s, impl);
		for (uint32_t c = 0; c < role->cand_count; c++) {
			uint32_t cand = u->candidates[role->cand_first + c];
			if (!universe_impl_meets(u, cand, r))
				amo_add(s, cand);
		}
		close_amo(s);
	}
	u->impls[impl].clause_end = s->clause_count;
	u->impls[impl].amo_end = s->amo_count;
}

/* Requirement compilation: opam-0install's list_deps. */

struct compile_ctx {
	struct universe *u;
	uint8_t importance;
	/* Requirements are collected here first, because compiling an OR appends other requirements. */
	struct requirement *items;
	uint32_t count, capacity;
};

static void push_requirement(struct compile_ctx *ctx, uint32_t role, const struct vformula *restriction,
			     const struct formula *source, uint8_t importance)
{
	RESERVE(ctx->items, ctx->count, ctx->capacity);
	struct requirement *r = &ctx->items[ctx->count++];
	r->role = role;
	r->importance = importance;
	r->restriction = restriction && restriction->kind != VFORMULA_EMPTY ? restriction : NULL;
	r->source = source;
}

static uint32_t commit_requirements(struct universe *u, struct compile_ctx *ctx, uint32_t *count)
{
	uint32_t first = u->requirement_count;

	for (uint32_t i = 0; i < ctx->count; i++) {
		RESERVE(u->requirements, u->requirement_count, u->requirement_capacity);
		u->requirements[u->requirement_count++] = ctx->items[i];
	}
	*count = ctx->count;
	free(ctx->items);
	return first;
}

static void list_deps(struct compile_ctx *ctx, const struct formula *f);

/* Flatten a chain of ORs into its alternatives, left to right. Past LIMIT, the rest stays one nested OR. */
static void collect_alternatives(const struct formula *f, const struct formula **out, uint32_t *count, uint32_t limit)
{
	if (f->kind == FORMULA_OR && *count + 2 <= limit) {
		collect_alternatives(f->lhs, out, count, limit);
		collect_alternatives(f->rhs, out, count, limit);
		return;
	}
	out[(*count)++] = f;
}

/* One side of an OR becomes a virtual candidate whose requirements are that side's. */
static uint32_t virtual_impl(struct compile_ctx *outer, uint32_t role, const struct formula *side)
{
	struct compile_ctx inner = { outer->u, outer->importance, NULL, 0, 0 };

	list_deps(&inner, side);
	uint32_t impl = add_impl(outer->u, role, NO_ID);
	struct impl *im = &outer->u->impls[impl];
	im->req_first = commit_requirements(outer->u, &inner, &im->req_count);
	return impl;
}

static void list_deps(struct compile_ctx *ctx, const struct formula *f)
{
	if (!f)
		return;

	switch (f->kind) {
	case FORMULA_EMPTY: return;
	case FORMULA_ATOM:
		push_requirement(ctx, universe_role_for_name(ctx->u, f->name), f->constraint, f, ctx->importance);
		return;
	case FORMULA_AND:
		list_deps(ctx, f->lhs);
		list_deps(ctx, f->rhs);
		return;
	case FORMULA_OR: {
		/*
		 * opam-0install gives a chain `a | b | c` one virtual role whose candidates are the
		 * alternatives, left to right. The role must exist before its candidates, whose ids
		 * follow it in the candidate array, so the alternatives are compiled first.
		 */
		struct universe *u = ctx->u;
		const struct formula *alternatives[64];
		uint32_t count = 0;
		collect_alternatives(f, alternatives, &count, ARRAY_LEN(alternatives));
		uint32_t impls[64];
		for (uint32_t i = 0; i < count; i++)
			impls[i] = virtual_impl(ctx, NO_ID, alternatives[i]);
		uint32_t role = add_role(u, NO_ID, NULL);
		for (uint32_t i = 0; i < count; i++) {
			u->impls[impls[i]].role = role;
			add_candidate(u, role, impls[i]);
		}
		add_dummy(u, role);
		/* Essential even inside conflicts: a restriction must still be applied through the OR. */
		push_requirement(ctx, role, NULL, NULL, IMPORTANCE_ESSENTIAL);
		return;
	}
	}
}

/* Negate a version formula: AND and OR swap, each comparison is inverted (OpamFormula.neg). */
struct vformula *vformula_negate(struct arena *a, const struct vformula *f)
{
	if (!f)
		return NULL;

	struct vformula *n = arena_alloc(a, sizeof(*n));
	*n = *f;
	switch (f->kind) {
	case VFORMULA_EMPTY: break;
	case VFORMULA_ATOM:
		switch (f->op) {
		case RELOP_EQ: n->op = RELOP_NEQ; break;
		case RELOP_NEQ: n->op = RELOP_EQ; break;
		case RELOP_GEQ: n->op = RELOP_LT; break;
		case RELOP_LT: n->op = RELOP_GEQ; break;
		case RELOP_GT: n->op = RELOP_LEQ; break;
		case RELOP_LEQ: n->op = RELOP_GT; break;
		}
		break;
	case VFORMULA_AND:
	case VFORMULA_OR:
		n->kind = f->kind == VFORMULA_AND ? VFORMULA_OR : VFORMULA_AND;
		n->lhs = vformula_negate(a, f->lhs);
		n->rhs = vformula_negate(a, f->rhs);
		break;
	}
	return n;
}

/* opam-0install turns `conflicts` into restrictions: "conflicts with X {< 1}" means "X must be >= 1". */
static struct formula *negate_formula(struct arena *a, const struct formula *f)
{
	if (!f)
		return NULL;

	struct formula *n = arena_alloc(a, sizeof(*n));
	*n = *f;
	switch (f->kind) {
	case FORMULA_EMPTY: break;
	case FORMULA_ATOM: n->constraint = vformula_negate(a, f->constraint); break;
	case FORMULA_AND:
	case FORMULA_OR:
		n->kind = f->kind == FORMULA_AND ? FORMULA_OR : FORMULA_AND;
		n->lhs = negate_formula(a, f->lhs);
		n->rhs = negate_formula(a, f->rhs);
		break;
	}
	return n;
}

uint32_t universe_compile_requirements(struct universe *u, const struct package *p, struct dependency_flags flags,
				       uint32_t *count)
{
	struct variables locals = { 0 };

	variables_set_bool(&locals, "build", true);
	variables_set_bool(&locals, "post", true);
	variables_set_bool(&locals, "with-test", flags.with_test);
	variables_set_bool(&locals, "with-doc", flags.with_doc);
	variables_set_bool(&locals, "with-dev-setup", false);
	variables_set_bool(&locals, "dev", version_compare(p->version, "dev") == 0);

	struct filter_env env = { u->globals, p->name, p->version, &locals };
	struct formula *depends = formula_reduce(p->depends, FORMULA_CONJUNCTION, &env, &u->arena);
	struct formula *conflicts = formula_reduce(p->conflicts, FORMULA_DISJUNCTION, &env, &u->arena);
	variables_release(&locals);

	struct compile_ctx ctx = { u, IMPORTANCE_ESSENTIAL, NULL, 0, 0 };
	list_deps(&ctx, depends);
	ctx.importance = IMPORTANCE_RESTRICTS;
	list_deps(&ctx, negate_formula(&u->arena, conflicts));
	return commit_requirements(u, &ctx, count);
}

uint32_t universe_add_root(struct universe *u, const uint32_t *roles, uint32_t count)
{
	uint32_t role = add_role(u, NO_ID, NULL);
	uint32_t impl = add_impl(u, role, NO_ID);
	add_candidate(u, role, impl);
	add_dummy(u, role);

	struct impl *im = &u->impls[impl];
	im->req_first = u->requirement_count;
	im->req_count = count;
	for (uint32_t i = 0; i < count; i++) {
		RESERVE(u->requirements, u->requirement_count, u->requirement_capacity);
		struct requirement *r = &u->requirements[u->requirement_count++];
		memset(r, 0, sizeof(*r));
		r->role = roles[i];
		r->importance = IMPORTANCE_ESSENTIAL;
	}
	universe_encode_requirements(u, impl, im->req_first, im->req_count);

	/* "Need root": the root's only candidate must be selected. */
	open_clause(&u->store);
	store_lit(&u->store, 2 * impl);
	close_clause(&u->store);
	return impl;
}

/* Order of candidates: not avoid-version before avoid-version, then newest first. */
static int compare_preference(const struct universe *u, uint32_t a, uint32_t b)
{
	const struct package *pa = &u->repo->packages[a], *pb = &u->repo->packages[b];
	bool avoid_a = package_has_flag(pa, PACKAGE_FLAG_AVOID_VERSION);
	bool avoid_b = package_has_flag(pb, PACKAGE_FLAG_AVOID_VERSION);

	if (avoid_a != avoid_b)
		return avoid_a ? 1 : -1;
	return version_compare(pb->version, pa->version);
}

/* Create the role of one package name with its candidates, as day10's directory context lists them. */
static void add_name_role(struct universe *u, uint32_t name_id, struct arena *scratch)
{
	const struct repo_index *idx = u->repo;
	const struct package_name *n = &idx->names[name_id];
	uint32_t role = add_role(u, name_id, n->name);
	uint32_t *order = xcalloc(n->count ? n->count : 1, sizeof(*order));
	uint32_t count = 0;
	bool all_avoid = true;

	u->role_of_name[name_id] = role;
	for (uint32_t i = 0; i < n->count; i++) {
		uint32_t p = n->first + i;
		u->available[p] = package_is_available(&idx->packages[p], u->globals, scratch);
		if (!u->available[p])
			continue;
		order[count++] = p;
		all_avoid &= package_has_flag(&idx->packages[p], PACKAGE_FLAG_AVOID_VERSION);
	}

	/* A package whose available versions are all avoid-version gets no candidates at all. */
	if (all_avoid)
		count = 0;

	/* Insertion sort: packages have few versions, and versions arrive oldest first. */
	for (uint32_t i = 1; i < count; i++) {
		uint32_t p = order[i], j = i;
		while (j > 0 && compare_preference(u, order[j - 1], p) > 0) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = p;
	}

	for (uint32_t i = 0; i < count; i++) {
		uint32_t impl = add_impl(u, role, order[i]);
		u->impl_of_package[order[i]] = impl;
		add_candidate(u, role, impl);
	}
	add_dummy(u, role);
	free(order);
}

/* Conflict classes: at most one selected candidate among all that declare the same class. */
static void encode_conflict_classes(struct universe *u)
{
	struct class_member {
		const char *name;
		uint32_t impl;
	} *members = NULL;
	uint32_t count = 0, capacity = 0;

	for (uint32_t i = 0; i < u->impl_count; i++) {
		const struct package *p = universe_impl_package(u, i);
		for (uint32_t c = 0; p && c < p->conflict_class_count; c++) {
			RESERVE(members, count, capacity);
			members[count].name = p->conflict_class[c];
			members[count].impl = i;
			count++;
		}
	}

	u->amo_class_first = u->store.amo_count;
	u->amo_class_name = xcalloc(count ? count : 1, sizeof(*u->amo_class_name));
	for (uint32_t i = 0; i < count; i++) {
		if (!members[i].name)
			continue;
		open_amo(&u->store);
		const char *name = members[i].name;
		u->amo_class_name[u->store.amo_count - u->amo_class_first] = name;
		for (uint32_t j = i; j < count; j++) {
			if (members[j].name && strcmp(members[j].name, name) == 0) {
				amo_add(&u->store, members[j].impl);
				members[j].name = NULL;
			}
		}
		close_amo(&u->store);
	}
	u->amo_class_end = u->store.amo_count;
	free(members);
}

void universe_build(struct universe *u, const struct repo_index *idx, const struct variables *globals)
{
	struct arena scratch = { 0 };

	memset(u, 0, sizeof(*u));
	u->repo = idx;
	u->globals = globals;
	u->impl_of_package = xcalloc(idx->package_count ? idx->package_count : 1, sizeof(*u->impl_of_package));
	u->available = xcalloc(idx->package_count ? idx->package_count : 1, sizeof(*u->available));
	u->role_of_name = xcalloc(idx->name_count ? idx->name_count : 1, sizeof(*u->role_of_name));
	for (uint32_t p = 0; p < idx->package_count; p++)
		u->impl_of_package[p] = NO_ID;

	/* Step 1: one role per package name, with its candidates in preference order. */
	for (uint32_t n = 0; n < idx->name_count; n++)
		add_name_role(u, n, &scratch);

	/* Step 2: each candidate's requirements, without with-test or with-doc (targets get theirs per solve). */
	uint32_t real_impls = u->impl_count;
	struct dependency_flags flags = { false, false };
	for (uint32_t i = 0; i < real_impls; i++) {
		const struct package *p = universe_impl_package(u, i);
		uint32_t count;
		if (!p)
			continue;
		uint32_t first = universe_compile_requirements(u, p, flags, &count);
		u->impls[i].req_first = first;
		u->impls[i].req_count = count;
	}

	/* Step 3: the constraints. One at-most-one per role, then every candidate's requirements. */
	for (uint32_t r = 0; r < u->role_count; r++) {
		const struct role *role = &u->roles[r];
		if (role->cand_count < 2)
			continue;
		open_amo(&u->store);
		for (uint32_t c = 0; c < role->cand_count; c++)
			amo_add(&u->store, u->candidates[role->cand_first + c]);
		close_amo(&u->store);
	}
	for (uint32_t i = 0; i < u->impl_count; i++)
		universe_encode_requirements(u, i, u->impls[i].req_first, u->impls[i].req_count);
	encode_conflict_classes(u);

	arena_release(&scratch);
}

/* Copy COUNT elements of SIZE bytes into a new array with room for at least one more. */
static void *clone_array(const void *src, uint32_t count, size_t size, uint32_t *capacity)
{
	*capacity = count + 2;
	void *dst = xcalloc(*capacity, size);
	/* SRC is NULL when nothing was ever stored, as for the clause starts of a repository without dependencies. */
	if (count && src)
		memcpy(dst, src, count * size);
	return dst;
}

void universe_clone(struct universe *dst, const struct universe *src)
{
	const struct constraint_store *s = &src->store;
	struct constraint_store *d = &dst->store;

	*dst = *src;
	memset(&dst->arena, 0, sizeof(dst->arena));
	dst->roles = clone_array(src->roles, src->role_count, sizeof(*src->roles), &dst->role_capacity);
	dst->candidates = clone_array(src->candidates, src->candidate_count, sizeof(uint32_t),
				      &dst->candidate_capacity);
	dst->impls = clone_array(src->impls, src->impl_count, sizeof(*src->impls), &dst->impl_capacity);
	dst->requirements = clone_array(src->requirements, src->requirement_count, sizeof(*src->requirements),
					&dst->requirement_capacity);
	dst->unknown_roles = clone_array(src->unknown_roles, src->unknown_count, sizeof(uint32_t),
					 &dst->unknown_capacity);
	dst->dummies = clone_array(src->dummies, src->dummy_count, sizeof(uint32_t), &dst->dummy_capacity);
	d->lits = clone_array(s->lits, s->lit_count, sizeof(uint32_t), &d->lit_capacity);
	d->clause_start = clone_array(s->clause_start, s->clause_count + 1, sizeof(uint32_t), &d->clause_capacity);
	d->amo_start = clone_array(s->amo_start, s->amo_count + 1, sizeof(uint32_t), &d->amo_capacity);
	d->amo_vars = clone_array(s->amo_vars, s->amo_var_count, sizeof(uint32_t), &d->amo_var_capacity);

	/* These stay shared and are never written after the build. */
	dst->impl_of_package = src->impl_of_package;
	dst->available = src->available;
	dst->role_of_name = src->role_of_name;
	dst->amo_class_name = src->amo_class_name;
}

void universe_mark(const struct universe *u, struct universe_mark *mark)
{
	mark->roles = u->role_count;
	mark->candidates = u->candidate_count;
	mark->impls = u->impl_count;
	mark->requirements = u->requirement_count;
	mark->unknowns = u->unknown_count;
	mark->dummies = u->dummy_count;
	mark->lits = u->store.lit_count;
	mark->clauses = u->store.clause_count;
	mark->amos = u->store.amo_count;
	mark->amo_vars = u->store.amo_var_count;
}

void universe_reset(struct universe *u, const struct universe_mark *mark)
{
	u->role_count = mark->roles;
	u->candidate_count = mark->candidates;
	u->impl_count = mark->impls;
	u->requirement_count = mark->requirements;
	u->unknown_count = mark->unknowns;
	u->dummy_count = mark->dummies;
	u->store.lit_count = mark->lits;
	u->store.clause_count = mark->clauses;
	u->store.amo_count = mark->amos;
	u->store.amo_var_count = mark->amo_vars;
}

static void release_store(struct constraint_store *s)
{
	free(s->lits);
	free(s->clause_start);
	free(s->amo_start);
	free(s->amo_vars);
}

/* A clone owns its arrays and arena but shares the tables universe_clone lists as shared. */
void universe_release_clone(struct universe *u)
{
	free(u->roles);
	free(u->candidates);
	free(u->impls);
	free(u->requirements);
	free(u->unknown_roles);
	free(u->dummies);
	release_store(&u->store);
	arena_release(&u->arena);
}

void universe_release(struct universe *u)
{
	universe_release_clone(u);
	free(u->impl_of_package);
	free(u->available);
	free(u->role_of_name);
	free(u->amo_class_name);
	memset(u, 0, sizeof(*u));
}
