/*
 * The layer store. The name of each entry of STORE/<platform> identifies it:
 *
 *   <key>/                          a published layer (64 lowercase hex digits)
 *   locks/<key>.lock                the lock of <key>: flock(LOCK_EX) to build or remove the layer,
 *                                   flock(LOCK_SH) by builds that use it as a lower layer
 *   tmp-<key>-<pid>-<random>/       a build of <key> in progress (store_begin)
 *   tmp-prune-<key>-<pid>-<random>/ a layer being deleted by store_prune
 *   tmp-remove-<key>-<pid>-<random>/ a layer being deleted by store_remove_layer
 *
 * A tmp-* directory belongs to the process that holds its key's lock. When no process holds that
 * lock, the directory is the leftover of a killed run, and store_open deletes it.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "files.h"
#include "util.h"

/* Written first into every key, so that a change of what a key covers can change every key. */
#define KEY_VERSION_TAG "obake-layer-2"

#define KEY_HEX_DIGITS (LAYER_KEY_SIZE - 1)

/* Maximum mounts stacked on one directory that removal detaches before it gives up. */
#define MAX_STACKED_MOUNTS 16

#define SECONDS_PER_DAY 86400.0

static bool is_layer_key(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == KEY_HEX_DIGITS;
}

static int check_key(const char *key, char **error)
{
	if (!key || !is_layer_key(key))
		return set_error(error, "invalid layer key \"%s\": expected 64 lowercase hex digits", key ? key : "");
	return 0;
}

/* ---- Directories ---- */

/* Flush DIR's entries (a new or renamed file in it) to disk. */
static int sync_dir(const char *dir, char **error)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return set_error(error, "cannot open directory %s: %s", dir, strerror(errno));
	if (fsync(fd) != 0) {
		int saved = errno;
		close(fd);
		return set_error(error, "cannot sync directory %s: %s", dir, strerror(saved));
	}
	close(fd);
	return 0;
}

/* ---- Removing trees that builds left ---- */

/* The file system and mount that a removal started on. A directory on another one is a mount point. */
struct removal_root {
	dev_t dev;
	uint64_t mount_id; /* 0 when statx reports no mount IDs (before Linux 5.8) */
};

/* Return the mount ID of NAME in PARENT_FD, or 0 when statx does not report it. */
static uint64_t mount_id_at(int parent_fd, const char *name)
{
	struct statx stx;

	if (statx(parent_fd, name, AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) != 0 || !(stx.stx_mask & STATX_MNT_ID))
		return 0;
	return stx.stx_mnt_id;
}

/*
 * A bind mount of a directory of the same file system keeps st_dev, so only the mount ID shows
 * it. Deleting through such a mount would delete the files of the directory bound there.
 */
static bool is_mount_point(int parent_fd, const char *name, const struct stat *st, const struct removal_root *root)
{
	if (st->st_dev != root->dev)
		return true;
	uint64_t id = root->mount_id ? mount_id_at(parent_fd, name) : 0;
	return id != 0 && id != root->mount_id;
}

static int remove_entry_at(int parent_fd, const char *name, const char *path, const struct removal_root *root,
			   char **error);

/*
 * Detach the mounts on directory NAME in PARENT_FD, inside a tree being removed. A killed build can
 * leave its overlay mounted inside its temporary directory. Deleting through the mount would only
 * change the overlay, and rmdir() of a mount point fails with EBUSY.
 */
static int detach_mounts(int parent_fd, const char *name, const char *path, const struct removal_root *root,
			 struct stat *st, char **error)
{
	for (int i = 0; i < MAX_STACKED_MOUNTS && is_mount_point(parent_fd, name, st, root); i++) {
		if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) != 0)
			return set_error(error, "cannot remove %s: it is a mount point and unmounting it failed: %s",
					 path, strerror(errno));
		if (fstatat(parent_fd, name, st, AT_SYMLINK_NOFOLLOW) != 0)
			return errno == ENOENT ? 0 : set_error(error, "cannot read %s: %s", path, strerror(errno));
	}
	if (is_mount_point(parent_fd, name, st, root))
		return set_error(error, "cannot remove %s: more than %d mounts are stacked on it", path,
				 MAX_STACKED_MOUNTS);
	return 0;
}

