/* `obake dockerfile`: Dockerfiles, bake files and a driver script that BuildKit can run. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "batch.h"
#include "build_context.h"
#include "cmd_common.h"
#include "commands.h"
#include "dockerfile.h"
#include "util.h"

static const char dockerfile_usage[] =
	"obake dockerfile [-r DIR] [--ocaml VERSION] [--all] [--all-versions] [--with-test] [-o DIR]\n"
	"                        [--base-image IMAGE] [--opam-source distribution|release] [--opam-url URL]\n"
	"                        [--max-layers N] [--max-file-size BYTES] [--batch-size N] [--no-group]\n"
	"                        [--archive-mirror DIR|URL]... TARGET...";

static void print_report(const struct dockerfile_report *r, const char *dir)
{
	fprintf(stderr,
		"%s: wrote %u Dockerfiles into %s (%u targets without a solution skipped), %u combined parts, "
		"%u bake files with %u batches\n",
		program_name, r->targets, dir, r->skipped, r->parts, r->bake_files, r->batches);
	fprintf(stderr,
		"%s: %llu install steps with one per package per target; %llu written, %llu distinct for "
		"BuildKit's cache; %u targets grouped; deepest image %u layers above the base\n",
		program_name, (unsigned long long)r->package_steps, (unsigned long long)r->emitted_steps,
		(unsigned long long)r->distinct_steps, r->grouped, r->max_depth);
}

int command_dockerfile(int argc, char **argv)
{
	static const char *const accepted[] = {
		"all",      "all-versions", "with-test",     "with-doc",   "output",   "base-image",     "opam-source",
		"opam-url", "max-layers",   "max-file-size", "batch-size", "no-group", "archive-mirror", NULL
	};
	struct options opts;
	struct repo_index idx;
	struct diag_list diags = { 0 };
	struct target_list targets = { 0 };
	int status = EXIT_USAGE;

	options_parse(&opts, argc, argv, accepted, dockerfile_usage);
	if (opts.arg_count == 0 && !opts.all) {
		fprintf(stderr, "%s: dockerfile needs a target, or --all\nusage: %s\n", program_name, dockerfile_usage);
		options_release(&opts);
		return EXIT_USAGE;
	}
	/* The build context is one folder: the repository that COPY puts into the image. */
	if (opts.repository_count > 1) {
		fprintf(stderr,
			"%s: dockerfile takes one repository, the build context; merge the others into it first\n",
			program_name);
		options_release(&opts);
		return EXIT_USAGE;
	}
	const char *dir = opts.output_dir ? opts.output_dir : ".";
	if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
		fprintf(stderr, "%s: cannot create output folder %s: %s\n", program_name, dir, strerror(errno));
		options_release(&opts);
		return EXIT_USAGE;
	}
	if (load_repositories(&idx, &opts, &diags) < 0)
		goto out;
	report_load_problems(&diags, opts.verbosity);

	char *context = realpath(opts.repositories[0], NULL);
	if (!context)
		fprintf(stderr, "%s: cannot resolve repository %s: %s\n", program_name, opts.repositories[0],
			strerror(errno));
	if (context && targets_collect(&idx, &opts, &targets)) {
		struct batch_report batch;
		struct outcome *outcomes = batch_solve(&opts, &idx, &targets, NULL, NULL, &batch);
		struct dockerfile_report report;
		/* Offline builds need the archives in the build context, which is then obake's own folder. */
		if (opts.archive_mirror_count > 0) {
			free(context);
			context = build_context_create(&opts, &idx, outcomes, targets.count, dir);
		}
		if (context)
			status = dockerfile_write_all(&opts, &idx, context, outcomes, targets.count, &report) == 0
					 ? EXIT_OK
					 : EXIT_USAGE;
		if (status == EXIT_OK && opts.verbosity >= 0)
			print_report(&report, dir);
		batch_release(outcomes, targets.count);
	}
	free(context);
	repo_index_release(&idx);
out:
	target_list_release(&targets);
	diag_list_release(&diags);
	options_release(&opts);
	return status;
}
