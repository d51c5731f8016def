/* `obake build`, `obake base`, `obake fetch` and `obake prune`: the native build engine's commands. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "batch.h"
#include "build.h"
#include "cmd_common.h"
#include "commands.h"
#include "depexts.h"
#include "fetch.h"
#include "files.h"
#include "filter.h"
#include "process.h"
#include "sandbox.h"
#include "store.h"
#include "util.h"

static const char build_usage[] =
	"obake build [-r DIR] [--store DIR] [-o DIR] [-j N] [--ocaml VERSION] [--all] [--dry-run] [--retry-failed]\n"
	"                   [--timeout SECONDS] [--memory SIZE] [--runtime runc|crun] [--archive-mirror DIR|URL]...\n"
	"                   [base options] TARGET...";

static const char *const build_options[] = {
	"depexts", "detect-sys-ocaml", "all",      "all-versions",   "with-test", "with-doc",     "output",
	"store",   "timeout",          "memory",   "runtime",        "dry-run",   "retry-failed", "suite",
	"mirror",  "extra-packages",   "base-tar", "archive-mirror", NULL
};

/* The store's root: --store, $OBAKE_STORE, or ~/.cache/obake. */
static char *store_root(const struct options *opts)
{
	if (opts->store_dir)
		return xstrdup(opts->store_dir);
	const char *env = getenv("OBAKE_STORE");
	if (env && *env)
		return xstrdup(env);
	const char *home = getenv("HOME");
	return xasprintf("%s/.cache/obake", home && *home ? home : ".");
}

/* The store's platform directory name: <os-distribution>-<os-version>-<arch>. */
static char *platform_name(const struct options *opts)
{
	struct fvalue d, v, a;
	const char *distribution = variables_get(&opts->globals, "os-distribution", &d) && d.string ? d.string
												    : "unknown";
	const char *version = variables_get(&opts->globals, "os-version", &v) && v.string ? v.string : "unknown";
	const char *arch = variables_get(&opts->globals, "arch", &a) && a.string ? a.string : "unknown";
	return xasprintf("%s-%s-%s", distribution, version, arch);
}

/* The arguments fetch_needed passes on to fetch_sources. */
struct build_fetch {
	const struct options *opts;
	const struct repo_index *idx;
	const char *cache_dir;
	const struct outcome *outcomes;
	uint32_t count;
};

/*
 * Fetch the sources of the layers about to be built, and only those: a run whose layers are all
 * cached reads no archive. The packages whose sources cannot be fetched are marked UNAVAILABLE:
 * the engine does not build them this run, and the other builds go on.
 */
static void fetch_needed(const uint8_t *needed, uint8_t *unavailable, void *context)
{
	const struct build_fetch *f = context;

	fetch_sources(f->opts, f->idx, f->cache_dir, f->outcomes, f->count, needed, unavailable);
}

/*
 * The Debian packages the solutions' `depexts` name in this environment, comma-separated, for the
 * base to preinstall (builds have no network to install them). Returns a new string.
 */
static char *extra_packages_with_depexts(const struct options *opts, const struct repo_index *idx,
					 const struct outcome *outcomes, uint32_t count)
{
	struct name_set names = { 0 };

	for (uint32_t t = 0; t < count; t++)
		for (uint32_t i = 0; outcomes[t].solved && i < outcomes[t].plan.count; i++)
			depexts_add(&names, &idx->packages[outcomes[t].plan.order[i]], &opts->globals);

	struct strbuf sb = { 0 };
	strbuf_adds(&sb, "");
	for (size_t i = 0; i < name_set_count(&names); i++) {
		const char *name = name_set_at(&names, i);
		if (debian_package_name_valid(name))
			strbuf_addf(&sb, "%s%s", sb.len ? "," : "", name);
		else
			warn("a depexts entry names \"%s\", which is not a Debian package name; it is left out", name);
	}
	name_set_release(&names);
	return strbuf_detach(&sb);
}

/* The commit of the first repository when it is a git checkout, for the results; NULL otherwise. */
static char *repository_commit(const char *repo)
{
	char *const argv[] = { "git", "-C", (char *)repo, "rev-parse", "HEAD", NULL };
	char *error = NULL;
	int exit_status;
	char *text = command_output(NULL, argv, &exit_status, &error);

	free(error);
	if (!text)
		return NULL;
	text[strcspn(text, "\n")] = '\0';
	if (exit_status != 0 || strlen(text) < 7) {
		free(text);
		return NULL;
	}
	return text;
}

