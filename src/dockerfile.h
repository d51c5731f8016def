/*
 * Dockerfiles and bake files for BuildKit, as package-tool wrote them but within BuildKit's limits:
 * no image deeper than a layer budget (consecutive installs share RUN steps, grouped so that the
 * same prefix of dependencies gives byte-identical steps in every target), no file over a size
 * limit (the combined Dockerfile and the bake file are split into parts), and a driver script.
 */
#ifndef OBAKE_DOCKERFILE_H
#define OBAKE_DOCKERFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "batch.h"
#include "options.h"
#include "repo.h"

struct dockerfile_report {
	uint32_t targets;        /* targets with a Dockerfile */
	uint32_t skipped;        /* targets without a solution */
	uint32_t grouped;        /* targets whose installs had to share RUN steps */
	uint64_t package_steps;  /* one RUN per package per target, as package-tool wrote them */
	uint64_t emitted_steps;  /* RUN steps in all generated per-target Dockerfiles */
	uint64_t distinct_steps; /* steps BuildKit has to run at most: distinct (step, parent) chains */
	uint32_t max_depth;      /* deepest generated image, in layers above the base */
	uint32_t parts;          /* combined Dockerfile parts */
	uint32_t bake_files;
	uint32_t batches;
};

/*
 * Write every file for OUTCOMES into OPTS->output_dir: one <name.version>.dockerfile per solved
 * target, Dockerfile.NNN parts, docker-bake[.NNN].hcl, build-all.sh and index.json. CONTEXT is
 * the build context: the repository, or with OPTS->archive_mirrors the folder that
 * build_context_create made. Returns -1 after printing an error when a file cannot be written.
 */
int dockerfile_write_all(const struct options *opts, const struct repo_index *idx, const char *context,
			 const struct outcome *outcomes, uint32_t count, struct dockerfile_report *report);

#endif
