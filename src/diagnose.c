#include "diagnose.h"

#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "util.h"
#include "version.h"

/*
 * The explanation follows 0install's diagnostics as opam-0install prints them: solve again letting
 * each role fall back to a dummy ("closest match"), then, for each role in that solution, narrow
 * its candidates by the user constraints, conflict classes and the restrictions of the other
 * selections, and say why each candidate of a role left without a real selection was rejected.
 */

/* Lines of the "Selected:" list stay shorter than this, the default margin of OCaml's Format module. */
#define MARGIN 78
/* Rejected candidates shown per role before "...". */
#define MAX_REJECTIONS 5

struct rejection {
	uint32_t impl;
	char *reason;
};

struct component {
	uint32_t role;
	uint32_t selected; /* the chosen candidate, or NO_ID where the dummy was chosen */
	uint32_t *good;    /* candidates still possible, most preferred first */
	uint32_t good_count;
	uint32_t original_good; /* how many candidates the solver had */
	struct rejection *bad;
	uint32_t bad_count;
	uint32_t original_bad; /* candidates rejected by the user's constraints */
	char **notes;
	uint32_t note_count;
};

struct report {
	struct solver *s;
	const struct solve_request *req;
	struct component *components;
	uint32_t count;
	uint32_t *component_of_role; /* role id -> index in components, or NO_ID */
	uint32_t *rank;              /* role id -> when opam-0install would have created it (virtual roles) */
	uint8_t *visited;
	uint32_t next_rank;
};

static void add_note(struct component *c, char *note)
{
	c->notes = xreallocarray(c->notes, c->note_count + 1, sizeof(*c->notes));
	c->notes[c->note_count++] = note;
}

static void reject(struct component *c, uint32_t impl, char *reason)
{
	c->bad = xreallocarray(c->bad, c->bad_count + 1, sizeof(*c->bad));
	c->bad[c->bad_count].impl = impl;
	c->bad[c->bad_count].reason = reason;
	c->bad_count++;
}

/* Apply TEST to each remaining candidate; those it returns a reason for move to the rejected list. */
static void filter_good(struct report *r, struct component *c, char *(*test)(struct report *, uint32_t, const void *),
			const void *ctx)
{
	uint32_t kept = 0;

	for (uint32_t i = 0; i < c->good_count; i++) {
		char *reason = test(r, c->good[i], ctx);
		if (reason)
			reject(c, c->good[i], reason);
		else
			c->good[kept++] = c->good[i];
	}
	c->good_count = kept;
}

/* How opam-0install writes a version formula: `>= 1.0 & < 2.0`, with `<>` for "not equal". */
static void print_restriction(struct strbuf *out, const struct vformula *f, bool in_and)
{
	static const char *const ops[] = { "=", "<>", ">=", ">", "<=", "<" };

	if (!f) {
		strbuf_adds(out, "(none)");
		return;
	}
	switch (f->kind) {
	case VFORMULA_EMPTY: break;
	case VFORMULA_ATOM: strbuf_addf(out, "%s %s", ops[f->op], f->version); break;
	case VFORMULA_AND:
		print_restriction(out, f->lhs, true);
		strbuf_adds(out, " & ");
		print_restriction(out, f->rhs, true);
		break;
	case VFORMULA_OR:
		if (in_and)
			strbuf_addc(out, '(');
		print_restriction(out, f->lhs, false);
		strbuf_adds(out, " | ");
		print_restriction(out, f->rhs, false);
		if (in_and)
			strbuf_addc(out, ')');
		break;
	}
}

static char *restriction_text(const struct requirement *req)
{
	struct strbuf sb = { 0 };

	/*
	 * A restriction from `conflicts` is the conflict's formula negated; opam-0install prints it as
	 * `not(FORMULA)`, so negate it back. One without a version formula rules out every version.
	 */
	if (req->importance == IMPORTANCE_RESTRICTS) {
		if (!req->restriction) {
			strbuf_adds(&sb, "conflict with all versions");
			return strbuf_detach(&sb);
		}
		struct arena scratch = { 0 };
		strbuf_adds(&sb, "not(");
		print_restriction(&sb, vformula_negate(&scratch, req->restriction), false);
		strbuf_addc(&sb, ')');
		arena_release(&scratch);
		return strbuf_detach(&sb);
	}
	print_restriction(&sb, req->restriction, false);
	return strbuf_detach(&sb);
}