/* The failed targets with their logs, for results.md; nothing when there are none. */
static void add_failures_md(struct strbuf *md, const struct repo_index *idx, const struct outcome *outcomes,
			    const struct target_result *results, uint32_t count, unsigned total)
{
	if (total == 0)
		return;
	strbuf_addf(md, "\n## Failed (%u)\n\n", total);
	for (uint32_t t = 0; t < count; t++) {
		if (results[t].status != TARGET_FAILURE)
			continue;
		const struct package *p = &idx->packages[outcomes[t].target];
		if (results[t].error)
			strbuf_addf(md, "- %s.%s: %s\n", p->name, p->version, results[t].error);
		else
			strbuf_addf(md, "- %s.%s: `%s`\n", p->name, p->version, results[t].log);
	}
}

/*
 * The targets a failed dependency stopped, grouped under that dependency: one broken package
 * often stops many targets, and the reader wants the package to fix first.
 */
static void add_dependency_failures_md(struct strbuf *md, const struct repo_index *idx, const struct outcome *outcomes,
				       const struct target_result *results, uint32_t count, unsigned total)
{
	if (total == 0)
		return;
	uint8_t *listed = xcalloc(count + 1, 1);

	strbuf_addf(md, "\n## Not built because a dependency failed (%u)\n\n", total);
	for (uint32_t t = 0; t < count; t++) {
		if (results[t].status != TARGET_DEPENDENCY_FAILED || listed[t])
			continue;
		const char *cause = results[t].failed_dependency;
		strbuf_addf(md, "- %s failed, so these were not built:", cause);
		for (uint32_t u = t; u < count; u++) {
			if (results[u].status != TARGET_DEPENDENCY_FAILED ||
			    strcmp(results[u].failed_dependency, cause) != 0)
				continue;
			const struct package *p = &idx->packages[outcomes[u].target];
			strbuf_addf(md, "%s %s.%s", u == t ? "" : ",", p->name, p->version);
			listed[u] = 1;
		}
		strbuf_adds(md, "\n");
	}
	free(listed);
}

/* The targets without a solution; results.json gives the explanation of each. */
static void add_no_solution_md(struct strbuf *md, const struct repo_index *idx, const struct outcome *outcomes,
			       const struct target_result *results, uint32_t count, unsigned total)
{
	if (total == 0)
		return;
	strbuf_addf(
		md,
		"\n## No solution (%u)\n\nresults.json gives the reason for each, as `obake solve` explains it.\n\n",
		total);
	for (uint32_t t = 0; t < count; t++) {
		if (results[t].status != TARGET_NO_SOLUTION)
			continue;
		const struct package *p = &idx->packages[outcomes[t].target];
		strbuf_addf(md, "- %s.%s\n", p->name, p->version);
	}
}

