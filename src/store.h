/*
 * The layer store: one directory per (package, exact dependency closure, base, environment),
 * STORE/<os-distribution>-<os-version>-<arch>/<key>/ with fs/ (the layer's files), build.log and
 * layer.json. A layer is built in a temporary directory and published with one rename, so a run
 * killed at any moment leaves nothing half-published; the next run removes the leftovers. Several
 * obake processes share a store through one lock file per key.
 */
#ifndef OBAKE_STORE_H
#define OBAKE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 64 hex digits of a SHA-256, plus NUL. */
#define LAYER_KEY_SIZE 65

struct store {
	char *root; /* STORE */
	char *dir;  /* STORE/<platform> */
};

enum layer_status { LAYER_MISSING, LAYER_SUCCESS, LAYER_FAILURE };

struct layer_info {
	enum layer_status status;
	char *package; /* "name.version" */
	int exit_code;
	char **dependencies; /* keys of the dependency layers */
	size_t dependency_count;
	double build_seconds;
	char *created; /* RFC 3339 time */
};

/* Open (creating) the store at ROOT for PLATFORM ("debian-12-x86_64"); removes leftovers of killed runs. */
int store_open(struct store *s, const char *root, const char *platform, char **error);
void store_close(struct store *s);

/*
 * Compute a layer key: SHA-256 over the name of PACKAGE_DIR (name.version), the package's opam file and every file under its files/
 * directory (path and content, in sorted order), the dependency layers' keys (sorted), the base
 * identity and the settings (OCaml version, environment) as one string.
 */
int store_layer_key(const char *package_dir, const char *const *dependency_keys, size_t dependency_count,
		    const char *base_id, const char *settings, char key[LAYER_KEY_SIZE], char **error);

/* Path of the layer directory for KEY (caller frees), and of its fs/ directory. */
char *store_layer_path(const struct store *s, const char *key);
char *store_layer_fs(const struct store *s, const char *key);

/* Read KEY's layer.json; status LAYER_MISSING when it was never published. */
int store_read_layer(const struct store *s, const char *key, struct layer_info *info, char **error);
void layer_info_release(struct layer_info *info);

/*
 * Take the lock of KEY (blocking while another process builds it) and return a new, empty temporary
 * directory inside the store where the build writes fs/ and build.log. Returns the lock's fd, or -1
 * with ERROR set. Another process may have published KEY meanwhile: the caller must read the layer
 * again and, if it is there, call store_abandon instead of building.
 */
int store_begin(const struct store *s, const char *key, char **tmp_dir, char **error);
/*
 * Write layer.json into TMP_DIR, rename TMP_DIR to the layer's path, and release LOCK_FD. If another
 * process published KEY first, TMP_DIR is dropped and 0 returned. On error, TMP_DIR is removed and
 * LOCK_FD released as well.
 */
int store_publish(const struct store *s, const char *key, const char *tmp_dir, const struct layer_info *info,
		  int lock_fd, char **error);
/* Drop TMP_DIR and release LOCK_FD (a build that was interrupted). */
void store_abandon(const struct store *s, const char *tmp_dir, int lock_fd);

/*
 * Hold KEY's lock shared while a build uses the layer as a lower layer, so that `obake prune` in
 * another process, which takes it exclusively, leaves the layer alone. Returns the fd to close when
 * done, or -1.
 */
int store_hold(const struct store *s, const char *key);
/* Remove KEY's published layer (to rebuild a failed one with --retry-failed); a missing layer is no error. */
int store_remove_layer(const struct store *s, const char *key, char **error);

struct prune_options {
	double older_than_days;       /* remove layers not used for this long (0: no age limit) */
	unsigned long long max_bytes; /* then remove the least recently used until the store fits (0: no size limit) */
	bool dry_run;
};

/*
 * Remove layers by age or to fit a size, least recently used first, never one that a kept layer
 * depends on. Use is recorded by store_touch. Prints what it removes; returns the count removed.
 */
long store_prune(const struct store *s, const struct prune_options *opts, unsigned long long *freed_bytes,
		 char **error);
/* Record that KEY was used now (its layer.json's modification time). */
void store_touch(const struct store *s, const char *key);

#endif