static void print_role(struct strbuf *out, const struct universe *u, uint32_t role, unsigned depth);

/* A candidate as opam-0install prints it: name.version, or a virtual one's requirements joined by '&'. */
static void print_impl(struct strbuf *out, const struct universe *u, uint32_t impl, unsigned depth)
{
	const struct impl *im = &u->impls[impl];
	const struct package *p = universe_impl_package(u, impl);

	if (p) {
		strbuf_addf(out, "%s.%s", p->name, p->version);
		return;
	}
	if (im->dummy) {
		strbuf_adds(out, "(no solution found)");
		return;
	}
	for (uint32_t i = 0; i < im->req_count; i++) {
		if (i)
			strbuf_addc(out, '&');
		print_role(out, u, u->requirements[im->req_first + i].role, depth + 1);
	}
}

static void print_role(struct strbuf *out, const struct universe *u, uint32_t role, unsigned depth)
{
	const struct role *r = &u->roles[role];

	if (r->name) {
		strbuf_adds(out, r->name);
		return;
	}
	if (depth > 50) {
		strbuf_adds(out, "...");
		return;
	}
	bool first = true;
	for (uint32_t c = 0; c < r->cand_count; c++) {
		uint32_t cand = u->candidates[r->cand_first + c];
		if (u->impls[cand].dummy)
			continue;
		if (!first)
			strbuf_addc(out, '|');
		print_impl(out, u, cand, depth + 1);
		first = false;
	}
}

static const char *pinned_version(const struct report *r, uint32_t role);

static bool is_rejected_by_user(const struct report *r, uint32_t role, uint32_t impl)
{
	const struct package *p = universe_impl_package(&r->s->u, impl);
	const char *pin = r->s->u.roles[role].name ? pinned_version(r, role) : NULL;

	return pin && p && version_compare(p->version, pin) != 0;
}

static const char *pinned_version(const struct report *r, uint32_t role)
{
	const struct universe *u = &r->s->u;

	if (role == r->s->ocaml_role && r->s->ocaml_pin)
		return r->s->ocaml_pin;
	for (uint32_t t = 0; t < r->req->target_count; t++) {
		const struct package *p = &u->repo->packages[r->req->targets[t]];
		if (u->role_of_name[p->name_id] == role)
			return p->version;
	}
	return NULL;
}

/* Step 1: one component per role that the closest solution selected something for. */
static void create_components(struct report *r)
{
	const struct universe *u = &r->s->u;

	r->component_of_role = xcalloc(u->role_count ? u->role_count : 1, sizeof(uint32_t));
	r->components = xcalloc(u->role_count ? u->role_count : 1, sizeof(*r->components));
	for (uint32_t role = 0; role < u->role_count; role++) {
		const struct role *ro = &u->roles[role];
		uint32_t selected = NO_ID;
		bool any = false;
		r->component_of_role[role] = NO_ID;
		for (uint32_t c = 0; c < ro->cand_count; c++) {
			uint32_t cand = u->candidates[ro->cand_first + c];
			if (sat_var_value(&r->s->sat, cand) == SAT_TRUE) {
				any = true;
				selected = u->impls[cand].dummy ? NO_ID : cand;
			}
		}
		if (!any)
			continue;

		struct component *c = &r->components[r->count];
		r->component_of_role[role] = r->count++;
		c->role = role;
		c->selected = selected;
		c->good = xcalloc(ro->cand_count + 1, sizeof(uint32_t));
		const char *pin = ro->name ? pinned_version(r, role) : NULL;
		for (uint32_t k = 0; k < ro->cand_count; k++) {
			uint32_t cand = u->candidates[ro->cand_first + k];
			const struct package *p = universe_impl_package(u, cand);
			if (u->impls[cand].dummy)
				continue;
			/* Versions a user constraint rules out are no candidates at all, and are not listed. */
			if (pin && p && version_compare(p->version, pin) != 0)
				continue;
			c->good[c->good_count++] = cand;
		}
		c->original_good = c->good_count;
		if (pin)
			add_note(c, xasprintf("User requested = %s", pin));
	}
}

