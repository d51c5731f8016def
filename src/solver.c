#include "solver.h"

#include <stdlib.h>
#include <string.h>

#include "diagnose.h"
#include "util.h"
#include "version.h"

void solver_init(struct solver *s, const struct universe *shared)
{
	memset(s, 0, sizeof(*s));
	universe_clone(&s->u, shared);
	universe_mark(&s->u, &s->base);
	sat_init(&s->sat, &s->u);
}

void solver_release(struct solver *s)
{
	sat_release(&s->sat);
	universe_release_clone(&s->u);
	free(s->role_stamp);
	free(s->saved_impls);
	free(s->saved_ids);
	free(s->selected_by_name);
	memset(s, 0, sizeof(*s));
}

void solve_result_release(struct solve_result *r)
{
	free(r->packages);
	free(r->edge_start);
	free(r->edges);
	free(r->diagnostics);
	memset(r, 0, sizeof(*r));
}

/*
 * The decision walk of 0install's solver: from ROLE, follow the selected candidates' essential
 * requirements depth-first, in order, and return the most preferred undecided candidate of the
 * first role that has none selected. Restrictions are not followed: they say nothing about
 * wanting a package.
 */
static uint32_t find_undecided(struct solver *s, uint32_t role)
{
	const struct universe *u = &s->u;

	if (s->role_stamp[role] == s->stamp)
		return NO_ID;
	s->role_stamp[role] = s->stamp;

	const struct role *r = &u->roles[role];
	uint32_t selected = NO_ID, undecided = NO_ID;
	for (uint32_t c = 0; c < r->cand_count; c++) {
		uint32_t cand = u->candidates[r->cand_first + c];
		enum sat_value v = sat_var_value(&s->sat, cand);
		if (v == SAT_TRUE) {
			selected = cand;
			break;
		}
		if (v == SAT_UNDEF && undecided == NO_ID)
			undecided = cand;
	}
	if (selected == NO_ID)
		return undecided;

	const struct impl *im = &u->impls[selected];
	for (uint32_t i = 0; i < im->req_count; i++) {
		const struct requirement *req = &u->requirements[im->req_first + i];
		if (req->importance == IMPORTANCE_RESTRICTS)
			continue;
		uint32_t found = find_undecided(s, req->role);
		if (found != NO_ID)
			return found;
	}
	return NO_ID;
}

static uint32_t decide(void *ctx, const struct sat *sat)
{
	struct solver *s = ctx;
	(void)sat;

	if (s->role_stamp_capacity < s->u.role_count) {
		uint32_t old = s->role_stamp_capacity;
		s->role_stamp_capacity = s->u.role_count * 2;
		s->role_stamp = xreallocarray(s->role_stamp, s->role_stamp_capacity, sizeof(uint32_t));
		memset(s->role_stamp + old, 0, (s->role_stamp_capacity - old) * sizeof(uint32_t));
	}
	if (++s->stamp == 0) {
		memset(s->role_stamp, 0, s->role_stamp_capacity * sizeof(uint32_t));
		s->stamp = 1;
	}
	return find_undecided(s, s->u.impls[s->root].role);
}

static void save_impl(struct solver *s, uint32_t impl)
{
	s->saved_impls = xreallocarray(s->saved_impls, s->saved_count + 1, sizeof(*s->saved_impls));
	s->saved_ids = xreallocarray(s->saved_ids, s->saved_count + 1, sizeof(*s->saved_ids));
	s->saved_impls[s->saved_count] = s->u.impls[impl];
	s->saved_ids[s->saved_count] = impl;
	s->saved_count++;
}

/* Give a target candidate its with-test or with-doc requirements for this solve only. */
static void replace_requirements(struct solver *s, uint32_t impl, struct dependency_flags flags)
{
	struct universe *u = &s->u;
	struct impl *im = &u->impls[impl];

	save_impl(s, impl);
	for (uint32_t c = im->clause_first; c < im->clause_end; c++)
		sat_disable_clause(&s->sat, c);
	for (uint32_t a = im->amo_first; a < im->amo_end; a++)
		sat_disable_amo(&s->sat, a);

	uint32_t count, virtual_first = u->impl_count;
	uint32_t first = universe_compile_requirements(u, universe_impl_package(u, impl), flags, &count);
	im = &u->impls[impl];
	im->req_first = first;
	im->req_count = count;
	universe_encode_requirements(u, impl, first, count);

	/* Compiling ORs added virtual candidates, which need their own constraints. */
	for (uint32_t v = virtual_first; v < u->impl_count; v++)
		universe_encode_requirements(u, v, u->impls[v].req_first, u->impls[v].req_count);
}