/* Delete every entry of the open directory FD (which this function closes). */
static int remove_contents(int fd, const char *path, const struct removal_root *root, char **error)
{
	DIR *dir = fdopendir(fd);
	struct dirent *de;
	int status = 0;

	if (!dir) {
		int saved = errno;
		close(fd);
		return set_error(error, "cannot read directory %s: %s", path, strerror(saved));
	}
	errno = 0;
	while (status == 0 && (de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *child = xasprintf("%s/%s", path, de->d_name);
		status = remove_entry_at(dirfd(dir), de->d_name, child, root, error);
		free(child);
		errno = 0;
	}
	if (status == 0 && errno != 0)
		status = set_error(error, "cannot read directory %s: %s", path, strerror(errno));
	closedir(dir);
	return status;
}

/* Give the owner full access to the directory NAME, so that it can be read and emptied. */
static int open_dir_for_removal(int parent_fd, const char *name, const char *path, const struct stat *st, char **error)
{
	if ((st->st_mode & S_IRWXU) != S_IRWXU && fchmodat(parent_fd, name, (st->st_mode & 07777) | S_IRWXU, 0) != 0)
		return errno == ENOENT ? -2 : set_error(error, "cannot make %s writable: %s", path, strerror(errno));

	int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -2 : set_error(error, "cannot open directory %s: %s", path, strerror(errno));
	return fd;
}

/*
 * Remove NAME in PARENT_FD and everything below it, like `rm -rf`, but also through read-only
 * directories, and with mounts inside detached rather than deleted through. Entries that vanish
 * meanwhile count as removed, because another process may be removing the same leftover.
 * Overlay whiteouts are character devices, which unlink() removes.
 */
static int remove_entry_at(int parent_fd, const char *name, const char *path, const struct removal_root *root,
			   char **error)
{
	struct stat st;

	if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : set_error(error, "cannot read %s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(parent_fd, name, 0) != 0 && errno != ENOENT)
			return set_error(error, "cannot remove %s: %s", path, strerror(errno));
		return 0;
	}
	if (detach_mounts(parent_fd, name, path, root, &st, error) != 0)
		return -1;

	/* NOTE: each directory level keeps one file descriptor open, so RLIMIT_NOFILE limits the depth. */
	int fd = open_dir_for_removal(parent_fd, name, path, &st, error);
	if (fd == -2)
		return 0;
	if (fd < 0 || remove_contents(fd, path, root, error) != 0)
		return -1;
	if (unlinkat(parent_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		return set_error(error, "cannot remove directory %s: %s", path, strerror(errno));
	return 0;
}

/* Remove PATH and everything below it. PATH itself must not be a mount point. */
static int remove_store_tree(const char *path, char **error)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : set_error(error, "cannot read %s: %s", path, strerror(errno));
	struct removal_root root = { st.st_dev, mount_id_at(AT_FDCWD, path) };
	return remove_entry_at(AT_FDCWD, path, path, &root, error);
}

/* Remove PATH where no caller can take an error message, and warn when that fails. */
static void remove_store_tree_or_warn(const char *path)
{
	char *error = NULL;

	if (remove_store_tree(path, &error) != 0) {
		warn("%s; the next run retries", error);
		free(error);
	}
}

/* ---- Locks and temporary directories ---- */

static char *lock_path(const struct store *s, const char *key)
{
	return xasprintf("%s/locks/%s.lock", s->dir, key);
}

/*
 * Take KEY's lock without waiting. Returns the lock's fd, -1 when another process holds it (or the
 * lock file cannot be opened), or -2 when the lock file does not exist, so no one ever held it.
 */
static int try_lock_key(const struct store *s, const char *key)
{
	char *path = lock_path(s, key);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	free(path);
	if (fd < 0)
		return errno == ENOENT ? -2 : -1;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int store_hold(const struct store *s, const char *key)
{
	char *path = lock_path(s, key);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	free(path);
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_SH) != 0) {
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* Parse the key out of "tmp-[prune-|remove-]<key>-<pid>-<random>". */
static bool parse_tmp_name(const char *name, char key[LAYER_KEY_SIZE])
{
	if (strncmp(name, "tmp-", 4) != 0)
		return false;
	name += 4;
	if (strncmp(name, "prune-", 6) == 0)
		name += 6;
	else if (strncmp(name, "remove-", 7) == 0)
		name += 7;
	if (strlen(name) <= KEY_HEX_DIGITS || name[KEY_HEX_DIGITS] != '-')
		return false;
	memcpy(key, name, KEY_HEX_DIGITS);
	key[KEY_HEX_DIGITS] = '\0';
	return is_layer_key(key);
}

/* Make an empty directory STORE/<platform>/tmp-<PURPOSE><key>-<pid>-<random> (caller frees the path). */
static char *make_tmp_dir(const struct store *s, const char *purpose, const char *key, char **error)
{
	char *path = xasprintf("%s/tmp-%s%s-%ld-XXXXXX", s->dir, purpose, key, (long)getpid());

	if (!mkdtemp(path)) {
		set_error(error, "cannot create directory %s: %s", path, strerror(errno));
		free(path);
		return NULL;
	}
	return path;
}

/*
 * Delete the tmp-* directories of killed runs. Failures only warn, because a leftover that cannot
 * be removed (a mount that cannot be detached, say) must not make the whole store unusable.
 */
static void remove_leftovers(const struct store *s)
{
	DIR *dir = opendir(s->dir);
	struct dirent *de;
	char key[LAYER_KEY_SIZE];

	if (!dir) {
		warn("cannot read directory %s: %s; leftovers of killed runs stay", s->dir, strerror(errno));
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		if (!parse_tmp_name(de->d_name, key))
			continue;
		int lock = try_lock_key(s, key);
		if (lock == -1)
			continue;
		char *path = xasprintf("%s/%s", s->dir, de->d_name);
		remove_store_tree_or_warn(path);
		free(path);
		if (lock >= 0)
			close(lock);
	}
	closedir(dir);
}

/* ---- Opening ---- */

static bool is_valid_platform(const char *platform)
{
	return platform && *platform && !strchr(platform, '/') && strcmp(platform, ".") != 0 &&
	       strcmp(platform, "..") != 0;
}

int store_open(struct store *s, const char *root, const char *platform, char **error)
{
	memset(s, 0, sizeof(*s));
	if (!root || !*root)
		return set_error(error, "missing store directory");
	if (!is_valid_platform(platform))
		return set_error(error, "invalid platform \"%s\": expected one directory name such as debian-12-x86_64",
				 platform ? platform : "");

	s->root = xstrdup(root);
	s->dir = xasprintf("%s/%s", root, platform);
	char *locks = xasprintf("%s/locks", s->dir);
	int status = make_dirs(locks, error);
	free(locks);
	if (status != 0) {
		store_close(s);
		return -1;
	}
	remove_leftovers(s);
	return 0;
}

void store_close(struct store *s)
{
	free(s->root);
	free(s->dir);
	s->root = s->dir = NULL;
}

char *store_layer_path(const struct store *s, const char *key)
{
	return xasprintf("%s/%s", s->dir, key);
}

char *store_layer_fs(const struct store *s, const char *key)
{
	return xasprintf("%s/%s/fs", s->dir, key);
}

/* ---- Layer keys ---- */

/* A SHA-256 computation that records an OpenSSL failure instead of stopping at each call. */
struct digest {
	EVP_MD_CTX *ctx;
	bool failed;
};

static void digest_bytes(struct digest *d, const void *data, size_t len)
{
	if (!d->failed && EVP_DigestUpdate(d->ctx, data, len) != 1)
		d->failed = true;
}

/* Add a count as 8 bytes, big-endian. */
static void digest_count(struct digest *d, uint64_t n)
{
	unsigned char bytes[8];

	for (int i = 7; i >= 0; i--, n >>= 8)
		bytes[i] = (unsigned char)(n & 0xff);
	digest_bytes(d, bytes, sizeof(bytes));
}

/* Add one field, preceded by its length, so that no two sequences of fields hash the same bytes. */
static void digest_field(struct digest *d, const void *data, size_t len)
{
	digest_count(d, len);
	digest_bytes(d, data, len);
}

static int digest_file(struct digest *d, const char *path, char **error)
{
	char *data;
	size_t len;

	if (read_file(path, &data, &len) != 0)
		return set_error(error, "cannot read %s: %s", path, strerror(errno));
	digest_field(d, data, len);
	free(data);
	return 0;
}

struct path_list {
	char **paths;
	size_t count, capacity;
};

static void path_list_add(struct path_list *list, char *path)
{
	if (list->count == list->capacity) {
		list->capacity = list->capacity ? 2 * list->capacity : 16;
		list->paths = xreallocarray(list->paths, list->capacity, sizeof(char *));
	}
	list->paths[list->count++] = path;
}

static void path_list_release(struct path_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->paths[i]);
	free(list->paths);
	memset(list, 0, sizeof(*list));
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_files_in(const char *top, const char *relative, struct path_list *list, char **error);

/*
 * Add the entry at TOP/RELATIVE to LIST: regular files and symbolic links to them (hashed as the
 * file they point to, which is what a build copies), and the contents of subdirectories.
 */
static int list_entry(const char *top, const char *relative, struct path_list *list, char **error)
{
	char *path = xasprintf("%s/%s", top, relative);
	struct stat st;
	bool is_link = false;
	int status = lstat(path, &st);

	if (status == 0 && S_ISLNK(st.st_mode)) {
		is_link = true;
		status = stat(path, &st);
	}
	if (status != 0)
		status = set_error(error, "cannot read %s: %s", path, strerror(errno));
	else if (S_ISREG(st.st_mode))
		path_list_add(list, xstrdup(relative));
	else if (S_ISDIR(st.st_mode) && !is_link)
		status = list_files_in(top, relative, list, error);
	else
		status = set_error(
			error, "cannot hash %s: only regular files, directories and links to files may be there", path);
	free(path);
	return status;
}

/* Add the files under TOP/RELATIVE (TOP itself when RELATIVE is NULL) to LIST, as paths relative to TOP. */
static int list_files_in(const char *top, const char *relative, struct path_list *list, char **error)
{
	char *path = relative ? xasprintf("%s/%s", top, relative) : xstrdup(top);
	DIR *dir = opendir(path);
	struct dirent *de;
	int status = 0;

	if (!dir) {
		/* A package without a files/ directory is the common case. */
		if (!relative && errno == ENOENT)
			status = 0;
		else
			status = set_error(error, "cannot open directory %s: %s", path, strerror(errno));
		free(path);
		return status;
	}
	errno = 0;
	while (status == 0 && (de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *child = relative ? xasprintf("%s/%s", relative, de->d_name) : xstrdup(de->d_name);
		status = list_entry(top, child, list, error);
		free(child);
		errno = 0;
	}
	if (status == 0 && errno != 0)
		status = set_error(error, "cannot read directory %s: %s", path, strerror(errno));
	closedir(dir);
	free(path);
	return status;
}

/* Add the number of files under PACKAGE_DIR/files, then each one's relative path and contents, sorted by path. */
static int digest_package_files(struct digest *d, const char *package_dir, char **error)
{
	char *top = xasprintf("%s/files", package_dir);
	struct path_list list = { 0 };
	int status = list_files_in(top, NULL, &list, error);

	if (status == 0 && list.count > 1)
		qsort(list.paths, list.count, sizeof(char *), compare_strings);
	if (status == 0)
		digest_count(d, list.count);
	for (size_t i = 0; status == 0 && i < list.count; i++) {
		char *path = xasprintf("%s/%s", top, list.paths[i]);
		digest_field(d, list.paths[i], strlen(list.paths[i]));
		status = digest_file(d, path, error);
		free(path);
	}
	path_list_release(&list);
	free(top);
	return status;
}

static int digest_dependencies(struct digest *d, const char *const *keys, size_t count, char **error)
{
	const char **sorted = xcalloc(count + 1, sizeof(char *));

	for (size_t i = 0; i < count; i++) {
		if (check_key(keys[i], error) != 0) {
			free(sorted);
			return -1;
		}
		sorted[i] = keys[i];
	}
	qsort(sorted, count, sizeof(char *), compare_strings);
	digest_count(d, count);
	for (size_t i = 0; i < count; i++)
		digest_field(d, sorted[i], strlen(sorted[i]));
	free(sorted);
	return 0;
}

/*
 * The fields, in order: the version tag, the opam file, the file count and each file's path and
 * contents, the dependency count and the sorted keys, the base id and the settings. Every field
 * is length-prefixed and every list count-prefixed, so different inputs never produce the same
 * byte sequence.
 */
static int digest_layer_inputs(struct digest *d, const char *package_dir, const char *const *dependency_keys,
			       size_t dependency_count, const char *base_id, const char *settings, char **error)
{
	char *opam = xasprintf("%s/opam", package_dir);
	int status = 0;

	digest_field(d, KEY_VERSION_TAG, strlen(KEY_VERSION_TAG));
	/*
	 * The directory's name is the package's name.version: two versions (or two packages) with
	 * byte-identical opam files and dependencies install different things.
	 */
	const char *name = strrchr(package_dir, '/');
	name = name ? name + 1 : package_dir;
	digest_field(d, name, strlen(name));
	status = digest_file(d, opam, error);
	free(opam);
	if (status == 0)
		status = digest_package_files(d, package_dir, error);
	if (status == 0)
		status = digest_dependencies(d, dependency_keys, dependency_count, error);
	if (status == 0) {
		digest_field(d, base_id, strlen(base_id));
		digest_field(d, settings, strlen(settings));
	}
	return status;
}

int store_layer_key(const char *package_dir, const char *const *dependency_keys, size_t dependency_count,
		    const char *base_id, const char *settings, char key[LAYER_KEY_SIZE], char **error)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char hash[EVP_MAX_MD_SIZE];
	unsigned int hash_len = 0;
	struct digest d = { EVP_MD_CTX_new(), false };

	if (!base_id || !settings)
		return set_error(error, "cannot compute the layer key of %s: missing base id or settings", package_dir);
	if (!d.ctx)
		die("out of memory allocating an OpenSSL digest context");
	d.failed = EVP_DigestInit_ex(d.ctx, EVP_sha256(), NULL) != 1;

	int status = digest_layer_inputs(&d, package_dir, dependency_keys, dependency_count, base_id, settings, error);
	if (status == 0 && (d.failed || EVP_DigestFinal_ex(d.ctx, hash, &hash_len) != 1 || hash_len != 32))
		status = set_error(error, "cannot compute the layer key of %s: OpenSSL SHA-256 failed", package_dir);
	EVP_MD_CTX_free(d.ctx);
	if (status != 0)
		return -1;

	for (unsigned i = 0; i < hash_len; i++) {
		key[2 * i] = hex[hash[i] >> 4];
		key[2 * i + 1] = hex[hash[i] & 0xf];
	}
	key[KEY_HEX_DIGITS] = '\0';
	return 0;
}

/* ---- layer.json ---- */

/* Format T as an RFC 3339 UTC time, "2024-05-01T12:34:56Z". */
static char *format_utc_time(time_t t)
{
	struct tm tm;
	char text[32];

	gmtime_r(&t, &tm);
	strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return xstrdup(text);
}

static int check_layer_info(const struct layer_info *info, char **error)
{
	if (info->status != LAYER_SUCCESS && info->status != LAYER_FAILURE)
		return set_error(error, "cannot publish a layer whose status is neither success nor failure");
	if (!info->package)
		return set_error(error, "cannot publish a layer without its package name");
	if (!isfinite(info->build_seconds))
		return set_error(error, "cannot publish %s: invalid build time", info->package);
	for (size_t i = 0; i < info->dependency_count; i++)
		if (check_key(info->dependencies[i], error) != 0)
			return -1;
	return 0;
}

/* Build layer.json's object; returns NULL with a message when a string is not valid UTF-8. */
static json_t *layer_info_to_json(const struct layer_info *info, char **error)
{
	json_t *object = json_object(), *dependencies = json_array();
	char *created = info->created ? xstrdup(info->created) : format_utc_time(time(NULL));
	json_t *package = json_string(info->package), *created_value = json_string(created);

	free(created);
	if (!object || !dependencies)
		die("out of memory building layer.json");
	if (!package || !created_value) {
		json_decref(package);
		json_decref(created_value);
		json_decref(object);
		json_decref(dependencies);
		set_error(error, "cannot publish %s: the package name or creation time is not valid UTF-8",
			  info->package);
		return NULL;
	}
	for (size_t i = 0; i < info->dependency_count; i++)
		json_array_append_new(dependencies, json_string(info->dependencies[i]));
	json_object_set_new(object, "package", package);
	json_object_set_new(object, "status", json_string(info->status == LAYER_SUCCESS ? "success" : "failure"));
	json_object_set_new(object, "exit_code", json_integer(info->exit_code));
	json_object_set_new(object, "dependencies", dependencies);
	json_object_set_new(object, "build_seconds", json_real(info->build_seconds));
	json_object_set_new(object, "created", created_value);
	return object;
}

/* Write DIR/layer.json and sync it and DIR, so that the rename that publishes DIR never exposes a partial file. */
static int write_layer_json(const char *dir, const struct layer_info *info, char **error)
{
	json_t *object = layer_info_to_json(info, error);
	if (!object)
		return -1;
	char *text = json_dumps(object, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	char *path = xasprintf("%s/layer.json", dir);
	int status = 0;

	json_decref(object);
	if (!text)
		die("out of memory writing layer.json");
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		status = set_error(error, "cannot create %s: %s", path, strerror(errno));
	} else {
		if (write_all(fd, text, strlen(text)) != 0 || write_all(fd, "\n", 1) != 0 || fsync(fd) != 0)
			status = set_error(error, "cannot write %s: %s", path, strerror(errno));
		if (close(fd) != 0 && status == 0)
			status = set_error(error, "cannot write %s: %s", path, strerror(errno));
	}
	if (status == 0)
		status = sync_dir(dir, error);
	free(text);
	free(path);
	return status;
}

static const char *json_string_field(json_t *object, const char *name)
{
	return json_string_value(json_object_get(object, name));
}

static int parse_dependencies(json_t *array, const char *path, struct layer_info *info, char **error)
{
	if (!json_is_array(array))
		return set_error(error, "invalid %s: \"dependencies\" is missing or not an array", path);
	info->dependency_count = json_array_size(array);
	info->dependencies = xcalloc(info->dependency_count + 1, sizeof(char *));
	for (size_t i = 0; i < info->dependency_count; i++) {
		const char *key = json_string_value(json_array_get(array, i));
		if (!key || !is_layer_key(key))
			return set_error(error, "invalid %s: dependency %zu is not a layer key", path, i + 1);
		info->dependencies[i] = xstrdup(key);
	}
	return 0;
}

/* Fill INFO from the JSON text of PATH. On error, the caller releases what was filled. */
static int parse_layer_json(const char *path, const char *text, size_t len, struct layer_info *info, char **error)
{
	json_error_t jerror;
	json_t *root = json_loadb(text, len, 0, &jerror);
	int status = -1;

	if (!root)
		return set_error(error, "invalid %s: line %d: %s", path, jerror.line, jerror.text);

	const char *package = json_string_field(root, "package"), *created = json_string_field(root, "created");
	const char *state = json_string_field(root, "status");
	json_t *exit_code = json_object_get(root, "exit_code"), *seconds = json_object_get(root, "build_seconds");
	if (!package || !created)
		set_error(error, "invalid %s: \"package\" or \"created\" is missing or not a string", path);
	else if (!state || (strcmp(state, "success") != 0 && strcmp(state, "failure") != 0))
		set_error(error, "invalid %s: \"status\" is neither \"success\" nor \"failure\"", path);
	else if (!json_is_integer(exit_code) || json_integer_value(exit_code) < INT_MIN ||
		 json_integer_value(exit_code) > INT_MAX)
		set_error(error, "invalid %s: \"exit_code\" is missing or not an int", path);
	else if (!json_is_number(seconds))
		set_error(error, "invalid %s: \"build_seconds\" is missing or not a number", path);
	else
		status = parse_dependencies(json_object_get(root, "dependencies"), path, info, error);

	if (status == 0) {
		info->status = strcmp(state, "success") == 0 ? LAYER_SUCCESS : LAYER_FAILURE;
		info->package = xstrdup(package);
		info->created = xstrdup(created);
		info->exit_code = (int)json_integer_value(exit_code);
		info->build_seconds = json_number_value(seconds);
	}
	json_decref(root);
	return status;
}

int store_read_layer(const struct store *s, const char *key, struct layer_info *info, char **error)
{
	memset(info, 0, sizeof(*info));
	info->status = LAYER_MISSING;
	if (check_key(key, error) != 0)
		return -1;

	char *layer = store_layer_path(s, key), *path = xasprintf("%s/layer.json", layer);
	char *text = NULL;
	size_t len;
	struct stat st;
	int status = 0;

	if (read_file(path, &text, &len) != 0) {
		int saved = errno;
		/* A layer is published with layer.json inside, so no layer directory means not published. */
		if (saved != ENOENT)
			status = set_error(error, "cannot read %s: %s", path, strerror(saved));
		else if (stat(layer, &st) == 0 || errno != ENOENT)
			status = set_error(error, "cannot read %s: %s; delete the incomplete layer %s", path,
					   strerror(saved), layer);
	} else if (parse_layer_json(path, text, len, info, error) != 0) {
		layer_info_release(info);
		status = -1;
	}
	free(text);
	free(path);
	free(layer);
	return status;
}

void layer_info_release(struct layer_info *info)
{
	free(info->package);
	for (size_t i = 0; i < info->dependency_count; i++)
		free(info->dependencies[i]);
	free(info->dependencies);
	free(info->created);
	memset(info, 0, sizeof(*info));
}

/* ---- Building and publishing ---- */

int store_begin(const struct store *s, const char *key, char **tmp_dir, char **error)
{
	*tmp_dir = NULL;
	if (check_key(key, error) != 0)
		return -1;

	char *path = lock_path(s, key);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		set_error(error, "cannot open lock file %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	/*
	 * EINTR is not retried. Handlers installed with SA_RESTART do not cause it, so it means a
	 * handler (such as the one for Ctrl-C) asked the wait to stop.
	 */
	if (flock(fd, LOCK_EX) != 0) {
		set_error(error, "cannot lock %s: %s", path, strerror(errno));
		close(fd);
		free(path);
		return -1;
	}
	free(path);

	*tmp_dir = make_tmp_dir(s, "", key, error);
	if (!*tmp_dir) {
		close(fd);
		return -1;
	}
	/* mkdtemp makes mode 0700, but a published layer is readable like any installed directory. */
	if (chmod(*tmp_dir, 0755) != 0) {
		set_error(error, "cannot set the mode of %s: %s", *tmp_dir, strerror(errno));
		store_abandon(s, *tmp_dir, fd);
		free(*tmp_dir);
		*tmp_dir = NULL;
		return -1;
	}
	return fd;
}

/*
 * Move TMP_DIR to the layer's path. Another process that published KEY first wins, because a
 * directory cannot be renamed onto a non-empty one, so TMP_DIR is then dropped.
 */
enum removal { REMOVAL_DONE, REMOVAL_GONE, REMOVAL_FAILED };
static enum removal remove_published(const struct store *s, const char *key, const char *purpose, char **error);

/*
 * The caller holds KEY's lock and found a layer in the way of its new one. A readable layer was
 * published by someone else and stays. One whose layer.json cannot be read is damaged (a disk
 * error, an edit by hand): it is removed, so that the new build takes its place.
 */
static bool replace_damaged(const struct store *s, const char *key)
{
	struct layer_info info = { 0 };
	char *error = NULL;

	if (store_read_layer(s, key, &info, &error) == 0 && info.status != LAYER_MISSING) {
		layer_info_release(&info);
		return false;
	}
	warn("layer %s is damaged (%s); it is replaced by the new build", key, error ? error : "no layer.json");
	free(error);
	error = NULL;
	bool removed = remove_published(s, key, "remove-", &error) != REMOVAL_FAILED;
	if (!removed) {
		warn("%s", error);
		free(error);
	}
	return removed;
}

static int rename_into_place(const struct store *s, const char *key, const char *tmp_dir, char **error)
{
	char *final = store_layer_path(s, key);
	int status = 0;
	int rc = rename(tmp_dir, final), err = errno;

	if (rc != 0 && (err == EEXIST || err == ENOTEMPTY) && replace_damaged(s, key)) {
		rc = rename(tmp_dir, final);
		err = errno;
	}
	if (rc == 0) {
		/* The layer is visible now, so a failed sync only risks losing it at a power cut. */
		char *ignored = NULL;
		sync_dir(s->dir, &ignored);
		free(ignored);
	} else if (err == EEXIST || err == ENOTEMPTY) {
		remove_store_tree_or_warn(tmp_dir);
	} else {
		status = set_error(error, "cannot publish layer %s: cannot rename %s to %s: %s", key, tmp_dir, final,
				   strerror(err));
	}
	free(final);
	return status;
}

/*
 * NOTE: only layer.json and the directory entries are synced. A power cut soon after publishing
 * can leave files under fs/ empty in a layer that looks complete.
 */
int store_publish(const struct store *s, const char *key, const char *tmp_dir, const struct layer_info *info,
		  int lock_fd, char **error)
{
	int status = check_key(key, error);

	if (status == 0)
		status = check_layer_info(info, error);
	if (status == 0)
		status = write_layer_json(tmp_dir, info, error);
	if (status == 0)
		status = rename_into_place(s, key, tmp_dir, error);
	if (status != 0)
		remove_store_tree_or_warn(tmp_dir);
	if (lock_fd >= 0)
		close(lock_fd);
	return status;
}

void store_abandon(const struct store *s, const char *tmp_dir, int lock_fd)
{
	(void)s;
	if (tmp_dir)
		remove_store_tree_or_warn(tmp_dir);
	if (lock_fd >= 0)
		close(lock_fd);
}

/* Outcome of removing a published layer. */
/*
 * Rename KEY's layer into a new tmp-PURPOSE-KEY-* directory, so that it disappears at once, then
 * delete it. REMOVAL_GONE means the layer did not exist. A failure to delete after the rename
 * only warns, because the layer is already gone and store_open deletes the rest.
 */
static enum removal remove_published(const struct store *s, const char *key, const char *purpose, char **error)
{
	char *layer = store_layer_path(s, key);
	char *tmp = make_tmp_dir(s, purpose, key, error);
	enum removal result = REMOVAL_DONE;

	if (!tmp) {
		free(layer);
		return REMOVAL_FAILED;
	}
	/* rename() replaces an empty directory, and mkdtemp made TMP empty. */
	if (rename(layer, tmp) != 0) {
		if (errno == ENOENT) {
			result = REMOVAL_GONE;
		} else {
			set_error(error, "cannot remove layer %s: cannot rename %s to %s: %s", key, layer, tmp,
				  strerror(errno));
			result = REMOVAL_FAILED;
		}
		rmdir(tmp);
	} else {
		remove_store_tree_or_warn(tmp);
	}
	free(tmp);
	free(layer);
	return result;
}

int store_remove_layer(const struct store *s, const char *key, char **error)
{
	if (check_key(key, error) != 0)
		return -1;
	/*
	 * KEY's lock is not taken, so this works both with and without the caller holding it. A
	 * store_open in another process may then delete the tmp-remove-* directory at the same time,
	 * and both removals tolerate entries that vanish.
	 */
	return remove_published(s, key, "remove-", error) == REMOVAL_FAILED ? -1 : 0;
}

void store_touch(const struct store *s, const char *key)
{
	if (!key || !is_layer_key(key))
		return;
	char *path = xasprintf("%s/%s/layer.json", s->dir, key);

	utimensat(AT_FDCWD, path, NULL, 0);
	free(path);
}

/* ---- Pruning ---- */

struct inode_slot {
	dev_t dev;
	ino_t ino;
	bool used;
};

/* A set of (device, inode) pairs, to count hard-linked files once. Open addressing, linear probing. */
struct inode_set {
	struct inode_slot *slots;
	size_t count, capacity; /* capacity is 0 or a power of two */
};

static bool inode_set_add(struct inode_set *set, dev_t dev, ino_t ino);

static size_t inode_hash(dev_t dev, ino_t ino, size_t capacity)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev;
	return (size_t)(h ^ (h >> 29)) & (capacity - 1);
}

static void inode_set_grow(struct inode_set *set)
{
	size_t capacity = set->capacity ? 2 * set->capacity : 256;
	struct inode_set bigger = { xcalloc(capacity, sizeof(struct inode_slot)), 0, capacity };

	for (size_t i = 0; i < set->capacity; i++)
		if (set->slots[i].used)
			inode_set_add(&bigger, set->slots[i].dev, set->slots[i].ino);
	free(set->slots);
	*set = bigger;
}

/* Add (DEV, INO) to SET. Returns false when it was already there. */
static bool inode_set_add(struct inode_set *set, dev_t dev, ino_t ino)
{
	if (2 * (set->count + 1) > set->capacity)
		inode_set_grow(set);

	size_t i = inode_hash(dev, ino, set->capacity);
	for (; set->slots[i].used; i = (i + 1) & (set->capacity - 1))
		if (set->slots[i].dev == dev && set->slots[i].ino == ino)
			return false;
	set->slots[i] = (struct inode_slot){ dev, ino, true };
	set->count++;
	return true;
}

/*
 * Add the disk space of NAME in PARENT_FD and everything below it to *BYTES, as `du` counts it:
 * allocated blocks, symbolic links not followed, and a file with several hard links counted only
 * the first time SEEN meets it. A file that two layers share therefore counts toward the first
 * layer measured only, so the bytes a prune frees are an estimate then. Entries that cannot be
 * read count as zero.
 */
static void measure_at(int parent_fd, const char *name, struct inode_set *seen, unsigned long long *bytes)
{
	struct stat st;

	if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return;
	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && !inode_set_add(seen, st.st_dev, st.st_ino))
		return;
	*bytes += (unsigned long long)st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode))
		return;

	int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(dir)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			measure_at(dirfd(dir), de->d_name, seen, bytes);
	closedir(dir);
}

