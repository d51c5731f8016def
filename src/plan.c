#include "plan.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "formula.h"
#include "util.h"
#include "version.h"

int package_compare(const struct package *a, const struct package *b)
{
	/*
	 * opam-format 2.4 compares names by their first letter without case, then byte by byte: so
	 * "ANSITerminal" < "alcotest" and "dune" < "FrontC" < "fieldslib".
	 */
	int c = tolower((unsigned char)a->name[0]) - tolower((unsigned char)b->name[0]);
	if (c == 0)
		c = strcmp(a->name, b->name);
	if (c == 0)
		c = version_compare(a->version, b->version);
	return c;
}

/* Working state: the solution indexed by name, and each package's dependency set. */
struct builder {
	const struct repo_index *idx;
	const struct solve_result *result;
	uint32_t *selected_by_name; /* name id -> package index in the solution, or NO_ID */
	uint32_t *position;         /* package index -> index in result->packages, or NO_ID */
	uint8_t *in_set;            /* scratch: package index -> member of the set being built */
	uint32_t *set;              /* the set being built */
	uint32_t set_count;
};

static uint32_t selected(const struct builder *b, const char *name)
{
	const struct package_name *n = repo_find_name(b->idx, name);

	return n ? b->selected_by_name[n - b->idx->names] : NO_ID;
}

static void set_add(struct builder *b, uint32_t package)
{
	if (package == NO_ID || b->in_set[package])
		return;
	b->in_set[package] = 1;
	b->set[b->set_count++] = package;
}

static void add_named(const char *name, void *ctx)
{
	struct builder *b = ctx;
	set_add(b, selected(b, name));
}

struct name_set {
	const char **names;
	uint32_t count, capacity;
};

static void name_set_add(const char *name, void *ctx)
{
	struct name_set *s = ctx;

	for (uint32_t i = 0; i < s->count; i++)
		if (strcmp(s->names[i], name) == 0)
			return;
	if (s->count == s->capacity) {
		s->capacity = s->capacity ? s->capacity * 2 : 16;
		s->names = xreallocarray(s->names, s->capacity, sizeof(*s->names));
	}
	s->names[s->count++] = name;
}

/* Names P depends on only through `post` (present when post is true, absent when it is false). */
static void post_only_names(const struct package *p, const struct variables *globals, bool with_test, bool with_doc,
			    struct arena *scratch, struct name_set *out)
{
	struct name_set with_post = { 0 }, without_post = { 0 };

	for (int post = 1; post >= 0; post--) {
		struct variables locals = { 0 };
		variables_set_bool(&locals, "build", true);
		variables_set_bool(&locals, "post", post);
		variables_set_bool(&locals, "with-test", with_test);
		variables_set_bool(&locals, "with-doc", with_doc);
		variables_set_bool(&locals, "with-dev-setup", false);
		variables_set_bool(&locals, "dev", version_compare(p->version, "dev") == 0);
		struct filter_env env = { globals, p->name, p->version, &locals };
		struct formula *f = formula_reduce(p->depends, FORMULA_CONJUNCTION, &env, scratch);
		formula_each_atom(f, name_set_add, post ? &with_post : &without_post);
		variables_release(&locals);
	}
	for (uint32_t i = 0; i < with_post.count; i++) {
		bool kept = false;
		for (uint32_t j = 0; j < without_post.count && !kept; j++)
			kept = strcmp(with_post.names[i], without_post.names[j]) == 0;
		if (!kept)
			name_set_add(with_post.names[i], out);
	}
	free(with_post.names);
	free(without_post.names);
}

static int compare_indices(const void *a, const void *b, void *ctx)
{
	const struct repo_index *idx = ctx;

	return package_compare(&idx->packages[*(const uint32_t *)a], &idx->packages[*(const uint32_t *)b]);
}

static void sort_packages(const struct repo_index *idx, uint32_t *items, uint32_t count)
{
	qsort_r(items, count, sizeof(*items), compare_indices, (void *)idx);
}