/* Force false every candidate of ROLE whose version differs from VERSION (a user constraint `= VERSION`). */
static void pin_role(struct solver *s, uint32_t role, const char *version)
{
	const struct universe *u = &s->u;
	const struct role *r = &u->roles[role];

	for (uint32_t c = 0; c < r->cand_count; c++) {
		uint32_t cand = u->candidates[r->cand_first + c];
		const struct package *p = universe_impl_package(u, cand);
		if (p && version_compare(p->version, version) != 0)
			sat_assume_false(&s->sat, cand);
	}
}

/* The next byte of the string "NAME.VERSION" at position I, or 0 past its end. */
static unsigned char joined_byte(const struct package *p, size_t name_len, size_t i)
{
	if (i < name_len)
		return (unsigned char)p->name[i];
	if (i == name_len)
		return '.';
	return (unsigned char)p->version[i - name_len - 1];
}

/* Sort key of the solution list: the whole "name.version" string, byte by byte, as the reference tools print it. */
static int compare_package_strings(const void *a, const void *b, void *ctx)
{
	const struct repo_index *idx = ctx;
	const struct package *x = &idx->packages[*(const uint32_t *)a];
	const struct package *y = &idx->packages[*(const uint32_t *)b];
	size_t lx = strlen(x->name), ly = strlen(y->name);
	size_t total_x = lx + 1 + strlen(x->version), total_y = ly + 1 + strlen(y->version);

	for (size_t i = 0; i < total_x || i < total_y; i++) {
		int cx = i < total_x ? joined_byte(x, lx, i) : -1;
		int cy = i < total_y ? joined_byte(y, ly, i) : -1;
		if (cx != cy)
			return cx - cy;
	}
	return 0;
}

struct edge_list {
	uint32_t *items;
	uint32_t count, capacity;
};

static void edge_add(struct edge_list *l, uint32_t package)
{
	for (uint32_t i = 0; i < l->count; i++)
		if (l->items[i] == package)
			return;
	if (l->count == l->capacity) {
		l->capacity = l->capacity ? l->capacity * 2 : 16;
		l->items = xreallocarray(l->items, l->capacity, sizeof(*l->items));
	}
	l->items[l->count++] = package;
}

/* Collect the packages IMPL requires, looking through virtual roles to the side the solver chose. */
static void expand_requirements(struct solver *s, uint32_t impl, struct edge_list *out, unsigned depth)
{
	const struct universe *u = &s->u;
	const struct impl *im = &u->impls[impl];

	if (depth > 1000)
		return;
	for (uint32_t i = 0; i < im->req_count; i++) {
		const struct requirement *req = &u->requirements[im->req_first + i];
		const struct role *r = &u->roles[req->role];
		if (req->importance == IMPORTANCE_RESTRICTS)
			continue;
		if (r->name) {
			if (r->name_id != NO_ID && s->selected_by_name[r->name_id] != NO_ID)
				edge_add(out, s->selected_by_name[r->name_id]);
			continue;
		}
		for (uint32_t c = 0; c < r->cand_count; c++) {
			uint32_t cand = u->candidates[r->cand_first + c];
			if (sat_var_value(&s->sat, cand) == SAT_TRUE)
				expand_requirements(s, cand, out, depth + 1);
		}
	}
}

