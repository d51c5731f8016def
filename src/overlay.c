/*
 * Overlay mounts of a layer stack. Layout of the scratch directory made by overlay_mount:
 *
 *   upper/   the build's writes (the new layer)
 *   work/    overlayfs work directory
 *   merged/  the mount point
 *   lower/   the deepest layers merged into one, when the stack is too deep to mount as is
 *   l/N      symbolic links to the lower layers, for the short option string of the mount(2) path
 *
 * Setting the environment variable OBAKE_OVERLAY_LEGACY=1 forces the mount(2) path even where
 * the kernel accepts "lowerdir+", so that path can be tested on new kernels.
 */
#include "overlay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "files.h"
#include "util.h"

/*
 * The new mount API, called through syscall() so that the code also builds against C libraries
 * without the wrappers (glibc added them in 2.36). Since Linux 5.1, system calls numbered 424 and
 * above have the same number on every architecture except alpha.
 */
#ifndef SYS_fsopen
#define SYS_move_mount 429
#define SYS_fsopen 430
#define SYS_fsconfig 431
#define SYS_fsmount 432
#endif
#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 0x00000001
#endif
#ifndef FSMOUNT_CLOEXEC
#define FSMOUNT_CLOEXEC 0x00000001
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef FSCONFIG_SET_STRING
#define FSCONFIG_SET_STRING 1
#define FSCONFIG_CMD_CREATE 6
#endif

/*
 * Upper directories become layers of other stacks later, so each must be complete on its own:
 * with redirect_dir or metacopy, an upper directory would refer to paths and data in the lower
 * layers of the mount that wrote it.
 */
#define SELF_CONTAINED_OPTIONS "redirect_dir=off,metacopy=off"

#define OPAQUE_XATTR "trusted.overlay.opaque"
#define OVERLAY_XATTR_PREFIX "trusted.overlay."

static int sys_fsopen(const char *fs_name, unsigned flags)
{
	return (int)syscall(SYS_fsopen, fs_name, flags);
}

static int sys_fsconfig(int fd, unsigned cmd, const char *key, const void *value, int aux)
{
	return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}

static int sys_fsmount(int fd, unsigned flags, unsigned attr_flags)
{
	return (int)syscall(SYS_fsmount, fd, flags, attr_flags);
}

static int sys_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path, unsigned flags)
{
	return (int)syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags);
}

static bool new_api_supported;
static pthread_once_t new_api_probe = PTHREAD_ONCE_INIT;

/* Kernels before 6.8 reject the unknown parameter "lowerdir+" with EINVAL. */
static void probe_new_api(void)
{
	int fd = sys_fsopen("overlay", FSOPEN_CLOEXEC);
	if (fd < 0)
		return;
	new_api_supported = sys_fsconfig(fd, FSCONFIG_SET_STRING, "lowerdir+", "/", 0) == 0;
	close(fd);
}

bool overlay_has_new_api(void)
{
	pthread_once(&new_api_probe, probe_new_api);
	return new_api_supported;
}

static bool legacy_forced(void)
{
	const char *value = getenv("OBAKE_OVERLAY_LEGACY");
	return value && strcmp(value, "1") == 0;
}

/* ---- Merging the deepest layers into one directory ---- */

/* A file of the layer being applied that has more than one name, and where its first name was copied. */
struct link_entry {
	dev_t dev;
	ino_t ino;
	char *copy;
};

struct merge {
	void *links; /* tsearch tree of struct link_entry, reset for each layer */
	char **error;
};

static int compare_links(const void *a, const void *b)
{
	const struct link_entry *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return 0;
}

static void free_link(void *node)
{
	struct link_entry *entry = node;
	free(entry->copy);
	free(entry);
}

