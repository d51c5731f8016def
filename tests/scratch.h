/*
 * Scratch files for tests: a fresh directory under $OBAKE_TEST_TMP (made by tests/run, else /tmp),
 * writing and reading small files, and removing what a test made. Failures to set up mark the
 * running test as failed, so a test never goes on with a half-made tree unnoticed.
 */
#ifndef OBAKE_TEST_SCRATCH_H
#define OBAKE_TEST_SCRATCH_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* A new empty directory named after PREFIX, or NULL. The caller frees the path. */
static inline char *scratch_dir(const char *prefix)
{
	const char *base = getenv("OBAKE_TEST_TMP");
	size_t size = strlen(base && *base ? base : "/tmp") + strlen(prefix) + 16;
	char *path = malloc(size);

	if (!path)
		return NULL;
	snprintf(path, size, "%s/%s.XXXXXX", base && *base ? base : "/tmp", prefix);
	if (!mkdtemp(path)) {
		fprintf(stderr, "%s: mkdtemp %s: %s\n", test_current_name, path, strerror(errno));
		test_current_failed = true;
		free(path);
		return NULL;
	}
	return path;
}

static inline int scratch_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* Remove PATH and what is below it. FTW_MOUNT keeps a mount left by a failed test from being emptied. */
static inline void scratch_remove(const char *path)
{
	if (path)
		nftw(path, scratch_remove_entry, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* Write LEN bytes of DATA to PATH, replacing it. */
static inline bool scratch_write(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	bool ok = f && fwrite(data, 1, len, f) == len;

	if (f && fclose(f) != 0)
		ok = false;
	if (!ok) {
		fprintf(stderr, "%s: cannot write %s: %s\n", test_current_name, path, strerror(errno));
		test_current_failed = true;
	}
	return ok;
}

static inline bool scratch_write_text(const char *path, const char *text)
{
	return scratch_write(path, text, strlen(text));
}

/* The whole contents of PATH as a string, or NULL when it cannot be read. The caller frees it. */
static inline char *scratch_read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t len = 0;

	if (!f)
		return NULL;
	FILE *out = open_memstream(&data, &len);
	int c;
	while (out && (c = getc(f)) != EOF)
		putc(c, out);
	if (out)
		fclose(out);
	fclose(f);
	return data;
}

#endif