static void collect_selection(struct solver *s, struct solve_result *out)
{
	const struct universe *u = &s->u;
	const struct repo_index *idx = u->repo;

	/* Step 1: the selected packages, and which one each name got. */
	if (!s->selected_by_name)
		s->selected_by_name = xcalloc(idx->name_count ? idx->name_count : 1, sizeof(uint32_t));
	for (uint32_t n = 0; n < idx->name_count; n++)
		s->selected_by_name[n] = NO_ID;
	uint32_t *impl_of = xcalloc(u->impl_count ? u->impl_count : 1, sizeof(uint32_t));
	out->packages = xcalloc(u->impl_count ? u->impl_count : 1, sizeof(uint32_t));
	for (uint32_t i = 0; i < u->impl_count; i++) {
		uint32_t p = u->impls[i].package;
		if (p == NO_ID || sat_var_value(&s->sat, i) != SAT_TRUE)
			continue;
		out->packages[out->package_count++] = p;
		s->selected_by_name[idx->packages[p].name_id] = p;
	}
	out->packages = xreallocarray(out->packages, out->package_count + 1, sizeof(uint32_t));
	qsort_r(out->packages, out->package_count, sizeof(uint32_t), compare_package_strings, (void *)idx);

	/* Step 2: each selected package's direct dependencies in the solution. */
	struct edge_list all = { 0 }, one = { 0 };
	out->edge_start = xcalloc(out->package_count + 1, sizeof(uint32_t));
	for (uint32_t i = 0; i < out->package_count; i++) {
		uint32_t impl = u->impl_of_package[out->packages[i]];
		one.count = 0;
		expand_requirements(s, impl, &one, 0);
		out->edge_start[i] = all.count;
		for (uint32_t k = 0; k < one.count; k++) {
			if (all.count == all.capacity) {
				all.capacity = all.capacity ? all.capacity * 2 : 64;
				all.items = xreallocarray(all.items, all.capacity, sizeof(uint32_t));
			}
			all.items[all.count++] = one.items[k];
		}
	}
	out->edge_start[out->package_count] = all.count;
	out->edges = all.items;
	free(one.items);
	free(impl_of);
}

static void restore(struct solver *s)
{
	sat_reset(&s->sat);
	for (uint32_t i = s->saved_count; i-- > 0;)
		s->u.impls[s->saved_ids[i]] = s->saved_impls[i];
	s->saved_count = 0;
	universe_reset(&s->u, &s->base);
}

/*
 * Set up one solve: the roots (`ocaml` first, if the repositories have it), the targets' own
 * requirements when tests or docs are wanted, and the user constraints. Unless CLOSEST, every
 * dummy candidate is ruled out; with CLOSEST the solver may pick dummies, as 0install's
 * diagnostics mode does.
 */
static void prepare(struct solver *s, const struct solve_request *req, bool closest)
{
	struct universe *u = &s->u;
	uint32_t *roles = xcalloc(1 + req->target_count, sizeof(*roles));
	uint32_t role_count = 0;

	s->ocaml_role = NO_ID;
	if (req->ocaml_version && repo_find_name(u->repo, "ocaml")) {
		s->ocaml_role = universe_role_for_name(u, "ocaml");
		roles[role_count++] = s->ocaml_role;
	}

	/* A target that is itself `ocaml` replaces the OCaml pin, as a later user constraint on a name does. */
	s->ocaml_pin = req->ocaml_version;
	for (uint32_t t = 0; t < req->target_count; t++)
		if (strcmp(u->repo->packages[req->targets[t]].name, "ocaml") == 0)
			s->ocaml_pin = NULL;

	for (uint32_t t = 0; t < req->target_count; t++) {
		const struct package *p = &u->repo->packages[req->targets[t]];
		roles[role_count++] = u->role_of_name[p->name_id];
		uint32_t impl = u->impl_of_package[req->targets[t]];
		if (impl != NO_ID && (req->with_test || req->with_doc))
			replace_requirements(s, impl, (struct dependency_flags){ req->with_test, req->with_doc });
	}
	s->root = universe_add_root(u, roles, role_count);
	free(roles);

	sat_sync(&s->sat);
	if (s->ocaml_role != NO_ID && s->ocaml_pin)
		pin_role(s, s->ocaml_role, s->ocaml_pin);
	for (uint32_t t = 0; t < req->target_count; t++) {
		const struct package *p = &u->repo->packages[req->targets[t]];
		pin_role(s, u->role_of_name[p->name_id], p->version);
	}
	if (!closest)
		for (uint32_t d = 0; d < u->dummy_count; d++)
			sat_assume_false(&s->sat, u->dummies[d]);
}

void solver_solve(struct solver *s, const struct solve_request *req, struct solve_result *out)
{
	memset(out, 0, sizeof(*out));

	prepare(s, req, false);
	out->solved = sat_solve(&s->sat, decide, s);
	out->decisions = s->sat.decisions;
	out->conflicts = s->sat.conflicts;
	if (out->solved)
		collect_selection(s, out);
	restore(s);
	if (out->solved)
		return;

	/* Explain the failure from the closest solution, where dummies stand for what cannot be chosen. */
	prepare(s, req, true);
	if (sat_solve(&s->sat, decide, s))
		out->diagnostics = diagnose_no_solution(s, req);
	else
		out->diagnostics = xstrdup(
			"Can't find all required versions.\n(no diagnostics: the closest solution failed too)");
	restore(s);
}
