#include "batch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "universe.h"
#include "util.h"
#include "version.h"

static void target_add(struct target_list *l, uint32_t package)
{
	if (l->count == l->capacity) {
		l->capacity = l->capacity ? l->capacity * 2 : 64;
		l->items = xreallocarray(l->items, l->capacity, sizeof(*l->items));
	}
	l->items[l->count++] = package;
}

/* List the versions of NAME for an error message. */
static char *version_list(const struct repo_index *idx, const struct package_name *n)
{
	struct strbuf sb = { 0 };

	for (uint32_t i = 0; i < n->count; i++)
		strbuf_addf(&sb, "%s%s", i ? ", " : "", idx->packages[n->first + i].version);
	return strbuf_detach(&sb);
}

/* Split TEXT into a name, an operator and a version: `name`, `name.version` or `name>=version`. */
static bool parse_target(char *text, const char **name, int *op, const char **version)
{
	static const char *const ops[] = { "!=", ">=", "<=", "=", ">", "<" };
	size_t len = strcspn(text, ".=!<>");

	*name = text;
	*op = -1;
	*version = NULL;
	if (text[len] == '\0')
		return package_name_is_valid(text);
	if (text[len] == '.') {
		text[len] = '\0';
		*op = RELOP_EQ;
		*version = text + len + 1;
		return package_name_is_valid(text) && version_is_valid(*version);
	}
	for (size_t i = 0; i < ARRAY_LEN(ops); i++) {
		size_t n = strlen(ops[i]);
		if (strncmp(text + len, ops[i], n) != 0)
			continue;
		static const enum relop relops[] = { RELOP_NEQ, RELOP_GEQ, RELOP_LEQ, RELOP_EQ, RELOP_GT, RELOP_LT };
		*op = (int)relops[i];
		*version = text + len + n;
		text[len] = '\0';
		return package_name_is_valid(text) && version_is_valid(*version);
	}
	return false;
}

static bool relop_accepts(int op, int c)
{
	switch (op) {
	case RELOP_EQ: return c == 0;
	case RELOP_NEQ: return c != 0;
	case RELOP_GEQ: return c >= 0;
	case RELOP_GT: return c > 0;
	case RELOP_LEQ: return c <= 0;
	case RELOP_LT: return c < 0;
	}
	return false;
}

/* Resolve one command-line target into package indices; print an error and return false if it names nothing. */
static bool resolve_target(const struct repo_index *idx, const struct options *opts, const char *arg,
			   struct target_list *out, struct arena *scratch)
{
	char *text = xstrdup(arg);
	const char *name, *version;
	int op;
	bool ok = false;

	if (!parse_target(text, &name, &op, &version)) {
		fprintf(stderr,
			"%s: invalid target '%s': expected NAME, NAME.VERSION, or NAME followed by one of "
			"= != >= > <= < and a version\n",
			program_name, arg);
		goto done;
	}
	const struct package_name *n = repo_find_name(idx, name);
	if (!n) {
		fprintf(stderr, "%s: unknown package '%s': no repository has it\n", program_name, name);
		goto done;
	}

