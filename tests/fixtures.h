/*
 * Test fixtures: the real opam-repository snapshots, extracted once per test run into
 * $OBAKE_TEST_TMP (made by tests/run) from the archives in $OBAKE_SHARED_DATA.
 */
#ifndef OBAKE_TEST_FIXTURES_H
#define OBAKE_TEST_FIXTURES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAPSHOT_2026 "opam-repository-2026-08-22-97014be"
#define SNAPSHOT_2024 "opam-repository-2024-12-31-2d85539"

/*
 * Return the path of the extracted repository of SNAPSHOT (the folder holding packages/), or NULL
 * when the archive is not available. The caller frees the string.
 */
static inline char *fixture_snapshot(const char *snapshot)
{
	const char *data = getenv("OBAKE_SHARED_DATA");
	const char *tmp = getenv("OBAKE_TEST_TMP");
	char archive[4096], dir[4096], repo[4200], command[16384];
	struct stat st;

	if (!data || !tmp)
		return NULL;
	snprintf(archive, sizeof(archive), "%s/%s.tar.zst", data, snapshot);
	snprintf(dir, sizeof(dir), "%s/%s", tmp, snapshot);
	snprintf(repo, sizeof(repo), "%s/opam-repository", dir);
	if (stat(archive, &st) != 0)
		return NULL;
	if (stat(repo, &st) != 0) {
		snprintf(command, sizeof(command), "mkdir -p '%s' && tar -C '%s' -I zstd -xf '%s'", dir, dir, archive);
		if (system(command) != 0)
			return NULL;
	}
	return strdup(repo);
}

/* Path of the oracle folder beside the data folder (reference solutions), or NULL. */
static inline char *fixture_oracle_path(const char *file)
{
	const char *data = getenv("OBAKE_SHARED_DATA");
	char path[4096];
	struct stat st;

	if (!data)
		return NULL;
	snprintf(path, sizeof(path), "%s/../oracle/%s", data, file);
	return stat(path, &st) == 0 ? strdup(path) : NULL;
}

#endif