/* A published layer and its pruning state. */
struct prune_layer {
	char key[LAYER_KEY_SIZE];
	struct layer_info info;
	size_t *dependencies; /* indexes of the dependency layers present in the store */
	size_t dependency_count;
	time_t last_used; /* modification time of layer.json */
	unsigned long long bytes;
	size_t kept_dependents; /* kept layers that list this one as a dependency */
	bool removed;
	bool busy; /* its lock is held by another process, so it stays */
};

struct prune_state {
	const struct store *store;
	const struct prune_options *opts;
	struct prune_layer *layers;
	size_t count;
	unsigned long long kept_bytes, freed_bytes;
	long removed_count;
};

/* Read KEY's layer.json and measure its directory. Returns false, with a warning, for a broken layer. */
static bool load_prune_layer(const struct store *s, const char *key, struct inode_set *seen, struct prune_layer *layer)
{
	char *error = NULL, *json = xasprintf("%s/%s/layer.json", s->dir, key);
	struct stat st;

	memset(layer, 0, sizeof(*layer));
	memcpy(layer->key, key, LAYER_KEY_SIZE);
	if (store_read_layer(s, key, &layer->info, &error) != 0 || stat(json, &st) != 0) {
		/* A broken layer is never removed here, but its dependencies may be. */
		warn("skipping layer %s: %s; remove it by hand if it is broken", key, error ? error : strerror(errno));
		free(error);
		free(json);
		layer_info_release(&layer->info);
		return false;
	}
	free(json);
	if (layer->info.status == LAYER_MISSING)
		return false;
	char *path = store_layer_path(s, key);
	layer->last_used = st.st_mtim.tv_sec;
	measure_at(AT_FDCWD, path, seen, &layer->bytes);
	free(path);
	return true;
}