	/* NAME.VERSION is exact, available or not; otherwise the newest available version that fits. */
	if (op == RELOP_EQ && !strchr(arg, '=')) {
		const struct package *p = repo_find_package(idx, name, version);
		if (!p) {
			char *versions = version_list(idx, n);
			fprintf(stderr, "%s: package '%s' has no version '%s'; its versions are: %s\n", program_name,
				name, version, versions);
			free(versions);
			goto done;
		}
		target_add(out, (uint32_t)(p - idx->packages));
		ok = true;
		goto done;
	}
	for (uint32_t i = n->count; i-- > 0;) {
		const struct package *p = &idx->packages[n->first + i];
		if (op >= 0 && !relop_accepts(op, version_compare(p->version, version)))
			continue;
		if (!package_is_available(p, &opts->globals, scratch))
			continue;
		if (opts->all_versions) {
			target_add(out, n->first + i);
			ok = true;
			continue;
		}
		target_add(out, n->first + i);
		ok = true;
		break;
	}
	if (!ok) {
		/*
		 * Nothing available fits: solve the newest version that matches anyway, so the target gets
		 * its no-solution result like the others instead of stopping the whole batch.
		 */
		for (uint32_t i = n->count; i-- > 0 && !ok;) {
			const struct package *p = &idx->packages[n->first + i];
			if (op >= 0 && !relop_accepts(op, version_compare(p->version, version)))
				continue;
			if (opts->verbosity >= 0)
				fprintf(stderr,
					"%s: warning: no available version of '%s' matches '%s' in this environment; "
					"solving %s.%s, which is unavailable\n",
					program_name, name, arg, p->name, p->version);
			target_add(out, n->first + i);
			ok = true;
		}
		if (!ok) {
			char *versions = version_list(idx, n);
			fprintf(stderr, "%s: no version of '%s' matches '%s'; its versions are: %s\n", program_name,
				name, arg, versions);
			free(versions);
		}
	}

done:
	free(text);
	return ok;
}

/* Collect the targets: the operands, or every package with --all. */
bool targets_collect(const struct repo_index *idx, const struct options *opts, struct target_list *out)
{
	struct arena scratch = { 0 };
	bool ok = true;

	if (opts->all) {
		for (uint32_t n = 0; n < idx->name_count; n++) {
			const struct package_name *name = &idx->names[n];
			for (uint32_t i = name->count; i-- > 0;) {
				const struct package *p = &idx->packages[name->first + i];
				if (!package_is_available(p, &opts->globals, &scratch))
					continue;
				target_add(out, name->first + i);
				if (!opts->all_versions)
					break;
			}
		}
	}
	for (int a = 0; a < opts->arg_count; a++)
		ok &= resolve_target(idx, opts, opts->args[a], out, &scratch);
	arena_release(&scratch);

	/* A package named twice (by --all and an operand, or by two spellings) is solved once. */
	uint8_t *seen = xcalloc(idx->package_count + 1, 1);
	uint32_t kept = 0;
	for (uint32_t i = 0; i < out->count; i++) {
		if (seen[out->items[i]])
			continue;
		seen[out->items[i]] = 1;
		out->items[kept++] = out->items[i];
	}
	out->count = kept;
	free(seen);

	/* The OCaml pin must name a version that exists, or every solve would fail for that reason alone. */
	const struct package_name *ocaml = repo_find_name(idx, "ocaml");
	if (ocaml && !repo_find_package(idx, "ocaml", opts->ocaml_version)) {
		char *versions = version_list(idx, ocaml);
		fprintf(stderr, "%s: --ocaml %s: ocaml has no such version; its versions are: %s\n", program_name,
			opts->ocaml_version, versions);
		free(versions);
		ok = false;
	}
	return ok;
}

void target_list_release(struct target_list *l)
{
	free(l->items);
	memset(l, 0, sizeof(*l));
}

struct batch {
	const struct options *opts;
	const struct repo_index *idx;
	const struct universe *universe;
	const struct target_list *targets;
	atomic_uint next;
	struct outcome *outcomes;
	outcome_consumer consumer;
	void *consumer_ctx;
	pthread_mutex_t lock; /* guards done and emitted */
	uint8_t *done;
	uint32_t emitted; /* outcomes [0, emitted) were handed to the consumer */
};

