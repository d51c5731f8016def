/*
 * The source cache: every url and extra-source of the planned packages, downloaded once, verified
 * against the opam file's checksums (md5, sha256, sha512) and stored in opam's checksum-addressed
 * layout, CACHE/<algorithm>/<first two hex digits>/<hash>, so the directory can serve as opam's
 * download cache inside the build container. file:// URLs work, which is how tests run offline.
 */
#ifndef OBAKE_FETCH_H
#define OBAKE_FETCH_H

#include <stdbool.h>
#include <stddef.h>

#include "package.h"

struct fetch_stats {
	unsigned cached; /* already in the cache and verified */
	unsigned downloaded;
	unsigned failed;      /* could not be downloaded or did not match its checksums */
	unsigned no_checksum; /* downloaded but without a checksum to verify: kept under its sha256 */
};

/* One source to fetch: where from, and the checksums it must have ("sha256=HEX" ...). */
struct fetch_item {
	const char *package; /* "name.version", for messages */
	const struct package_source *source;
};

/*
 * Make sure every item is in CACHE_DIR, downloading what is missing with up to JOBS transfers at
 * once. MIRRORS (may be empty) are tried first, in order, in opam's archive-mirror layout
 * (<mirror>/<algorithm>/<xx>/<hash>, a directory or a URL), then the source's own URL and its
 * mirrors. Failures are printed with the package, the URL and the reason; returns the number of
 * failed items.
 */
unsigned fetch_all(const char *cache_dir, const struct fetch_item *items, size_t count, char *const *mirrors,
		   size_t mirror_count, unsigned jobs, struct fetch_stats *stats);

/* fetch_all, also setting ITEM_FAILED[i] (COUNT flags) for each item that could not be fetched. */
unsigned fetch_all_flags(const char *cache_dir, const struct fetch_item *items, size_t count, char *const *mirrors,
			 size_t mirror_count, unsigned jobs, struct fetch_stats *stats, bool *item_failed);

/*
 * Ask a running fetch_all to stop: no new download starts and running ones abort (their items
 * fail). Safe to call from a signal handler.
 */
void fetch_request_stop(void);

/* Path in CACHE_DIR for CHECKSUM ("sha256=HEX"), or NULL if the checksum is malformed. Caller frees. */
char *fetch_cache_path(const char *cache_dir, const char *checksum);

/* Check FILE against CHECKSUM ("md5=HEX", "sha256=HEX", "sha512=HEX", or a bare 32-digit md5). */
bool fetch_verify(const char *file, const char *checksum, char **error);

#endif
