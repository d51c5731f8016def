/*
 * The build context that `obake dockerfile --archive-mirror` writes: the repository and the source
 * archives the solutions need, so that the generated Dockerfiles build without network.
 *
 *     OUT/context/opam-repository/                       the repository, hard-linked (copied across
 *                                                        file systems)
 *     OUT/context/download-cache/<algorithm>/<xx>/<hash>  the archives, in opam's download-cache layout
 */
#ifndef OBAKE_BUILD_CONTEXT_H
#define OBAKE_BUILD_CONTEXT_H

#include <stdint.h>

#include "batch.h"
#include "options.h"
#include "repo.h"

/* Folders inside the context, which the generated COPY instructions name. */
#define BUILD_CONTEXT_REPOSITORY "opam-repository"
#define BUILD_CONTEXT_DOWNLOAD_CACHE "download-cache"

/*
 * Replace OUT_DIR/context with the repository OPTS->repositories[0] and the sources of the solved
 * OUTCOMES, looked up in OPTS's archive mirrors by checksum as `obake fetch` does. Returns the
 * context's absolute path (caller frees), or NULL after printing an error. A source that cannot be
 * fetched is reported but does not fail the call: the build of its package fails, as natively.
 */
char *build_context_create(const struct options *opts, const struct repo_index *idx, const struct outcome *outcomes,
			   uint32_t count, const char *out_dir);

#endif