static struct component *component_of(const struct report *r, uint32_t role)
{
	uint32_t i = r->component_of_role[role];
	return i == NO_ID ? NULL : &r->components[i];
}

/* Step 2: conflict classes. A candidate sharing a class with another role's selection is out. */
static char *conflict_class_problem(struct report *r, uint32_t impl, const void *ctx)
{
	const struct universe *u = &r->s->u;
	const struct component *self = ctx;
	const struct package *p = universe_impl_package(u, impl);

	for (uint32_t k = 0; p && k < p->conflict_class_count; k++) {
		for (uint32_t i = 0; i < r->count; i++) {
			const struct component *other = &r->components[i];
			if (other == self || other->selected == NO_ID)
				continue;
			const struct package *q = universe_impl_package(u, other->selected);
			for (uint32_t j = 0; q && j < q->conflict_class_count; j++)
				if (strcmp(p->conflict_class[k], q->conflict_class[j]) == 0)
					return xasprintf("In same conflict class (%s) as %s", p->conflict_class[k],
							 q->name);
		}
	}
	return NULL;
}

/* A requirement of IMPL that the selection of its role fails. */
static char *dependency_problem(struct report *r, uint32_t impl, const void *ctx)
{
	const struct universe *u = &r->s->u;
	const struct impl *im = &u->impls[impl];
	(void)ctx;

	for (uint32_t i = 0; i < im->req_count; i++) {
		const struct requirement *req = &u->requirements[im->req_first + i];
		const struct component *dep = component_of(r, req->role);
		if (!dep || dep->selected == NO_ID || universe_impl_meets(u, dep->selected, req))
			continue;
		struct strbuf sb = { 0 };
		strbuf_adds(&sb, "Requires ");
		print_role(&sb, u, req->role, 0);
		char *text = restriction_text(req);
		strbuf_addf(&sb, " %s", text);
		free(text);
		return strbuf_detach(&sb);
	}
	return NULL;
}

static char *restriction_problem(struct report *r, uint32_t impl, const void *ctx)
{
	const struct requirement *req = ctx;

	if (universe_impl_meets(&r->s->u, impl, req))
		return NULL;
	char *text = restriction_text(req);
	char *reason = xasprintf("Incompatible with restriction: %s", text);
	free(text);
	return reason;
}

/*
 * A restriction is worth a note when it rejected something the role would rather have had: any
 * candidate of a role left without a selection, or a version newer than the selected one.
 */
static bool explains_choice(const struct universe *u, const struct component *c, uint32_t first_new)
{
	if (c->bad_count == first_new)
		return false;
	if (c->selected == NO_ID)
		return true;

	/* For a selected package, only a rejected newer version explains why it was not chosen. */
	const struct package *selected = universe_impl_package(u, c->selected);
	for (uint32_t i = first_new; selected && i < c->bad_count; i++) {
		const struct package *p = universe_impl_package(u, c->bad[i].impl);
		if (p && version_compare(p->version, selected->version) > 0)
			return true;
	}
	return false;
}

/* Step 3: apply each selection's requirements to the roles they point to. */
static void examine_selection(struct report *r, struct component *c)
{
	const struct universe *u = &r->s->u;

	if (c->selected == NO_ID) {
		filter_good(r, c, dependency_problem, NULL);
		return;
	}
	const struct impl *im = &u->impls[c->selected];
	for (uint32_t i = 0; i < im->req_count; i++) {
		const struct requirement *req = &u->requirements[im->req_first + i];
		struct component *dep = component_of(r, req->role);
		if (!dep || (!req->restriction && req->importance == IMPORTANCE_ESSENTIAL))
			continue;

		/*
		 * The restriction applies to every role, but only a role left without a selection gets a
		 * note, and only when the restriction rejected one of its remaining candidates.
		 */
		uint32_t before = dep->bad_count;
		filter_good(r, dep, restriction_problem, req);
		if (!explains_choice(u, dep, before))
			continue;
		struct strbuf sb = { 0 };
		print_role(&sb, u, c->role, 0);
		const struct package *p = universe_impl_package(u, c->selected);
		if (p) {
			strbuf_addf(&sb, " %s", p->version);
		} else {
			strbuf_addc(&sb, ' ');
			print_impl(&sb, u, c->selected, 0);
		}
		char *text = restriction_text(req);
		strbuf_addf(&sb, " requires %s", text);
		free(text);
		add_note(dep, strbuf_detach(&sb));
	}
}

