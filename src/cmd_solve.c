/* `obake solve`: opam-0install's selection for each target, and package-tool's dependency files. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd_common.h"
#include "commands.h"
#include "plan.h"
#include "solver.h"
#include "universe.h"
#include "util.h"
#include "version.h"

static const char solve_usage[] =
	"obake solve [-r DIR]... [--ocaml VERSION] [--all] [--all-versions] [--with-test] [--with-doc]\n"
	"                   [--deps] [--list] [--dot] [-o DIR] [-j N] TARGET...";

struct target_list {
	uint32_t *items;
	uint32_t count, capacity;
};

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
		char *versions = version_list(idx, n);
		fprintf(stderr, "%s: no available version of '%s'%s%s in this environment; its versions are: %s\n",
			program_name, name, version ? " matches " : "", version ? arg + strlen(name) : "", versions);
		free(versions);
	}

done:
	free(text);
	return ok;
}

/* Collect the targets: the operands, or every package with --all. */
static bool collect_targets(const struct repo_index *idx, const struct options *opts, struct target_list *out)
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
	return ok;
}

/* What one target's solve produced, kept until every worker is done so output follows the target order. */
struct outcome {
	char *json_line; /* batch mode */
	char *text;      /* single-target mode: the selection, or the explanation */
	bool solved;
	bool error; /* files could not be written */
	double milliseconds;
};

struct batch {
	const struct options *opts;
	const struct repo_index *idx;
	const struct universe *universe;
	const uint32_t *targets;
	uint32_t target_count;
	atomic_uint next;
	struct outcome *outcomes;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Write one of the plan's files into the output folder; returns false after printing the error. */
static bool write_plan_file(const struct options *opts, const char *target, const char *suffix,
			    void (*writer)(const struct plan *, FILE *), const struct plan *plan)
{
	const char *dir = opts->output_dir ? opts->output_dir : ".";
	char *path = xasprintf("%s/%s%s", dir, target, suffix);
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "w");
	bool ok = f != NULL;

	if (f) {
		writer(plan, f);
		ok = fflush(f) == 0 && !ferror(f);
		ok &= fclose(f) == 0;
	}
	/* Written aside, then renamed, so a reader never sees half a file. */
	if (ok)
		ok = rename(tmp, path) == 0;
	if (!ok) {
		fprintf(stderr, "%s: cannot write %s: %s\n", program_name, path, strerror(errno));
		unlink(tmp);
	}
	free(path);
	free(tmp);
	return ok;
}

static char *selection_text(const struct repo_index *idx, const struct solve_result *r)
{
	struct strbuf sb = { 0 };

	for (uint32_t i = 0; i < r->package_count; i++)
		strbuf_addf(&sb, "%s.%s\n", idx->packages[r->packages[i]].name, idx->packages[r->packages[i]].version);
	return strbuf_detach(&sb);
}

static char *json_line(const char *target, const char *status, const struct repo_index *idx,
		       const struct solve_result *r, const char *diagnostics)
{
	json_t *solution = json_array();

	for (uint32_t i = 0; r && i < r->package_count; i++) {
		char *s = xasprintf("%s.%s", idx->packages[r->packages[i]].name, idx->packages[r->packages[i]].version);
		json_array_append_new(solution, json_string(s));
		free(s);
	}
	json_t *o = json_pack("{s:s, s:s, s:o, s:s}", "package", target, "status", status, "solution", solution,
			      "diagnostics", diagnostics ? diagnostics : "");
	char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return line;
}

static void solve_one(struct solver *solver, struct batch *b, uint32_t t)
{
	const struct options *opts = b->opts;
	const struct repo_index *idx = b->idx;
	uint32_t target = b->targets[t];
	struct outcome *out = &b->outcomes[t];
	char *name = xasprintf("%s.%s", idx->packages[target].name, idx->packages[target].version);
	struct solve_request req = { opts->ocaml_version, &target, 1, opts->with_test, opts->with_doc };
	struct solve_result r;
	struct plan plan = { 0 };
	const char *diagnostics = NULL;

	double start = now_ms();
	solver_solve(solver, &req, &r);
	out->solved = r.solved;
	if (r.solved && plan_build(&plan, idx, &opts->globals, &r, &target, 1, opts->with_test, opts->with_doc) < 0) {
		/* A solution without an install order cannot be built, so it counts as none. */
		out->solved = false;
		diagnostics = plan.error;
	} else if (!r.solved) {
		diagnostics = r.diagnostics;
	}
	out->milliseconds = now_ms() - start;

	if (out->solved) {
		if (opts->write_deps && !write_plan_file(opts, name, "-deps.json", plan_write_deps_json, &plan))
			out->error = true;
		if (opts->write_list && !write_plan_file(opts, name, "-list.json", plan_write_list_json, &plan))
			out->error = true;
		if (opts->write_dot && !write_plan_file(opts, name, ".dot", plan_write_dot, &plan))
			out->error = true;
	}
	if (b->target_count > 1)
		out->json_line = json_line(name, out->solved ? "solution" : "no_solution", idx, out->solved ? &r : NULL,
					   diagnostics);
	else
		out->text = out->solved ? selection_text(idx, &r) : xasprintf("%s\n", diagnostics ? diagnostics : "");

	plan_release(&plan);
	solve_result_release(&r);
	free(name);
}