/* Hand over every finished outcome that has no unfinished one before it. */
static void emit_ready(struct batch *b, uint32_t t)
{
	pthread_mutex_lock(&b->lock);
	b->done[t] = 1;
	while (b->emitted < b->targets->count && b->done[b->emitted]) {
		struct outcome *o = &b->outcomes[b->emitted++];
		b->consumer(b->consumer_ctx, o);
		plan_release(&o->plan);
		solve_result_release(&o->result);
		o->diagnostics = NULL;
	}
	pthread_mutex_unlock(&b->lock);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void solve_one(struct solver *solver, struct batch *b, uint32_t t)
{
	const struct options *opts = b->opts;
	struct outcome *out = &b->outcomes[t];

	out->target = b->targets->items[t];
	struct solve_request req = { opts->ocaml_version, &out->target, 1, opts->with_test, opts->with_doc };
	double start = now_ms();
	solver_solve(solver, &req, &out->result);
	out->solved = out->result.solved;
	if (!out->solved) {
		out->diagnostics = out->result.diagnostics;
	} else if (plan_build(&out->plan, b->idx, &opts->globals, &out->result, &out->target, 1, opts->with_test,
			      opts->with_doc) < 0) {
		/* A solution without an install order cannot be built, so it counts as none. */
		out->solved = false;
		out->diagnostics = out->plan.error;
	}
	out->milliseconds = now_ms() - start;
}

static void *batch_worker(void *arg)
{
	struct batch *b = arg;
	struct solver solver;

	solver_init(&solver, b->universe);
	for (;;) {
		unsigned t = atomic_fetch_add(&b->next, 1);
		if (t >= b->targets->count)
			break;
		solve_one(&solver, b, t);
		if (b->consumer)
			emit_ready(b, t);
	}
	solver_release(&solver);
	return NULL;
}

static unsigned worker_count(const struct options *opts, uint32_t targets)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = opts->jobs ? opts->jobs : cores > 0 ? (unsigned)cores : 1;

	return n > targets ? (targets ? targets : 1) : n;
}

struct outcome *batch_solve(const struct options *opts, const struct repo_index *idx, const struct target_list *targets,
			    outcome_consumer consumer, void *ctx, struct batch_report *report)
{
	double start = now_ms();
	struct universe universe;
	universe_build(&universe, idx, &opts->globals);

	struct batch b = { .opts = opts,
			   .idx = idx,
			   .universe = &universe,
			   .targets = targets,
			   .consumer = consumer,
			   .consumer_ctx = ctx };
	pthread_mutex_init(&b.lock, NULL);
	b.outcomes = xcalloc(targets->count + 1, sizeof(*b.outcomes));
	b.done = xcalloc(targets->count + 1, 1);
	unsigned workers = worker_count(opts, targets->count);
	pthread_t *threads = xcalloc(workers, sizeof(*threads));
	unsigned started = 0;
	for (unsigned w = 1; w < workers; w++) {
		if (pthread_create(&threads[w], NULL, batch_worker, &b) != 0)
			break;
		started = w;
	}
	batch_worker(&b);
	for (unsigned w = 1; w <= started; w++)
		pthread_join(threads[w], NULL);

	free(threads);
	free(b.done);
	pthread_mutex_destroy(&b.lock);
	universe_release(&universe);
	report->workers = started + 1;
	report->wall_milliseconds = now_ms() - start;
	return b.outcomes;
}

void batch_release(struct outcome *outcomes, uint32_t count)
{
	for (uint32_t t = 0; t < count; t++) {
		plan_release(&outcomes[t].plan);
		solve_result_release(&outcomes[t].result);
	}
	free(outcomes);
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void batch_print_summary(const struct outcome *outcomes, uint32_t count, const struct batch_report *report)
{
	uint32_t solved = 0;
	double *times = xcalloc(count + 1, sizeof(double));

	for (uint32_t t = 0; t < count; t++) {
		solved += outcomes[t].solved;
		times[t] = outcomes[t].milliseconds;
	}
	qsort(times, count, sizeof(double), compare_doubles);
	fprintf(stderr,
		"%s: solved %u targets with %u workers in %.2f s: %u with a solution, %u without; "
		"per solve median %.2f ms, max %.2f ms\n",
		program_name, count, report->workers, report->wall_milliseconds / 1000.0, solved, count - solved,
		times[count / 2], times[count ? count - 1 : 0]);
	free(times);
}