/* Step 4: a role left with the dummy rejects its remaining candidates and notes why. */
static void finalise(struct component *c)
{
	if (c->selected != NO_ID)
		return;
	for (uint32_t i = 0; i < c->good_count; i++)
		reject(c, c->good[i], xstrdup("Reason for rejection unknown"));
	c->good_count = 0;

	const char *title = c->original_good > 0  ? "Rejected candidates:"
			    : c->original_bad > 0 ? "No usable implementations:"
						  : "No known implementations at all";
	add_note(c, xstrdup(title));
}

static int compare_rejections(const void *a, const void *b, void *ctx)
{
	const struct universe *u = ctx;
	const struct package *x = universe_impl_package(u, ((const struct rejection *)a)->impl);
	const struct package *y = universe_impl_package(u, ((const struct rejection *)b)->impl);

	/* Newest first; virtual candidates (OR alternatives) by creation, the last one first. */
	if (!x && !y) {
		uint32_t ix = ((const struct rejection *)a)->impl, iy = ((const struct rejection *)b)->impl;
		return ix < iy ? 1 : ix > iy ? -1 : 0;
	}
	if (!x || !y)
		return (x == NULL) - (y == NULL);
	return package_compare(y, x);
}

static bool is_rejected_by_user(const struct report *r, uint32_t role, uint32_t impl);

/* Give the virtual roles that compiling IMPL's requirements creates their creation rank. */
static void rank_created_roles(struct report *r, uint32_t impl, unsigned depth)
{
	const struct universe *u = &r->s->u;
	const struct impl *im = &u->impls[impl];

	if (depth > 200)
		return;
	for (uint32_t i = im->req_count; i-- > 0;) {
		uint32_t role = u->requirements[im->req_first + i].role;
		const struct role *ro = &u->roles[role];
		if (ro->name || r->rank[role] != NO_ID)
			continue;
		for (uint32_t k = ro->cand_count; k-- > 0;) {
			uint32_t alt = u->candidates[ro->cand_first + k];
			if (!u->impls[alt].dummy)
				rank_created_roles(r, alt, depth + 1);
		}
		r->rank[role] = r->next_rank++;
	}
}

/*
 * Replay the order in which opam-0install builds its problem: depth first from the root, each
 * real role creating the virtual roles of all its candidates when first reached. Virtual roles
 * are numbered as created, and diagnostics list them in that order.
 */
static void rank_roles(struct report *r, uint32_t role, unsigned depth)
{
	const struct universe *u = &r->s->u;
	const struct role *ro = &u->roles[role];

	if (r->visited[role] || depth > 10000)
		return;
	r->visited[role] = 1;
	if (ro->name) {
		for (uint32_t k = 0; k < ro->cand_count; k++) {
			uint32_t cand = u->candidates[ro->cand_first + k];
			if (!u->impls[cand].dummy && !is_rejected_by_user(r, role, cand))
				rank_created_roles(r, cand, 0);
		}
	}
	for (uint32_t k = 0; k < ro->cand_count; k++) {
		uint32_t cand = u->candidates[ro->cand_first + k];
		if (u->impls[cand].dummy || is_rejected_by_user(r, role, cand))
			continue;
		const struct impl *im = &u->impls[cand];
		for (uint32_t i = 0; i < im->req_count; i++)
			rank_roles(r, u->requirements[im->req_first + i].role, depth + 1);
	}
}

/* Roles in opam-0install's order: real roles by name as opam compares names, then the root, then other virtual roles as created. */
static int compare_components(const void *a, const void *b, void *ctx)
{
	const struct report *r = ctx;
	const struct universe *u = &r->s->u;
	const struct component *x = a, *y = b;
	const struct role *rx = &u->roles[x->role], *ry = &u->roles[y->role];
	uint32_t root = u->impls[r->s->root].role;

	if (rx->name && ry->name) {
		struct package px = { .name = rx->name, .version = "" }, py = { .name = ry->name, .version = "" };
		return package_compare(&px, &py);
	}
	if (rx->name || ry->name)
		return rx->name ? -1 : 1;
	if (x->role == root || y->role == root)
		return x->role == root ? -1 : 1;
	return r->rank[x->role] < r->rank[y->role] ? -1 : r->rank[x->role] > r->rank[y->role];
}