static void *batch_worker(void *arg)
{
	struct batch *b = arg;
	struct solver solver;

	solver_init(&solver, b->universe);
	for (;;) {
		unsigned t = atomic_fetch_add(&b->next, 1);
		if (t >= b->target_count)
			break;
		solve_one(&solver, b, t);
	}
	solver_release(&solver);
	return NULL;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void print_summary(const struct batch *b, double wall_ms, unsigned workers)
{
	uint32_t solved = 0;
	double *times = xcalloc(b->target_count + 1, sizeof(double));

	for (uint32_t t = 0; t < b->target_count; t++) {
		solved += b->outcomes[t].solved;
		times[t] = b->outcomes[t].milliseconds;
	}
	qsort(times, b->target_count, sizeof(double), compare_doubles);
	fprintf(stderr,
		"%s: solved %u targets with %u workers in %.2f s: %u with a solution, %u without; "
		"per solve median %.2f ms, max %.2f ms\n",
		program_name, b->target_count, workers, wall_ms / 1000.0, solved, b->target_count - solved,
		times[b->target_count / 2], times[b->target_count ? b->target_count - 1 : 0]);
	free(times);
}

static unsigned worker_count(const struct options *opts, uint32_t targets)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = opts->jobs ? opts->jobs : cores > 0 ? (unsigned)cores : 1;

	return n > targets ? (targets ? targets : 1) : n;
}

static int run_batch(const struct options *opts, const struct repo_index *idx, const struct target_list *targets)
{
	double start = now_ms();
	struct universe universe;
	universe_build(&universe, idx, &opts->globals);

	struct batch b = { opts, idx, &universe, targets->items, targets->count, 0, NULL };
	b.outcomes = xcalloc(targets->count + 1, sizeof(*b.outcomes));
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

	int status = EXIT_OK;
	for (uint32_t t = 0; t < targets->count; t++) {
		struct outcome *o = &b.outcomes[t];
		if (o->json_line)
			printf("%s\n", o->json_line);
		else if (o->text)
			fputs(o->text, stdout);
		if (!o->solved && status == EXIT_OK)
			status = EXIT_FINDINGS;
		if (o->error)
			status = EXIT_USAGE;
		free(o->json_line);
		free(o->text);
	}
	if (targets->count > 1 && opts->verbosity >= 0)
		print_summary(&b, now_ms() - start, started + 1);

	free(b.outcomes);
	free(threads);
	universe_release(&universe);
	return status;
}

int command_solve(int argc, char **argv)
{
	static const char *const accepted[] = { "all",  "all-versions", "with-test", "with-doc", "deps",
						"list", "dot",          "output",    NULL };
	struct options opts;
	struct repo_index idx;
	struct diag_list diags = { 0 };
	struct target_list targets = { 0 };
	int status = EXIT_USAGE;

	options_parse(&opts, argc, argv, accepted, solve_usage);
	if (opts.arg_count == 0 && !opts.all) {
		fprintf(stderr, "%s: solve needs a target, or --all\nusage: %s\n", program_name, solve_usage);
		options_release(&opts);
		return EXIT_USAGE;
	}
	if (opts.output_dir && mkdir(opts.output_dir, 0777) < 0 && errno != EEXIST) {
		fprintf(stderr, "%s: cannot create output folder %s: %s\n", program_name, opts.output_dir,
			strerror(errno));
		options_release(&opts);
		return EXIT_USAGE;
	}
	if (load_repositories(&idx, &opts, &diags) < 0)
		goto out;
	report_load_problems(&diags, opts.verbosity);

	/* Without an `ocaml` package there is nothing to pin, and day10's roots would fail every solve. */
	if (!repo_find_name(&idx, "ocaml") && opts.verbosity >= 0)
		fprintf(stderr,
			"%s: warning: no repository has a package named ocaml; solving without pinning OCaml %s\n",
			program_name, opts.ocaml_version);
	if (collect_targets(&idx, &opts, &targets))
		status = run_batch(&opts, &idx, &targets);
	repo_index_release(&idx);
out:
	free(targets.items);
	diag_list_release(&diags);
	options_release(&opts);
	return status;
}
