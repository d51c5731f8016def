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

/* Solve the session's targets and write their Dockerfiles, bake file and driver into DIR. */
static int dockerfile_targets(struct command_session *s, const char *dir)
{
	const struct options *opts = &s->opts;
	char *context = realpath(opts->repositories[0], NULL);
	int status = EXIT_USAGE;

	if (!context) {
		fprintf(stderr, "%s: cannot resolve repository %s: %s\n", program_name, opts->repositories[0],
			strerror(errno));
		return EXIT_USAGE;
	}
	if (!targets_collect(&s->idx, opts, &s->targets)) {
		free(context);
		return EXIT_USAGE;
	}

	uint32_t count = s->targets.count;
	struct batch_report batch;
	struct outcome *outcomes = batch_solve(opts, &s->idx, &s->targets, NULL, NULL, &batch);
	struct dockerfile_report report;
	/* Offline builds need the archives in the build context, which is then obake's own folder. */
	if (opts->archive_mirror_count > 0) {
		free(context);
		context = build_context_create(opts, &s->idx, outcomes, count, dir);
	}
	if (context)
		status = dockerfile_write_all(opts, &s->idx, context, outcomes, count, &report) == 0 ? EXIT_OK
												     : EXIT_USAGE;
	if (status == EXIT_OK && opts->verbosity >= 0)
		print_report(&report, dir);
	batch_release(outcomes, count);
	free(context);
	return status;
}

int command_dockerfile(int argc, char **argv)
{
	static const char *const accepted[] = {
		"all",      "all-versions", "with-test",     "with-doc",   "output",   "base-image",     "opam-source",
		"opam-url", "max-layers",   "max-file-size", "batch-size", "no-group", "archive-mirror", NULL
	};
	struct command_session session;
	int status = command_session_open(&session, argc, argv, accepted, dockerfile_usage);
	if (status != EXIT_OK)
		return status;
	struct options *opts = &session.opts;

	/* The build context is one folder: the repository that COPY puts into the image. */
	if (opts->repository_count > 1) {
		fprintf(stderr,
			"%s: dockerfile takes one repository, the build context; merge the others into it first\n",
			program_name);
		command_session_close(&session);
		return EXIT_USAGE;
	}
	const char *dir = opts->output_dir ? opts->output_dir : ".";
	status = dockerfile_targets(&session, dir);
	command_session_close(&session);
	return status;
}