static void print_rejections(struct strbuf *out, const struct universe *u, struct component *c)
{
	if (c->bad_count > 1)
		qsort_r(c->bad, c->bad_count, sizeof(*c->bad), compare_rejections, (void *)u);
	for (uint32_t i = 0; i < c->bad_count; i++) {
		if (i == MAX_REJECTIONS) {
			strbuf_adds(out, "\n      ...");
			break;
		}
		strbuf_adds(out, "\n      ");
		print_impl(out, u, c->bad[i].impl, 0);
		strbuf_addf(out, ": %s", c->bad[i].reason);
	}
}

static void print_report(struct strbuf *out, struct report *r)
{
	const struct universe *u = &r->s->u;
	size_t column = 0;

	strbuf_adds(out, "Can't find all required versions.\nSelected: ");
	column = strlen("Selected: ");
	bool first = true;
	for (uint32_t i = 0; i < r->count; i++) {
		const struct component *c = &r->components[i];
		if (c->selected == NO_ID || c->note_count > 0)
			continue;
		struct strbuf item = { 0 };
		print_impl(&item, u, c->selected, 0);
		/* Wrap like a Format "hov" box: break before an item that would pass the margin. */
		if (!first && column + 1 + item.len >= MARGIN) {
			strbuf_adds(out, "\n          ");
			column = strlen("Selected: ");
		} else if (!first) {
			strbuf_addc(out, ' ');
			column++;
		}
		strbuf_adds(out, strbuf_str(&item));
		column += item.len;
		first = false;
		strbuf_release(&item);
	}

	for (uint32_t i = 0; i < r->count; i++) {
		struct component *c = &r->components[i];
		if (c->selected != NO_ID && c->note_count == 0)
			continue;
		strbuf_adds(out, "\n- ");
		print_role(out, u, c->role, 0);
		strbuf_adds(out, " -> ");
		if (c->selected == NO_ID)
			strbuf_adds(out, "(problem)");
		else
			print_impl(out, u, c->selected, 0);
		for (uint32_t n = 0; n < c->note_count; n++) {
			strbuf_addf(out, "\n    %s", c->notes[n]);
			if (c->selected == NO_ID && n == c->note_count - 1)
				print_rejections(out, u, c);
		}
	}
}

char *diagnose_no_solution(struct solver *s, const struct solve_request *req)
{
	struct report r = { s, req, NULL, 0, NULL, NULL, NULL, 0 };
	struct strbuf out = { 0 };

	create_components(&r);
	r.rank = xcalloc(s->u.role_count ? s->u.role_count : 1, sizeof(uint32_t));
	r.visited = xcalloc(s->u.role_count ? s->u.role_count : 1, 1);
	for (uint32_t i = 0; i < s->u.role_count; i++)
		r.rank[i] = NO_ID;
	r.next_rank = 1;
	rank_roles(&r, s->u.impls[s->root].role, 0);

	/* Examine roles in the order opam-0install's role map holds them: notes follow that order. */
	qsort_r(r.components, r.count, sizeof(*r.components), compare_components, &r);
	for (uint32_t i = 0; i < r.count; i++)
		r.component_of_role[r.components[i].role] = i;
	for (uint32_t i = 0; i < r.count; i++)
		filter_good(&r, &r.components[i], conflict_class_problem, &r.components[i]);
	for (uint32_t i = 0; i < r.count; i++)
		examine_selection(&r, &r.components[i]);
	for (uint32_t i = 0; i < r.count; i++)
		finalise(&r.components[i]);
	print_report(&out, &r);

	for (uint32_t i = 0; i < r.count; i++) {
		struct component *c = &r.components[i];
		for (uint32_t k = 0; k < c->bad_count; k++)
			free(c->bad[k].reason);
		for (uint32_t k = 0; k < c->note_count; k++)
			free(c->notes[k]);
		free(c->bad);
		free(c->notes);
		free(c->good);
	}
	free(r.components);
	free(r.component_of_role);
	free(r.rank);
	free(r.visited);
	return strbuf_detach(&out);
}