static bool is_whiteout(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

/*
 * NOTE: only "y" marks an opaque directory here. The "x" value (a directory that contains
 * xattr whiteouts) is not handled, because the kernel never writes it into an upper directory.
 */
static bool is_opaque(const char *dir)
{
	char value[2];
	ssize_t len = lgetxattr(dir, OPAQUE_XATTR, value, sizeof(value));
	return len == 1 && value[0] == 'y';
}

static int copy_xattr(const char *src, const char *dst, const char *name, char **error)
{
	ssize_t len = lgetxattr(src, name, NULL, 0);
	if (len < 0)
		return set_error(error, "cannot read attribute %s of %s: %s", name, src, strerror(errno));

	char *value = xmalloc((size_t)len + 1);
	len = lgetxattr(src, name, value, (size_t)len);
	int status = 0;
	if (len < 0)
		status = set_error(error, "cannot read attribute %s of %s: %s", name, src, strerror(errno));
	else if (lsetxattr(dst, name, value, (size_t)len, 0) < 0 && errno != ENOTSUP)
		status = set_error(error, "cannot set attribute %s on %s: %s", name, dst, strerror(errno));
	free(value);
	return status;
}

/* Copy the extended attributes except overlayfs's own, which describe SRC's place in its stack. */
static int copy_xattrs(const char *src, const char *dst, char **error)
{
	ssize_t len = llistxattr(src, NULL, 0);
	if (len < 0) {
		if (errno == ENOTSUP)
			return 0;
		return set_error(error, "cannot list attributes of %s: %s", src, strerror(errno));
	}
	if (len == 0)
		return 0;

	char *names = xmalloc((size_t)len);
	len = llistxattr(src, names, (size_t)len);
	int status = 0;
	if (len < 0)
		status = set_error(error, "cannot list attributes of %s: %s", src, strerror(errno));
	for (ssize_t at = 0; status == 0 && at < len; at += (ssize_t)strlen(names + at) + 1) {
		const char *name = names + at;
		if (strncmp(name, OVERLAY_XATTR_PREFIX, strlen(OVERLAY_XATTR_PREFIX)) != 0)
			status = copy_xattr(src, dst, name, error);
	}
	free(names);
	return status;
}

/* Give DST the owner, mode, extended attributes and times of SRC (whose status is ST). */
static int copy_metadata(const char *src, const char *dst, const struct stat *st, char **error)
{
	if (lchown(dst, st->st_uid, st->st_gid) < 0)
		return set_error(error, "cannot change the owner of %s: %s", dst, strerror(errno));
	/* After the owner, because chown clears the set-user-ID and set-group-ID bits. */
	if (!S_ISLNK(st->st_mode) && chmod(dst, st->st_mode & 07777) < 0)
		return set_error(error, "cannot change the mode of %s: %s", dst, strerror(errno));
	if (copy_xattrs(src, dst, error) < 0)
		return -1;

	struct timespec times[2] = { st->st_atim, st->st_mtim };
	if (utimensat(AT_FDCWD, dst, times, AT_SYMLINK_NOFOLLOW) < 0)
		return set_error(error, "cannot set the times of %s: %s", dst, strerror(errno));
	return 0;
}

/*
 * Link DST to the copy of an earlier name of the same file, if the layer has one. Returns 1 when
 * linked, 0 when DST must be copied (and records DST as the copy), or -1.
 */
static int link_earlier_copy(struct merge *m, const char *dst, const struct stat *st)
{
	struct link_entry key = { .dev = st->st_dev, .ino = st->st_ino };
	struct link_entry **found = tfind(&key, &m->links, compare_links);

	if (found) {
		if (link((*found)->copy, dst) < 0)
			return set_error(m->error, "cannot link %s to %s: %s", dst, (*found)->copy, strerror(errno));
		return 1;
	}

	struct link_entry *entry = xmalloc(sizeof(*entry));
	*entry = (struct link_entry){ .dev = st->st_dev, .ino = st->st_ino, .copy = xstrdup(dst) };
	if (!tsearch(entry, &m->links, compare_links))
		die("out of memory");
	return 0;
}

/* Copy the non-directory SRC to the free path DST with its metadata. */
static int copy_node(struct merge *m, const char *src, const char *dst, const struct stat *st)
{
	if (S_ISREG(st->st_mode) && st->st_nlink > 1) {
		int linked = link_earlier_copy(m, dst, st);
		if (linked != 0)
			return linked < 0 ? -1 : 0;
	}

	int status;
	if (S_ISREG(st->st_mode))
		status = copy_regular(src, dst, m->error);
	else if (S_ISLNK(st->st_mode))
		status = copy_symlink(src, dst, st, m->error);
	else if (mknod(dst, st->st_mode, st->st_rdev) < 0)
		status = set_error(m->error, "cannot create %s: %s", dst, strerror(errno));
	else
		status = 0;

	if (status < 0)
		return -1;
	return copy_metadata(src, dst, st, m->error);
}

static int apply_entry(struct merge *m, const char *src, const char *dst);

static int apply_child(void *merge, const char *src, const char *dst)
{
	return apply_entry(merge, src, dst);
}

/*
 * Apply the directory SRC onto DST: an opaque SRC replaces whatever DST was, otherwise SRC's
 * entries are applied over DST's existing ones.
 */
static int apply_dir(struct merge *m, const char *src, const char *dst, const struct stat *st)
{
	struct stat dst_st;
	bool exists = lstat(dst, &dst_st) == 0;

	if (exists && (!S_ISDIR(dst_st.st_mode) || is_opaque(src))) {
		if (remove_tree(dst, m->error) < 0)
			return -1;
		exists = false;
	}
	if (!exists && mkdir(dst, 0700) < 0)
		return set_error(m->error, "cannot create directory %s: %s", dst, strerror(errno));

	int status = for_each_child(src, dst, apply_child, m, m->error);

	/* Last, so that creating the children does not change the directory's times. */
	if (status == 0)
		status = copy_metadata(src, dst, st, m->error);
	return status;
}

/*
 * Apply one entry of a layer onto the merged directory, as overlayfs would show it: a whiteout
 * deletes what is below, a directory merges with a directory below, anything else replaces it.
 * The merged directory is the bottom of the stack, so whiteouts themselves are not kept.
 */
static int apply_entry(struct merge *m, const char *src, const char *dst)
{
	struct stat st;
	if (lstat(src, &st) < 0)
		return set_error(m->error, "cannot stat %s: %s", src, strerror(errno));

	if (S_ISDIR(st.st_mode))
		return apply_dir(m, src, dst, &st);
	if (remove_tree(dst, m->error) < 0)
		return -1;
	if (is_whiteout(&st))
		return 0;
	return copy_node(m, src, dst, &st);
}

/* Merge LAYERS[0..COUNT) (topmost first) into the new directory TARGET by applying the deepest first. */
static int merge_layers(char *const *layers, size_t count, const char *target, char **error)
{
	struct merge m = { .error = error };
	int status = 0;

	for (size_t i = count; status == 0 && i-- > 0;) {
		struct stat st;
		if (stat(layers[i], &st) < 0)
			status = set_error(error, "cannot stat lower layer %s: %s", layers[i], strerror(errno));
		else if (!S_ISDIR(st.st_mode))
			status = set_error(error, "lower layer %s is not a directory", layers[i]);
		else
			status = apply_dir(&m, layers[i], target, &st);
		tdestroy(m.links, free_link);
		m.links = NULL;
	}
	return status;
}

/* ---- Mounting ---- */

/* Append the kernel's messages about a failed fsconfig or fsmount, read from the context FD. */
static void add_kernel_messages(struct strbuf *sb, int fd)
{
	char line[512];
	ssize_t n;

	while ((n = read(fd, line, sizeof(line) - 1)) > 0) {
		while (n > 0 && line[n - 1] == '\n')
			n--;
		line[n] = '\0';
		strbuf_addf(sb, " (kernel: %s)", line);
	}
}

static int fs_error(int fd, char **error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fs_error(int fd, char **error, const char *fmt, ...)
{
	int err = errno;
	struct strbuf sb = { 0 };
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	strbuf_addf(&sb, ": %s", strerror(err));
	add_kernel_messages(&sb, fd);
	*error = strbuf_detach(&sb);
	return -1;
}

static int configure_overlay(int fs, const struct overlay *o, char *const *dirs, size_t count, char **error)
{
	for (size_t i = 0; i < count; i++)
		if (sys_fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", dirs[i], 0) < 0)
			return fs_error(fs, error, "cannot add lower layer %s to the overlay", dirs[i]);

	const char *const settings[][2] = {
		{ "upperdir", o->upper },
		{ "workdir", o->work },
		{ "redirect_dir", "off" },
		{ "metacopy", "off" },
	};
	for (size_t i = 0; i < ARRAY_LEN(settings); i++)
		if (sys_fsconfig(fs, FSCONFIG_SET_STRING, settings[i][0], settings[i][1], 0) < 0)
			return fs_error(fs, error, "cannot set overlay option %s=%s", settings[i][0], settings[i][1]);

	if (sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return fs_error(fs, error, "cannot create the overlay for %s", o->merged);
	return 0;
}

/* Mount with fsopen/fsconfig/fsmount, one "lowerdir+" per layer, so no option string limits the stack. */
static int mount_new_api(const struct overlay *o, char *const *dirs, size_t count, char **error)
{
	int fs = sys_fsopen("overlay", FSOPEN_CLOEXEC);
	if (fs < 0)
		return set_error(error, "cannot open an overlay file system context: %s", strerror(errno));
	if (configure_overlay(fs, o, dirs, count, error) < 0) {
		close(fs);
		return -1;
	}

	int mnt = sys_fsmount(fs, FSMOUNT_CLOEXEC, 0);
	if (mnt < 0) {
		fs_error(fs, error, "cannot mount the overlay for %s", o->merged);
		close(fs);
		return -1;
	}
	close(fs);

	int status = 0;
	if (sys_move_mount(mnt, "", AT_FDCWD, o->merged, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		status = set_error(error, "cannot attach the overlay to %s: %s", o->merged, strerror(errno));
	close(mnt);
	return status;
}

/* The mount(2) option string for COUNT lower layers named by the links l/0, l/1, ... of the scratch directory. */
static char *legacy_options(size_t count)
{
	struct strbuf sb = { 0 };

	strbuf_adds(&sb, "lowerdir=");
	for (size_t i = 0; i < count; i++)
		strbuf_addf(&sb, "%sl/%zu", i ? ":" : "", i);
	strbuf_adds(&sb, ",upperdir=upper,workdir=work," SELF_CONTAINED_OPTIONS);
	return strbuf_detach(&sb);
}

static size_t legacy_options_length(size_t count)
{
	char *options = legacy_options(count);
	size_t len = strlen(options);
	free(options);
	return len;
}

static int link_lowers(const struct overlay *o, char *const *dirs, size_t count, char **error)
{
	char *links = xasprintf("%s/l", o->scratch);
	int status = 0;

	if (mkdir(links, 0700) < 0)
		status = set_error(error, "cannot create directory %s: %s", links, strerror(errno));
	for (size_t i = 0; status == 0 && i < count; i++) {
		char *link_path = xasprintf("%s/%zu", links, i);
		if (symlink(dirs[i], link_path) < 0)
			status = set_error(error, "cannot create symbolic link %s: %s", link_path, strerror(errno));
		free(link_path);
	}
	free(links);
	return status;
}

/*
 * Mount with mount(2). Its options must fit in one page, so the layers are named by short relative
 * links (l/0:l/1:...), resolved against the scratch directory by a child process that changes into
 * it: changing this process's working directory would affect every thread.
 */
static int mount_legacy(const struct overlay *o, char *const *dirs, size_t count, char **error)
{
	if (link_lowers(o, dirs, count, error) < 0)
		return -1;

	char *options = legacy_options(count);
	pid_t pid = fork();
	if (pid == 0) {
		if (chdir(o->scratch) < 0 || mount("overlay", o->merged, "overlay", 0, options) < 0)
			_exit(errno);
		_exit(0);
	}
	int fork_errno = errno;
	free(options);
	if (pid < 0)
		return set_error(error, "cannot start a process to mount the overlay: %s", strerror(fork_errno));

	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return set_error(error, "cannot wait for the overlay mount process: %s", strerror(errno));
	if (!WIFEXITED(status))
		return set_error(error, "the overlay mount process for %s was killed by signal %d", o->merged,
				 WTERMSIG(status));
	if (WEXITSTATUS(status) != 0)
		return set_error(error, "cannot mount the overlay on %s (lower layers: %zu): %s", o->merged, count,
				 strerror(WEXITSTATUS(status)));
	return 0;
}

/*
 * Count how many of the topmost of COUNT layers stay separate lower layers. When that is fewer than
 * COUNT, the layers below them, except the bottom one, are merged into one, so the mount has
 * SEPARATE + 2 lower layers. The bottom layer is the base system, by far the largest, and copying
 * it would cost more than all the others. With the l/N names, 500 layers take 2,956 bytes of
 * options, so with 4 KiB pages only the 500-layer limit forces a merge.
 */
static size_t separate_layer_count(size_t count, size_t max_lower, bool legacy)
{
	if (count <= max_lower && (!legacy || legacy_options_length(count) < (size_t)sysconf(_SC_PAGESIZE)))
		return count;

	/* Two slots go to the merged layer and the bottom one; merging fewer than two layers gains nothing. */
	size_t separate = max_lower > 2 ? max_lower - 2 : 0;
	if (separate + 3 > count)
		separate = count >= 3 ? count - 3 : 0;
	while (legacy && separate > 0 && legacy_options_length(separate + 2) >= (size_t)sysconf(_SC_PAGESIZE))
		separate--;
	return separate;
}

/*
 * The lower-layer limit: overlayfs's, or a smaller one from OBAKE_OVERLAY_MAX_LOWER, so that the
 * merging path can be exercised end to end by a short chain of packages (for tests).
 */
static size_t max_lower_layers(void)
{
	const char *value = getenv("OBAKE_OVERLAY_MAX_LOWER");
	char *end;
	unsigned long n = value && *value ? strtoul(value, &end, 10) : 0;

	if (n >= 3 && n < OVERLAY_MAX_LOWER && *end == '\0')
		return n;
	return OVERLAY_MAX_LOWER;
}

static int make_dir(char **path, const char *scratch, const char *name, char **error)
{
	*path = xasprintf("%s/%s", scratch, name);
	if (mkdir(*path, 0755) < 0)
		return set_error(error, "cannot create directory %s: %s", *path, strerror(errno));
	return 0;
}

static int make_scratch(struct overlay *o, const char *scratch_parent, char **error)
{
	char *parent = realpath(scratch_parent, NULL);
	if (!parent)
		return set_error(error, "invalid scratch directory %s: %s", scratch_parent, strerror(errno));
	o->scratch = xasprintf("%s/overlay-XXXXXX", parent);
	free(parent);
	if (!mkdtemp(o->scratch))
		return set_error(error, "cannot create a directory in %s: %s", scratch_parent, strerror(errno));

	if (make_dir(&o->upper, o->scratch, "upper", error) < 0 || make_dir(&o->work, o->scratch, "work", error) < 0 ||
	    make_dir(&o->merged, o->scratch, "merged", error) < 0)
		return -1;
	return 0;
}

/* Absolute paths of the lower layers, because the mount(2) path resolves them from the scratch directory. */
static int resolve_lowers(char *const *lowers, size_t count, char **resolved, char **error)
{
	for (size_t i = 0; i < count; i++) {
		struct stat st;
		resolved[i] = realpath(lowers[i], NULL);
		if (!resolved[i])
			return set_error(error, "invalid lower layer %s: %s", lowers[i], strerror(errno));
		if (stat(resolved[i], &st) < 0)
			return set_error(error, "cannot stat lower layer %s: %s", lowers[i], strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return set_error(error, "invalid lower layer %s: not a directory", lowers[i]);
	}
	return 0;
}

/*
 * Mount the prepared stack LOWERS[0..COUNT): the first SEPARATE stay as they are, the ones below
 * them down to the bottom one (excluded) are merged into one directory first.
 */
static int mount_stack(struct overlay *o, char **lowers, size_t count, size_t separate, bool legacy, char **error)
{
	size_t mounted = count;

	if (separate < count) {
		size_t merged_count = count - 1 - separate;
		char *merged_lower = xasprintf("%s/lower", o->scratch);
		int status = merge_layers(lowers + separate, merged_count, merged_lower, error);

		/* The stack becomes: the separate layers, the merged one, the bottom one. */
		for (size_t i = separate; i < count - 1; i++)
			free(lowers[i]);
		lowers[separate] = merged_lower;
		lowers[separate + 1] = lowers[count - 1];
		for (size_t i = separate + 2; i < count; i++)
			lowers[i] = NULL;
		if (status < 0)
			return -1;
		o->merged_lowers = (unsigned)merged_count;
		mounted = separate + 2;
	}

	if (legacy)
		return mount_legacy(o, lowers, mounted, error);
	o->used_new_api = true;
	return mount_new_api(o, lowers, mounted, error);
}

static void free_overlay(struct overlay *o)
{
	free(o->merged);
	free(o->upper);
	free(o->work);
	free(o->scratch);
	*o = (struct overlay){ 0 };
}

int overlay_mount(struct overlay *o, const char *scratch_parent, char *const *lowers, size_t count, char **error)
{
	*o = (struct overlay){ 0 };
	if (count == 0)
		return set_error(error, "cannot mount an overlay without lower layers");

	char **resolved = xcalloc(count, sizeof(*resolved));
	bool legacy = legacy_forced() || !overlay_has_new_api();
	int status = resolve_lowers(lowers, count, resolved, error);
	if (status == 0)
		status = make_scratch(o, scratch_parent, error);
	if (status == 0) {
		o->max_lower = (unsigned)max_lower_layers();
		status = mount_stack(o, resolved, count, separate_layer_count(count, o->max_lower, legacy), legacy,
				     error);
	}

	for (size_t i = 0; i < count; i++)
		free(resolved[i]);
	free(resolved);

	if (status < 0) {
		char *ignored = NULL;
		if (o->scratch && remove_tree(o->scratch, &ignored) < 0)
			free(ignored);
		free_overlay(o);
		return -1;
	}
	o->mounted = true;
	return 0;
}

/*
 * A plain unmount fails with EBUSY while a process still uses the tree. A lazy (detached) unmount
 * then lets the kernel finish it once the last user is gone.
 */
static int unmount_merged(struct overlay *o, char **error)
{
	if (umount2(o->merged, UMOUNT_NOFOLLOW) < 0) {
		if (errno != EBUSY)
			return set_error(error, "cannot unmount %s: %s", o->merged, strerror(errno));
		if (umount2(o->merged, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
			return set_error(error, "cannot detach %s: %s", o->merged, strerror(errno));
	}
	o->mounted = false;
	return 0;
}

/*
 * When the upper directory is kept, o->upper and o->scratch stay allocated and the scratch
 * directory still exists: the caller moves upper away, then removes the scratch directory and
 * frees both strings.
 */
int overlay_unmount(struct overlay *o, bool remove_upper, char **error)
{
	if (!o->scratch)
		return 0;
	if (o->mounted && unmount_merged(o, error) < 0)
		return -1;

	/* rmdir, not a recursive removal: should merged still be a mount point, its files stay intact. */
	if (o->merged && rmdir(o->merged) < 0 && errno != ENOENT)
		return set_error(error, "cannot remove directory %s: %s", o->merged, strerror(errno));

	const char *const parts[] = { "work", "lower", "l" };
	for (size_t i = 0; i < ARRAY_LEN(parts); i++) {
		char *path = xasprintf("%s/%s", o->scratch, parts[i]);
		int status = remove_tree(path, error);
		free(path);
		if (status < 0)
			return -1;
	}

	if (remove_upper) {
		if (remove_tree(o->scratch, error) < 0)
			return -1;
		free_overlay(o);
		return 0;
	}
	free(o->merged);
	free(o->work);
	o->merged = o->work = NULL;
	o->merged_lowers = 0;
	return 0;
}