static int write_results(const struct options *opts, const struct repo_index *idx, const struct outcome *outcomes,
			 const struct target_result *results, uint32_t count, const struct build_counts *counts)
{
	const char *dir = opts->output_dir ? opts->output_dir : ".";
	char *commit = repository_commit(opts->repositories[0]);
	json_t *targets = json_array();
	struct strbuf md = { 0 };
	unsigned by_status[5] = { 0 };

	for (uint32_t t = 0; t < count; t++) {
		const struct package *p = &idx->packages[outcomes[t].target];
		const struct target_result *r = &results[t];
		char *name = xasprintf("%s.%s", p->name, p->version);
		json_t *o = json_pack("{s:s, s:s}", "package", name, "status", target_status_name(r->status));
		by_status[r->status]++;
		if (r->status != TARGET_NO_SOLUTION) {
			if (r->key[0])
				json_object_set_new(o, "layer", json_string(r->key));
			if (r->log)
				json_object_set_new(o, "log", json_string(r->log));
			if (r->error)
				json_object_set_new(o, "error", json_string(r->error));
			json_t *solution = json_array();
			for (uint32_t i = 0; i < outcomes[t].plan.count; i++) {
				const struct package *q = &idx->packages[outcomes[t].plan.order[i]];
				json_array_append_new(solution, json_sprintf("%s.%s", q->name, q->version));
			}
			json_object_set_new(o, "solution", solution);
		} else {
			json_object_set_new(o, "diagnostics",
					    json_string(outcomes[t].diagnostics ? outcomes[t].diagnostics : ""));
		}
		if (r->failed_dependency)
			json_object_set_new(o, "failed_dependency", json_string(r->failed_dependency));
		json_array_append_new(targets, o);
		free(name);
	}

	json_t *root = json_pack("{s:s?, s:s, s:o}", "repository_commit", commit, "ocaml", opts->ocaml_version,
				 "targets", targets);
	char *path = xasprintf("%s/results.json", dir);
	errno = 0;
	int status = json_dump_file(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (status != 0)
		fprintf(stderr, "%s: cannot write %s: %s\n", program_name, path,
			errno ? strerror(errno) : "the JSON library gave no reason");
	json_decref(root);

	strbuf_addf(&md, "# obake build results\n\nRepository %s%s%s, OCaml %s.\n\n", opts->repositories[0],
		    commit ? " at commit " : "", commit ? commit : "", opts->ocaml_version);
	strbuf_addf(&md, "| status | targets |\n| --- | --- |\n");
	for (int s = 0; s < 5; s++)
		strbuf_addf(&md, "| %s | %u |\n", target_status_name((enum target_status)s), by_status[s]);
	strbuf_addf(&md,
		    "\nLayers: %u built, %u from the store, %u failed, %u not built because a dependency failed.\n",
		    counts->built, counts->cached, counts->failed, counts->dependency_failed);
	add_failures_md(&md, idx, outcomes, results, count, by_status[TARGET_FAILURE]);
	add_dependency_failures_md(&md, idx, outcomes, results, count, by_status[TARGET_DEPENDENCY_FAILED]);
	add_no_solution_md(&md, idx, outcomes, results, count, by_status[TARGET_NO_SOLUTION]);
	char *md_path = xasprintf("%s/results.md", dir);
	FILE *f = fopen(md_path, "w");
	if (!f || fputs(strbuf_str(&md), f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "%s: cannot write %s: %s\n", program_name, md_path, strerror(errno));
		status = -1;
	}
	free(md_path);
	free(path);
	free(commit);
	strbuf_release(&md);
	return status;
}

/*
 * --detect-sys-ocaml: set the sys-ocaml-* variables not given on the command line from the base's
 * ocamlc, as opam would inside it. The base is the one --extra-packages describes, made first if
 * missing: the solutions, and so the system packages --depexts adds, depend on these values.
 */
static int detect_sys_ocaml(struct options *opts, const char *root)
{
	struct base base = { 0 };
	char *values[4] = { 0 }, *error = NULL;
	const char *optional = opts->optional_packages;

	opts->optional_packages = NULL;
	int status = base_ensure(opts, root, !opts->dry_run, &base, &error);
	opts->optional_packages = optional;
	if (status == 0)
		status = base_detect_sys_ocaml(&base, values, &error);
	if (status != 0) {
		fprintf(stderr, "%s: cannot detect the system compiler: %s\n", program_name, error);
		free(error);
		base_release(&base);
		return -1;
	}
	for (size_t i = 0; i < ARRAY_LEN(values); i++) {
		if (!(opts->sys_ocaml_given & (1u << i)))
			variables_set_string(&opts->globals, sys_ocaml_variables[i], values[i]);
		if (opts->verbosity >= 0)
			fprintf(stderr, "%s: %s=%s%s\n", program_name, sys_ocaml_variables[i], values[i],
				opts->sys_ocaml_given & (1u << i) ? " (detected; the command line's value is used)"
								  : "");
		free(values[i]);
	}
	base_release(&base);
	return 0;
}

/* Say which optional system packages the base could not hold: the packages needing them will fail. */
static void warn_missing_packages(const struct base *base, int verbosity)
{
	char *missing = base_missing_packages(base);

	if (missing && verbosity >= 0)
		warn("these system packages were left out of the base, because its Debian release does not have "
		     "them or they conflict with others: %s; packages that need them fail in their build",
		     missing);
	free(missing);
}

/* Build the solved OUTCOMES, write results.json and results.md, and print the summary. */
static int run_builds(const struct options *opts, const struct repo_index *idx, const struct store *store,
		      const struct base *base, const char *cache_dir, const struct outcome *outcomes, uint32_t count)
{
	struct build_fetch fetch = { opts, idx, cache_dir, outcomes, count };
	struct target_result *results = xcalloc(count + 1, sizeof(*results));
	struct build_counts counts;
	int run = build_run(opts, idx, store, base, cache_dir, outcomes, count, fetch_needed, &fetch, results, &counts);
	int status = write_results(opts, idx, outcomes, results, count, &counts) == 0 && run == 0 ? EXIT_OK
												  : EXIT_USAGE;
	if (run == 1)
		status = EXIT_INTERRUPTED;

	unsigned bad = 0;
	for (uint32_t t = 0; t < count; t++) {
		bad += results[t].status != TARGET_SUCCESS;
		free(results[t].log);
		free(results[t].error);
		free(results[t].failed_dependency);
	}
	free(results);
	if (status == EXIT_OK && bad > 0)
		status = EXIT_FINDINGS;

	char dry_run_note[64];
	snprintf(dry_run_note, sizeof(dry_run_note), " (dry run: %u to build)",
		 counts.total - counts.cached - counts.failed - counts.dependency_failed);
	if (opts->verbosity >= 0)
		fprintf(stderr, "%s: %u targets; layers: %u built, %u cached, %u failed, %u dependency failed%s\n",
			program_name, count, counts.built, counts.cached, counts.failed, counts.dependency_failed,
			opts->dry_run ? dry_run_note : "");
	return status;
}

/* Collect and solve the session's targets, make sure of the store and the base, and build; returns the exit status. */
static int build_targets(struct command_session *s)
{
	struct options *opts = &s->opts;
	const struct repo_index *idx = &s->idx;
	char *root = store_root(opts), *platform = platform_name(opts), *error = NULL;
	char *cache_dir = xasprintf("%s/sources", root);
	struct store store = { 0 };
	struct base base = { 0 };
	struct batch_report report;
	int status = EXIT_USAGE;

	/* The results go there at the end; a folder that cannot take them should stop the run now. */
	errno = 0;
	const char *out_dir = opts->output_dir ? opts->output_dir : ".";
	struct stat out_st;
	if (stat(out_dir, &out_st) != 0 || !S_ISDIR(out_st.st_mode) || access(out_dir, W_OK) != 0) {
		fprintf(stderr, "%s: cannot write results into %s: %s\n", program_name, out_dir,
			errno ? strerror(errno) : "not a folder");
		goto release_paths;
	}
	/* Before the targets: which versions are available can depend on the detected values. */
	if (opts->detect_sys_ocaml && detect_sys_ocaml(opts, root) != 0)
		goto release_paths;
	if (!targets_collect(idx, opts, &s->targets))
		goto release_paths;
	uint32_t count = s->targets.count;
	struct outcome *outcomes = batch_solve(opts, idx, &s->targets, NULL, NULL, &report);
	char *depexts = NULL;
	if (opts->depexts && opts->base_tar) {
		warn("--depexts has no effect with --base-tar: an imported base is used as it is");
	} else if (opts->depexts) {
		depexts = extra_packages_with_depexts(opts, idx, outcomes, count);
		opts->optional_packages = depexts;
		if (opts->verbosity >= 0 && *depexts)
			fprintf(stderr, "%s: the base will also hold the system packages the solutions name: %s\n",
				program_name, depexts);
	}

	/* Before store_open cleans up after killed runs: their containers may still use those directories. */
	if (!opts->dry_run)
		sandbox_reap_orphans(opts->runtime);
	if (store_open(&store, root, platform, &error) != 0 ||
	    base_ensure(opts, root, !opts->dry_run, &base, &error) != 0) {
		fprintf(stderr, "%s: %s\n", program_name, error);
		free(error);
	} else if (!opts->dry_run && (mkdir(cache_dir, 0755) != 0 && errno != EEXIST)) {
		fprintf(stderr, "%s: cannot create %s: %s\n", program_name, cache_dir, strerror(errno));
	} else {
		warn_missing_packages(&base, opts->verbosity);
		status = run_builds(opts, idx, &store, &base, cache_dir, outcomes, count);
	}

	batch_release(outcomes, count);
	free(depexts);
	base_release(&base);
	store_close(&store);
release_paths:
	free(cache_dir);
	free(root);
	free(platform);
	return status;
}

int command_build(int argc, char **argv)
{
	struct command_session session;
	int status = command_session_open(&session, argc, argv, build_options, build_usage);

	if (status != EXIT_OK)
		return status;
	status = build_targets(&session);
	command_session_close(&session);
	return status;
}

static const char base_usage[] = "obake base [--store DIR] [--suite SUITE] [--mirror URL] [--extra-packages A,B] "
				 "[--base-tar FILE]";

int command_base(int argc, char **argv)
{
	static const char *const accepted[] = { "store", "suite", "mirror", "extra-packages", "base-tar", NULL };
	struct options opts;
	struct base base;
	char *error = NULL;

	options_parse(&opts, argc, argv, accepted, base_usage);
	char *root = store_root(&opts);
	int status = base_ensure(&opts, root, true, &base, &error);
	if (status == 0)
		printf("%s\n", base.rootfs);
	else
		fprintf(stderr, "%s: %s\n", program_name, error);
	free(error);
	base_release(&base);
	free(root);
	options_release(&opts);
	return status == 0 ? EXIT_OK : EXIT_USAGE;
}

static const char fetch_usage[] = "obake fetch [-r DIR] [--store DIR] [--archive-mirror DIR|URL]... [--all] TARGET...";

int command_fetch(int argc, char **argv)
{
	static const char *const accepted[] = { "all",   "all-versions",   "with-test", "with-doc",
						"store", "archive-mirror", NULL };
	struct command_session session;
	int status = command_session_open(&session, argc, argv, accepted, fetch_usage);

	if (status != EXIT_OK)
		return status;
	status = EXIT_USAGE;
	if (targets_collect(&session.idx, &session.opts, &session.targets)) {
		const struct options *opts = &session.opts;
		uint32_t count = session.targets.count;
		char *root = store_root(opts), *cache_dir = xasprintf("%s/sources", root);
		struct batch_report report;
		struct outcome *outcomes = batch_solve(opts, &session.idx, &session.targets, NULL, NULL, &report);

		char *mkdir_error = NULL;
		if (make_dirs(cache_dir, &mkdir_error) == 0)
			status = fetch_sources(opts, &session.idx, cache_dir, outcomes, count, NULL, NULL) == 0
					 ? EXIT_OK
					 : EXIT_FINDINGS;
		else
			fprintf(stderr, "%s: %s\n", program_name, mkdir_error);
		free(mkdir_error);
		batch_release(outcomes, count);
		free(root);
		free(cache_dir);
	}
	command_session_close(&session);
	return status;
}

static const char prune_usage[] = "obake prune [--store DIR] [--older-than DAYS] [--max-size SIZE] [--dry-run]";

int command_prune(int argc, char **argv)
{
	static const char *const accepted[] = { "store", "older-than", "max-size", "dry-run", NULL };
	struct options opts;
	struct store store = { 0 };
	char *error = NULL;
	int status = EXIT_USAGE;

	options_parse(&opts, argc, argv, accepted, prune_usage);
	if (opts.older_than_days == 0 && opts.max_size == 0) {
		fprintf(stderr, "%s: prune needs --older-than DAYS or --max-size SIZE\nusage: %s\n", program_name,
			prune_usage);
		options_release(&opts);
		return EXIT_USAGE;
	}
	if (opts.arg_count > 0) {
		fprintf(stderr, "%s: prune takes no operand, found '%s'\nusage: %s\n", program_name, opts.args[0],
			prune_usage);
		options_release(&opts);
		return EXIT_USAGE;
	}
	char *root = store_root(&opts), *platform = platform_name(&opts);
	struct stat st;
	/* A mistyped --store must not pass for an empty store. */
	if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode))
		error = xasprintf("no store at %s: check --store or $OBAKE_STORE", root);
	else if (store_open(&store, root, platform, &error) == 0) {
		struct prune_options prune = { opts.older_than_days, opts.max_size, opts.dry_run };
		unsigned long long freed = 0;
		long removed = store_prune(&store, &prune, &freed, &error);
		if (removed >= 0) {
			printf("%s %ld layers, %.1f MB\n", opts.dry_run ? "would remove" : "removed", removed,
			       (double)freed / 1e6);
			status = EXIT_OK;
		}
	}
	if (error) {
		fprintf(stderr, "%s: %s\n", program_name, error);
		free(error);
	}
	store_close(&store);
	free(root);
	free(platform);
	options_release(&opts);
	return status;
}