/* Dependencies of result->packages[i]: the solver's edges, plus depopts in the solution, minus post-only ones. */
static void package_dependencies(struct builder *b, uint32_t i, const struct variables *globals, bool is_target,
				 bool with_test, bool with_doc, struct arena *scratch)
{
	const struct solve_result *r = b->result;
	const struct package *p = &b->idx->packages[r->packages[i]];
	struct name_set post = { 0 };

	b->set_count = 0;
	for (uint32_t e = r->edge_start[i]; e < r->edge_start[i + 1]; e++)
		set_add(b, r->edges[e]);
	formula_each_name(p->depopts, add_named, b);

	post_only_names(p, globals, is_target && with_test, is_target && with_doc, scratch, &post);
	uint32_t kept = 0;
	for (uint32_t k = 0; k < b->set_count; k++) {
		const char *name = b->idx->packages[b->set[k]].name;
		bool drop = false;
		for (uint32_t j = 0; j < post.count && !drop; j++)
			drop = strcmp(post.names[j], name) == 0;
		if (drop)
			b->in_set[b->set[k]] = 0;
		else
			b->set[kept++] = b->set[k];
	}
	b->set_count = kept;
	free(post.names);
}

/* Describe a cycle among the packages still waiting in the install order, for the error message. */
static char *describe_cycle(const struct plan *plan, const uint32_t *waiting, uint32_t waiting_count,
			    const uint32_t *members)
{
	const struct repo_index *idx = plan->repo;
	struct strbuf sb = { 0 };

	/* Walk from any waiting package along waiting dependencies until a package repeats. */
	uint32_t *steps = xcalloc(waiting_count + 1, sizeof(uint32_t));
	uint32_t count = 0, at = waiting[0];
	for (;;) {
		for (uint32_t k = 0; k < count; k++) {
			if (steps[k] != at)
				continue;
			strbuf_adds(&sb, "dependency cycle: ");
			for (uint32_t j = k; j < count; j++)
				strbuf_addf(&sb, "%s.%s -> ", idx->packages[steps[j]].name,
					    idx->packages[steps[j]].version);
			strbuf_addf(&sb, "%s.%s", idx->packages[at].name, idx->packages[at].version);
			free(steps);
			return strbuf_detach(&sb);
		}
		steps[count++] = at;
		uint32_t i = members[at];
		uint32_t next = NO_ID;
		for (uint32_t d = plan->dep_start[i]; d < plan->dep_start[i + 1] && next == NO_ID; d++)
			for (uint32_t w = 0; w < waiting_count && next == NO_ID; w++)
				if (waiting[w] == plan->deps[d])
					next = plan->deps[d];
		if (next == NO_ID || count > waiting_count)
			break;
		at = next;
	}
	free(steps);
	return xstrdup("dependency cycle among the packages to install");
}

