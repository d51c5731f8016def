/* `obake solve`: opam-0install's selection for each target, and package-tool's dependency files. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "cmd_common.h"
#include "commands.h"
#include "util.h"

static const char solve_usage[] =
	"obake solve [-r DIR]... [--ocaml VERSION] [--all] [--all-versions] [--with-test] [--with-doc]\n"
	"                   [--deps] [--list] [--dot] [-o DIR] [-j N] TARGET...";

/* Write one of the plan's files into the output folder; returns false after printing the error. */
static bool write_plan_file(const char *dir, const char *target, const char *suffix,
			    void (*writer)(const struct plan *, FILE *), const struct plan *plan)
{
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

static bool write_plan_files(const struct options *opts, const char *name, const struct plan *plan)
{
	const char *dir = opts->output_dir ? opts->output_dir : ".";
	bool ok = true;

	if (opts->write_deps)
		ok &= write_plan_file(dir, name, "-deps.json", plan_write_deps_json, plan);
	if (opts->write_list)
		ok &= write_plan_file(dir, name, "-list.json", plan_write_list_json, plan);
	if (opts->write_dot)
		ok &= write_plan_file(dir, name, ".dot", plan_write_dot, plan);
	return ok;
}

static void print_json_line(const char *target, const struct outcome *o, const struct repo_index *idx)
{
	json_t *solution = json_array();

	for (uint32_t i = 0; o->solved && i < o->result.package_count; i++) {
		const struct package *p = &idx->packages[o->result.packages[i]];
		char *s = xasprintf("%s.%s", p->name, p->version);
		json_array_append_new(solution, json_string(s));
		free(s);
	}
	json_t *line = json_pack("{s:s, s:s, s:o, s:s}", "package", target, "status",
				 o->solved ? "solution" : "no_solution", "solution", solution, "diagnostics",
				 o->diagnostics ? o->diagnostics : "");
	json_dumpf(line, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(line);
}

static void print_text(const struct outcome *o, const struct repo_index *idx)
{
	if (!o->solved) {
		printf("%s\n", o->diagnostics ? o->diagnostics : "no solution");
		return;
	}
	for (uint32_t i = 0; i < o->result.package_count; i++) {
		const struct package *p = &idx->packages[o->result.packages[i]];
		printf("%s.%s\n", p->name, p->version);
	}
}

/* Prints each outcome as the batch hands it over, in target order. */
struct printer {
	const struct options *opts;
	const struct repo_index *idx;
	bool batch_mode; /* JSON lines whenever the request is for many targets, however many it came to */
	int status;
};

static void print_outcome(void *ctx, const struct outcome *o)
{
	struct printer *pr = ctx;
	const struct package *p = &pr->idx->packages[o->target];
	char *name = xasprintf("%s.%s", p->name, p->version);

	if (o->solved && !write_plan_files(pr->opts, name, &o->plan))
		pr->status = EXIT_USAGE;
	if (pr->batch_mode)
		print_json_line(name, o, pr->idx);
	else
		print_text(o, pr->idx);
	/* Flushed per target so a reader sees results as they come. */
	fflush(stdout);
	if (!o->solved && pr->status == EXIT_OK)
		pr->status = EXIT_FINDINGS;
	free(name);
}

int command_solve(int argc, char **argv)
{
	static const char *const accepted[] = { "all",  "all-versions", "with-test", "with-doc", "deps",
						"list", "dot",          "output",    NULL };
	struct command_session session;
	int status = command_session_open(&session, argc, argv, accepted, solve_usage);
	if (status != EXIT_OK)
		return status;
	const struct options *opts = &session.opts;
	const struct repo_index *idx = &session.idx;
	struct target_list *targets = &session.targets;

	/* Without an `ocaml` package there is nothing to pin, and day10's roots would fail every solve. */
	if (!repo_find_name(idx, "ocaml") && opts->verbosity >= 0)
		fprintf(stderr,
			"%s: warning: no repository has a package named ocaml; solving without pinning OCaml %s\n",
			program_name, opts->ocaml_version);
	status = EXIT_USAGE;
	if (targets_collect(idx, opts, targets)) {
		struct batch_report report;
		struct printer printer = { opts, idx,
					   targets->count > 1 || opts->all || opts->all_versions || opts->arg_count > 1,
					   EXIT_OK };
		struct outcome *outcomes = batch_solve(opts, idx, targets, print_outcome, &printer, &report);
		status = printer.status;
		if (targets->count > 1 && opts->verbosity >= 0)
			batch_print_summary(outcomes, targets->count, &report);
		batch_release(outcomes, targets->count);
	}
	command_session_close(&session);
	return status;
}