static int compare_last_used(const void *a, const void *b)
{
	const struct prune_layer *x = a, *y = b;

	if (x->last_used != y->last_used)
		return x->last_used < y->last_used ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* Load every published layer into STATE, least recently used first. */
static int load_prune_layers(struct prune_state *state, char **error)
{
	DIR *dir = opendir(state->store->dir);
	struct dirent *de;
	struct inode_set seen = { 0 };
	size_t capacity = 0;

	if (!dir)
		return set_error(error, "cannot read directory %s: %s", state->store->dir, strerror(errno));
	while ((de = readdir(dir)) != NULL) {
		if (!is_layer_key(de->d_name))
			continue;
		if (state->count == capacity) {
			capacity = capacity ? 2 * capacity : 64;
			state->layers = xreallocarray(state->layers, capacity, sizeof(*state->layers));
		}
		if (load_prune_layer(state->store, de->d_name, &seen, &state->layers[state->count]))
			state->kept_bytes += state->layers[state->count++].bytes;
	}
	closedir(dir);
	free(seen.slots);
	if (state->count > 1)
		qsort(state->layers, state->count, sizeof(*state->layers), compare_last_used);
	return 0;
}

struct key_index {
	const char *key;
	size_t index;
};

static int compare_key_index(const void *a, const void *b)
{
	return strcmp(((const struct key_index *)a)->key, ((const struct key_index *)b)->key);
}

/* Resolve each layer's dependency keys to indexes, and count for each layer the layers that depend on it. */
static void link_dependencies(struct prune_state *state)
{
	struct key_index *by_key = xcalloc(state->count + 1, sizeof(*by_key));

	for (size_t i = 0; i < state->count; i++)
		by_key[i] = (struct key_index){ state->layers[i].key, i };
	qsort(by_key, state->count, sizeof(*by_key), compare_key_index);
	for (size_t i = 0; i < state->count; i++) {
		struct prune_layer *layer = &state->layers[i];
		layer->dependencies = xcalloc(layer->info.dependency_count + 1, sizeof(size_t));
		for (size_t d = 0; d < layer->info.dependency_count; d++) {
			struct key_index wanted = { layer->info.dependencies[d], 0 };
			struct key_index *found = bsearch(&wanted, by_key, state->count, sizeof(*by_key),
							  compare_key_index);
			if (!found)
				continue;
			layer->dependencies[layer->dependency_count++] = found->index;
			state->layers[found->index].kept_dependents++;
		}
	}
	free(by_key);
}

static void print_removal(const struct prune_layer *layer, bool dry_run)
{
	struct tm tm;
	char date[16];

	gmtime_r(&layer->last_used, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	printf("%s %s (%s, %.1f MB, last used %s)\n", dry_run ? "would remove" : "removed", layer->key,
	       layer->info.package, (double)layer->bytes / 1e6, date);
}

/* A layer may go only when no kept layer depends on it, so the kept layers stay complete. */
static bool can_remove(const struct prune_layer *layer)
{
	return !layer->removed && !layer->busy && layer->kept_dependents == 0;
}

/*
 * Remove layer I (or only print it in a dry run) and release its dependencies. A layer whose lock
 * another process holds is marked busy and kept.
 */
static int prune_one(struct prune_state *state, size_t i, char **error)
{
	struct prune_layer *layer = &state->layers[i];
	enum removal result = REMOVAL_DONE;

	if (!state->opts->dry_run) {
		int lock = try_lock_key(state->store, layer->key);
		if (lock == -1) {
			layer->busy = true;
			return 0;
		}
		result = remove_published(state->store, layer->key, "prune-", error);
		if (lock >= 0)
			close(lock);
		if (result == REMOVAL_FAILED)
			return -1;
	}
	if (result == REMOVAL_DONE) {
		print_removal(layer, state->opts->dry_run);
		state->removed_count++;
		state->freed_bytes += layer->bytes;
	}
	layer->removed = true;
	state->kept_bytes -= layer->bytes;
	for (size_t d = 0; d < layer->dependency_count; d++)
		state->layers[layer->dependencies[d]].kept_dependents--;
	return 0;
}

/*
 * Remove the layers last used before the age limit. Removing a layer can free its dependencies,
 * so the passes repeat until one removes nothing.
 */
static int prune_by_age(struct prune_state *state, char **error)
{
	/* In floating point, so that a huge limit cannot overflow time_t. */
	double cutoff = (double)time(NULL) - state->opts->older_than_days * SECONDS_PER_DAY;
	bool progress = true;

	while (progress) {
		progress = false;
		for (size_t i = 0; i < state->count; i++) {
			struct prune_layer *layer = &state->layers[i];
			if (!can_remove(layer) || (double)layer->last_used >= cutoff)
				continue;
			if (prune_one(state, i, error) != 0)
				return -1;
			progress = progress || layer->removed;
		}
	}
	return 0;
}

/* Remove the least recently used removable layer until the kept layers fit in max_bytes, or none is removable. */
static int prune_by_size(struct prune_state *state, char **error)
{
	while (state->kept_bytes > state->opts->max_bytes) {
		size_t i = 0;
		while (i < state->count && !can_remove(&state->layers[i]))
			i++;
		if (i == state->count)
			break;
		if (prune_one(state, i, error) != 0)
			return -1;
	}
	return 0;
}

/*
 * NOTE: layers that a running build has mounted as lower layers hold no lock, so a prune in
 * another process can remove them under it. Only the layer being built is protected, by its key's lock.
 */
long store_prune(const struct store *s, const struct prune_options *opts, unsigned long long *freed_bytes, char **error)
{
	struct prune_state state = { .store = s, .opts = opts };
	int status = load_prune_layers(&state, error);

	if (status == 0) {
		link_dependencies(&state);
		if (opts->older_than_days > 0)
			status = prune_by_age(&state, error);
		if (status == 0 && opts->max_bytes > 0)
			status = prune_by_size(&state, error);
	}
	fflush(stdout);
	for (size_t i = 0; i < state.count; i++) {
		layer_info_release(&state.layers[i].info);
		free(state.layers[i].dependencies);
	}
	free(state.layers);
	if (freed_bytes)
		*freed_bytes = state.freed_bytes;
	return status == 0 ? state.removed_count : -1;
}
