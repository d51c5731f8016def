/*
 * The native build engine: one layer per (package, exact dependency closure, base, environment),
 * every target that needs a layer sharing one build, scheduled globally over all targets with N
 * parallel builds. A layer starts when its dependencies are published; a failure marks exactly the
 * layers that depend on it.
 */
#ifndef OBAKE_BUILD_H
#define OBAKE_BUILD_H

#include "base.h"
#include "batch.h"
#include "options.h"
#include "repo.h"
#include "store.h"

enum target_status { TARGET_SUCCESS, TARGET_FAILURE, TARGET_DEPENDENCY_FAILED, TARGET_NO_SOLUTION, TARGET_CANCELLED };

struct build_counts {
	unsigned built, cached, failed, dependency_failed, cancelled, total;
};

/* Per target: what happened, and where to look. */
struct target_result {
	enum target_status status;
	char key[LAYER_KEY_SIZE]; /* the target's layer */
	char *log;                /* its build log */
	char *failed_dependency;  /* "name.version" of the dependency that failed, for dependency_failed */
	char *error;              /* why obake could not build it (no log then), for a failure */
};

/*
 * Called once before the first build with NEEDED[p] set for every package p of the index that has a
 * layer to build (neither cached nor recorded as failed): the moment to fetch their sources. It
 * sets UNAVAILABLE[p] for the packages whose sources could not be had: their layers are not built
 * and nothing is recorded, so that a later run tries again.
 */
typedef void build_prepare_fn(const uint8_t *needed, uint8_t *unavailable, void *context);

/*
 * Build OUTCOMES' solved targets in STORE on BASE with OPTS->jobs parallel builds, using the source
 * cache CACHE_DIR, after calling PREPARE (if not NULL) with CONTEXT. With OPTS->dry_run, only
 * report which layers exist. Fills RESULTS (one per outcome) and COUNTS; returns 0, 1 when
 * interrupted (Ctrl-C, SIGTERM), or -1 when the layer graph cannot be made.
 */
int build_run(const struct options *opts, const struct repo_index *idx, const struct store *store,
	      const struct base *base, const char *cache_dir, const struct outcome *outcomes, uint32_t count,
	      build_prepare_fn *prepare, void *context, struct target_result *results, struct build_counts *counts);

const char *target_status_name(enum target_status s);

#endif