/* Layered topological sort: each round takes every package whose dependencies are installed, in opam order. */
static int order_plan(struct plan *plan, const uint32_t *members)
{
	const struct repo_index *idx = plan->repo;
	uint32_t *waiting = xcalloc(plan->count + 1, sizeof(uint32_t));
	uint32_t *round = xcalloc(plan->count + 1, sizeof(uint32_t));
	uint8_t *done = xcalloc(idx->package_count ? idx->package_count : 1, 1);
	uint32_t waiting_count = plan->count, placed = 0;

	memcpy(waiting, plan->order, plan->count * sizeof(uint32_t));
	uint32_t *order = xcalloc(plan->count + 1, sizeof(uint32_t));
	while (waiting_count > 0) {
		uint32_t round_count = 0, still = 0;
		for (uint32_t w = 0; w < waiting_count; w++) {
			uint32_t p = waiting[w], i = members[p];
			bool ready = true;
			for (uint32_t d = plan->dep_start[i]; d < plan->dep_start[i + 1] && ready; d++)
				ready = done[plan->deps[d]];
			if (ready)
				round[round_count++] = p;
			else
				waiting[still++] = p;
		}
		if (round_count == 0) {
			plan->error = describe_cycle(plan, waiting, still, members);
			break;
		}
		sort_packages(idx, round, round_count);
		for (uint32_t k = 0; k < round_count; k++) {
			done[round[k]] = 1;
			order[placed++] = round[k];
		}
		waiting_count = still;
	}

	free(waiting);
	free(round);
	free(done);
	if (plan->error) {
		free(order);
		return -1;
	}

	/* Reorder the dependency lists to follow the new package order. */
	uint32_t *dep_start = xcalloc(plan->count + 1, sizeof(uint32_t));
	uint32_t *deps = xcalloc(plan->dep_start[plan->count] + 1, sizeof(uint32_t));
	uint32_t at = 0;
	for (uint32_t k = 0; k < plan->count; k++) {
		uint32_t i = members[order[k]];
		dep_start[k] = at;
		for (uint32_t d = plan->dep_start[i]; d < plan->dep_start[i + 1]; d++)
			deps[at++] = plan->deps[d];
	}
	dep_start[plan->count] = at;
	free(plan->order);
	free(plan->dep_start);
	free(plan->deps);
	plan->order = order;
	plan->dep_start = dep_start;
	plan->deps = deps;
	return 0;
}

int plan_build(struct plan *plan, const struct repo_index *idx, const struct variables *globals,
	       const struct solve_result *result, const uint32_t *targets, uint32_t target_count, bool with_test,
	       bool with_doc)
{
	struct builder b = { idx, result, NULL, NULL, NULL, NULL, 0 };
	struct arena scratch = { 0 };
	uint32_t n = result->package_count;

	memset(plan, 0, sizeof(*plan));
	plan->repo = idx;
	b.selected_by_name = xcalloc(idx->name_count ? idx->name_count : 1, sizeof(uint32_t));
	b.position = xcalloc(idx->package_count ? idx->package_count : 1, sizeof(uint32_t));
	b.in_set = xcalloc(idx->package_count ? idx->package_count : 1, 1);
	b.set = xcalloc(idx->package_count ? idx->package_count : 1, sizeof(uint32_t));
	for (uint32_t k = 0; k < idx->name_count; k++)
		b.selected_by_name[k] = NO_ID;
	for (uint32_t k = 0; k < idx->package_count; k++)
		b.position[k] = NO_ID;
	for (uint32_t i = 0; i < n; i++) {
		b.selected_by_name[idx->packages[result->packages[i]].name_id] = result->packages[i];
		b.position[result->packages[i]] = i;
	}

	/* Step 1: every solution package's dependencies, sorted in opam's order. */
	uint32_t *dep_start = xcalloc(n + 1, sizeof(uint32_t));
	uint32_t *deps = NULL, dep_count = 0;
	for (uint32_t i = 0; i < n; i++) {
		bool is_target = false;
		for (uint32_t t = 0; t < target_count; t++)
			is_target |= targets[t] == result->packages[i];
		package_dependencies(&b, i, globals, is_target, with_test, with_doc, &scratch);
		sort_packages(idx, b.set, b.set_count);
		deps = xreallocarray(deps, dep_count + b.set_count + 1, sizeof(uint32_t));
		dep_start[i] = dep_count;
		for (uint32_t k = 0; k < b.set_count; k++) {
			deps[dep_count++] = b.set[k];
			b.in_set[b.set[k]] = 0;
		}
	}
	dep_start[n] = dep_count;

	/* Step 2: the packages the targets reach (the targets included). */
	uint32_t *stack = xcalloc(n + 1, sizeof(uint32_t)), depth = 0;
	uint8_t *reached = xcalloc(n + 1, 1);
	for (uint32_t t = 0; t < target_count; t++) {
		uint32_t i = b.position[targets[t]];
		if (i != NO_ID && !reached[i]) {
			reached[i] = 1;
			stack[depth++] = i;
		}
	}
	while (depth > 0) {
		uint32_t i = stack[--depth];
		for (uint32_t d = dep_start[i]; d < dep_start[i + 1]; d++) {
			uint32_t j = b.position[deps[d]];
			if (!reached[j]) {
				reached[j] = 1;
				stack[depth++] = j;
			}
		}
	}

	/* Step 3: keep the reached packages (members maps a package to its row), then order them. */
	uint32_t *members = b.position;
	plan->order = xcalloc(n + 1, sizeof(uint32_t));
	plan->dep_start = xcalloc(n + 1, sizeof(uint32_t));
	plan->deps = xcalloc(dep_count + 1, sizeof(uint32_t));
	uint32_t at = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (!reached[i])
			continue;
		uint32_t row = plan->count++;
		plan->order[row] = result->packages[i];
		members[result->packages[i]] = row;
		plan->dep_start[row] = at;
		for (uint32_t d = dep_start[i]; d < dep_start[i + 1]; d++)
			plan->deps[at++] = deps[d];
	}
	plan->dep_start[plan->count] = at;
	int status = order_plan(plan, members);

	free(stack);
	free(reached);
	free(dep_start);
	free(deps);
	free(b.selected_by_name);
	free(b.position);
	free(b.in_set);
	free(b.set);
	arena_release(&scratch);
	return status;
}

