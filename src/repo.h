/*
 * Repository index: every package version of one or more opam repositories, parsed in parallel.
 * When several repositories hold the same package version, the first one named wins.
 */
#ifndef OBAKE_REPO_H
#define OBAKE_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"
#include "filter.h"
#include "intern.h"
#include "package.h"

/* All versions of one package name, a slice of the index's package array. */
struct package_name {
	const char *name;
	uint32_t first; /* index of the oldest version in repo_index.packages */
	uint32_t count; /* number of versions, ordered oldest to newest */
};

struct repo_index {
	char **repositories; /* paths as given */
	uint32_t repository_count;
	struct package *packages; /* by name (byte order), then version (opam order) */
	uint32_t package_count;
	struct package_name *names; /* by name; package.name_id indexes this */
	uint32_t name_count;
	struct intern_table versions; /* every distinct version string; package.version_id indexes this */
	struct arena *arenas;         /* one per loader thread; hold the texts and trees */
	uint32_t arena_count;
	size_t files_read; /* opam files found, including those that could not be read or parsed */
	size_t bytes_read;
	size_t files_failed; /* files that could not be read or parsed */
};

/*
 * Load the repositories at PATHS with THREADS parallel readers (0: one per core). Problems with single
 * files go to DIAGS and the load goes on. Returns -1 if a repository itself cannot be read, after
 * adding an error naming it to DIAGS. Release IDX with repo_index_release in both cases.
 */
int repo_index_load(struct repo_index *idx, char *const *paths, uint32_t count, unsigned threads,
		    struct diag_list *diags);
void repo_index_release(struct repo_index *idx);

/* Return the versions of NAME, or NULL if no repository has it. */
const struct package_name *repo_find_name(const struct repo_index *idx, const char *name);
/* Return NAME.VERSION (any version string that compares equal), or NULL. */
const struct package *repo_find_package(const struct repo_index *idx, const char *name, const char *version);

/* Evaluate P's `available:` filter in GLOBALS (undefined counts as false). */
bool package_is_available(const struct package *p, const struct variables *globals, struct arena *scratch);
/* The newest version of NAME that is available in GLOBALS, avoid-version or not; NULL if none. */
const struct package *repo_latest_available(const struct repo_index *idx, const struct package_name *name,
					    const struct variables *globals, struct arena *scratch);

#endif
