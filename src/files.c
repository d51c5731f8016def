#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static int make_dir(const char *path, char **error)
{
	struct stat st;

	if (mkdir(path, 0755) == 0)
		return 0;
	if (errno != EEXIST)
		return set_error(error, "cannot create directory %s: %s", path, strerror(errno));
	if (stat(path, &st) != 0)
		return set_error(error, "cannot create directory %s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return set_error(error, "cannot create directory %s: a file of that name exists", path);
	return 0;
}

/* Create PATH and its missing parents, as `mkdir -p` does. */
int make_dirs(const char *path, char **error)
{
	char *copy = xstrdup(path);
	int status = 0;

	for (char *p = copy + 1; *p && status == 0; p++) {
		if (*p != '/' || p[-1] == '/')
			continue;
		*p = '\0';
		status = make_dir(copy, error);
		*p = '/';
	}
	if (status == 0)
		status = make_dir(copy, error);
	free(copy);
	return status;
}

int for_each_child(const char *src, const char *dst, visit_fn *visit, void *context, char **error)
{
	DIR *dir = opendir(src);
	if (!dir)
		return set_error(error, "cannot open directory %s: %s", src, strerror(errno));

	int status = 0;
	struct dirent *entry;
	while (status == 0 && (errno = 0, entry = readdir(dir)) != NULL) {
		if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
			continue;
		char *src_child = xasprintf("%s/%s", src, entry->d_name);
		char *dst_child = dst ? xasprintf("%s/%s", dst, entry->d_name) : NULL;
		status = visit(context, src_child, dst_child);
		free(src_child);
		free(dst_child);
	}
	if (status == 0 && errno != 0)
		status = set_error(error, "cannot read directory %s: %s", src, strerror(errno));
	closedir(dir);
	return status;
}

static int remove_child(void *error, const char *child, const char *unused)
{
	(void)unused;
	return remove_tree(child, error);
}

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif

/* Whether PATH is where a file system (or a bind mount) is mounted; false when the kernel cannot tell. */
static bool is_mount_root(const char *path)
{
	struct statx stx;

	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, 0, &stx) != 0)
		return false;
	return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

int remove_tree(const char *path, char **error)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return set_error(error, "cannot stat %s: %s", path, strerror(errno));
	}

	if (!S_ISDIR(st.st_mode)) {
		if (unlink(path) < 0 && errno != ENOENT)
			return set_error(error, "cannot remove %s: %s", path, strerror(errno));
		return 0;
	}

	/* A mount left inside (a bind mount of the host's /dev, say) must never be emptied. */
	if (is_mount_root(path))
		return set_error(error, "cannot remove %s: it is a mount point; unmount it first", path);
	if (for_each_child(path, NULL, remove_child, error, error) < 0)
		return -1;
	if (rmdir(path) < 0 && errno != ENOENT)
		return set_error(error, "cannot remove directory %s: %s", path, strerror(errno));
	return 0;
}

void remove_tree_or_warn(const char *path)
{
	char *error = NULL;

	if (remove_tree(path, &error) != 0) {
		warn("%s", error);
		free(error);
	}
}

int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int copy_bytes(int in, int out)
{
	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
		if (n == 0)
			return 0;
		if (n > 0)
			continue;
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			return -1;
		break;
	}

	/* copy_file_range is not supported between these file systems: copy through a buffer. */
	char buffer[65536];
	for (;;) {
		ssize_t n = read(in, buffer, sizeof(buffer));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return (int)n;
		if (write_all(out, buffer, (size_t)n) < 0)
			return -1;
	}
}

int copy_regular(const char *src, const char *dst, char **error)
{
	int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return set_error(error, "cannot open %s: %s", src, strerror(errno));
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		int err = errno;
		close(in);
		return set_error(error, "cannot create %s: %s", dst, strerror(err));
	}

	int status = 0;
	if (copy_bytes(in, out) < 0)
		status = set_error(error, "cannot copy %s to %s: %s", src, dst, strerror(errno));
	close(in);
	if (close(out) < 0 && status == 0)
		status = set_error(error, "cannot write %s: %s", dst, strerror(errno));
	return status;
}

int copy_symlink(const char *src, const char *dst, const struct stat *st, char **error)
{
	size_t size = st->st_size > 0 ? (size_t)st->st_size + 1 : PATH_MAX;
	char *target = xmalloc(size);
	ssize_t len = readlink(src, target, size);
	int status = 0;

	if (len < 0) {
		status = set_error(error, "cannot read symbolic link %s: %s", src, strerror(errno));
	} else if ((size_t)len >= size) {
		status = set_error(error, "symbolic link %s changed while being copied", src);
	} else {
		target[len] = '\0';
		if (symlink(target, dst) < 0)
			status = set_error(error, "cannot create symbolic link %s: %s", dst, strerror(errno));
	}
	free(target);
	return status;
}

static int copy_entry(const char *src, const char *dst, char **error);

static int copy_child(void *error, const char *src, const char *dst)
{
	return copy_entry(src, dst, error);
}

static int copy_entry(const char *src, const char *dst, char **error)
{
	struct stat st;
	if (lstat(src, &st) < 0)
		return set_error(error, "cannot stat %s: %s", src, strerror(errno));

	if (S_ISLNK(st.st_mode))
		return copy_symlink(src, dst, &st, error);
	if (S_ISREG(st.st_mode)) {
		if (copy_regular(src, dst, error) < 0)
			return -1;
	} else if (S_ISDIR(st.st_mode)) {
		/* Owner-writable while the children are created, whatever the source's mode. */
		if (mkdir(dst, 0700) < 0)
			return set_error(error, "cannot create directory %s: %s", dst, strerror(errno));
		if (for_each_child(src, dst, copy_child, error, error) < 0)
			return -1;
	} else {
		return set_error(error, "cannot copy %s: only directories, regular files and symbolic links are copied",
				 src);
	}
	if (chmod(dst, st.st_mode & 07777) < 0)
		return set_error(error, "cannot change the mode of %s: %s", dst, strerror(errno));
	return 0;
}

int copy_tree(const char *src, const char *dst, char **error)
{
	return copy_entry(src, dst, error);
}