void plan_release(struct plan *plan)
{
	free(plan->order);
	free(plan->dep_start);
	free(plan->deps);
	free(plan->error);
	memset(plan, 0, sizeof(*plan));
}

static char *package_string(const struct repo_index *idx, uint32_t p)
{
	return xasprintf("%s.%s", idx->packages[p].name, idx->packages[p].version);
}

void plan_write_deps_json(const struct plan *plan, FILE *out)
{
	json_t *object = json_object();

	for (uint32_t i = 0; i < plan->count; i++) {
		json_t *list = json_array();
		for (uint32_t d = plan->dep_start[i]; d < plan->dep_start[i + 1]; d++) {
			char *s = package_string(plan->repo, plan->deps[d]);
			json_array_append_new(list, json_string(s));
			free(s);
		}
		char *key = package_string(plan->repo, plan->order[i]);
		json_object_set_new(object, key, list);
		free(key);
	}
	json_dumpf(object, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', out);
	json_decref(object);
}

void plan_write_list_json(const struct plan *plan, FILE *out)
{
	json_t *list = json_array();

	for (uint32_t i = 0; i < plan->count; i++) {
		char *s = package_string(plan->repo, plan->order[i]);
		json_array_append_new(list, json_string(s));
		free(s);
	}
	json_dumpf(list, out, JSON_INDENT(2));
	fputc('\n', out);
	json_decref(list);
}

void plan_write_dot(const struct plan *plan, FILE *out)
{
	fputs("digraph opam {\n"
	      "  rankdir=\"LR\";\n"
	      "  node [shape=\"box\",fontcolor=\"#ffffff\",color=\"#ef7a08\",fillcolor=\"#ef7a08\",style=\"filled\"];\n"
	      "  edge [color=\"#888888\"];\n",
	      out);
	for (uint32_t i = 0; i < plan->count; i++) {
		const struct package *p = &plan->repo->packages[plan->order[i]];
		if (plan->dep_start[i] == plan->dep_start[i + 1])
			fprintf(out, "  \"%s.%s\";\n", p->name, p->version);
		for (uint32_t d = plan->dep_start[i]; d < plan->dep_start[i + 1]; d++) {
			const struct package *q = &plan->repo->packages[plan->deps[d]];
			fprintf(out, "  \"%s.%s\" -> \"%s.%s\";\n", p->name, p->version, q->name, q->version);
		}
	}
	fputs("}\n", out);
}
