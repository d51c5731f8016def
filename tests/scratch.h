/*
 * Scratch files for tests: a fresh directory under $OBAKE_TEST_TMP (made by tests/run, else /tmp),
 * nested directories, writing and reading small files, and removing what a test made. Failures to
 * set up mark the running test as failed, so a test never goes on with a half-made tree unnoticed.
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

/* Create PATH and its missing parents with mode 0755, as `mkdir -p` does. Any existing entry is accepted. */
static inline bool scratch_make_dirs(const char *path)
{
	char *copy = strdup(path);
	bool ok = copy != NULL;

	for (char *p = copy; ok && *p; p++) {
		if (*p != '/' || p == copy)
			continue;
		*p = '\0';
		ok = mkdir(copy, 0755) == 0 || errno == EEXIST;
		*p = '/';
	}
	ok = ok && (mkdir(copy, 0755) == 0 || errno == EEXIST);
	if (!ok) {
		fprintf(stderr, "%s: cannot create directory %s: %s\n", test_current_name, path, strerror(errno));
		test_current_failed = true;
	}
	free(copy);
	return ok;
}

/* Write TEXT to PATH as scratch_write_text does, creating the missing directories above PATH first. */
static inline bool scratch_write_text_with_parents(const char *path, const char *text)
{
	char *parent = strdup(path);
	char *slash = parent ? strrchr(parent, '/') : NULL;
	bool ok = true;

	if (slash && slash != parent) {
		*slash = '\0';
		ok = scratch_make_dirs(parent);
	}
	free(parent);
	return ok && scratch_write_text(path, text);
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
