/*
 * Tests of overlay mounts: shadowing between lower layers, writes landing in the upper layer,
 * whiteouts and opaque directories, stacks deeper than overlayfs's 500 lower layers (merged by
 * copying), the mount(2) path forced by OBAKE_OVERLAY_LEGACY=1, and unmounting. Mounting needs
 * root and overlayfs; without them those tests are skipped.
 */
#include "harness.h"
#include "scratch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "overlay.h"
#include "util.h"

/* Lower layers of the deep stacks: more than OVERLAY_MAX_LOWER, so some must be merged. */
#define DEEP_LAYERS 600

/* ---- Files and directories ---- */

/* The contents of DIR/NAME, or NULL if it cannot be read. The caller frees the result. */
static char *read_in(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	char *data = scratch_read_text(path);

	free(path);
	return data;
}

/* True if TEXT is not NULL and contains PART. */
static bool contains(const char *text, const char *part)
{
	return text && strstr(text, part);
}

static bool exists(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	struct stat st;
	bool found = lstat(path, &st) == 0;

	free(path);
	return found;
}

static void make_subdir(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "%s: cannot create %s: %s\n", test_current_name, path, strerror(errno));
		test_current_failed = true;
	}
	free(path);
}

static void write_in(const char *dir, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	scratch_write_text(path, text);
	free(path);
}

/* An overlayfs whiteout: a character device 0/0. */
static void make_whiteout(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	if (mknod(path, S_IFCHR | 0600, makedev(0, 0)) < 0) {
		fprintf(stderr, "%s: cannot create whiteout %s: %s\n", test_current_name, path, strerror(errno));
		test_current_failed = true;
	}
	free(path);
}

static void make_opaque(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	if (lsetxattr(path, "trusted.overlay.opaque", "y", 1, 0) < 0) {
		fprintf(stderr, "%s: cannot mark %s opaque: %s\n", test_current_name, path, strerror(errno));
		test_current_failed = true;
	}
	free(path);
}

static bool is_whiteout(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	struct stat st;
	bool found = lstat(path, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);

	free(path);
	return found;
}

/* True if a mount point in /proc/self/mountinfo is PREFIX or lies below it. */
static bool has_mount_under(const char *prefix)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	size_t len = strlen(prefix);
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char mount_point[4096];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mount_point) != 1)
			continue;
		found = strncmp(mount_point, prefix, len) == 0 && (mount_point[len] == '\0' || mount_point[len] == '/');
	}
	fclose(f);
	return found;
}

/* Why overlay mounts cannot be tested here, or NULL if they can. */
static const char *overlay_unavailable(void)
{
	if (geteuid() != 0)
		return "mounting an overlay needs root";

	char *filesystems = NULL;
	size_t len;
	if (read_file("/proc/filesystems", &filesystems, &len) < 0)
		return "cannot read /proc/filesystems";
	bool found = strstr(filesystems, "\toverlay\n") != NULL;
	free(filesystems);
	return found ? NULL : "the kernel has no overlay file system";
}

/* ---- Layer stacks ---- */

struct stack {
	char *root;    /* test directory holding layers/ and the scratch directory */
	char **layers; /* layers/0 (topmost) .. layers/COUNT-1 (base) */
	size_t count;
};

static bool make_stack(struct stack *s, size_t count)
{
	s->root = scratch_dir("overlay");
	s->count = count;
	s->layers = xcalloc(count, sizeof(*s->layers));
	if (!s->root)
		return false;

	make_subdir(s->root, "layers");
	for (size_t i = 0; i < count; i++) {
		s->layers[i] = xasprintf("%s/layers/%zu", s->root, i);
		if (mkdir(s->layers[i], 0755) < 0) {
			fprintf(stderr, "%s: cannot create %s: %s\n", test_current_name, s->layers[i], strerror(errno));
			return false;
		}
	}
	return true;
}

static void free_stack(struct stack *s)
{
	if (s->root)
		scratch_remove(s->root);
	for (size_t i = 0; i < s->count; i++)
		free(s->layers[i]);
	free(s->layers);
	free(s->root);
}

static bool mount_stack(struct overlay *o, struct stack *s)
{
	char *error = NULL;
	if (overlay_mount(o, s->root, s->layers, s->count, &error) < 0) {
		fprintf(stderr, "%s: overlay_mount: %s\n", test_current_name, error);
		free(error);
		test_current_failed = true;
		return false;
	}
	return true;
}

static void unmount(struct overlay *o, bool remove_upper)
{
	char *error = NULL;
	if (overlay_unmount(o, remove_upper, &error) < 0) {
		fprintf(stderr, "%s: overlay_unmount: %s\n", test_current_name, error);
		free(error);
		test_current_failed = true;
	}
}

/* Three layers: "a" in all of them, "b" in the lower two, "c" only in the base. */
static void fill_three_layers(struct stack *s)
{
	write_in(s->layers[0], "a", "top");
	write_in(s->layers[1], "a", "middle");
	write_in(s->layers[1], "b", "middle");
	write_in(s->layers[2], "a", "base");
	write_in(s->layers[2], "b", "base");
	write_in(s->layers[2], "c", "base");
}

static void check_three_layers(const struct overlay *o)
{
	char *a = read_in(o->merged, "a"), *b = read_in(o->merged, "b"), *c = read_in(o->merged, "c");

	CHECK_STR_EQ(a, "top");
	CHECK_STR_EQ(b, "middle");
	CHECK_STR_EQ(c, "base");
	free(a);
	free(b);
	free(c);
}

static bool mount_three_layers(struct stack *s, struct overlay *o)
{
	if (!make_stack(s, 3))
		return false;
	fill_three_layers(s);
	return mount_stack(o, s);
}

/* ---- Tests ---- */

/* Linux 6.8 added "lowerdir+". The release reads "MAJOR.MINOR...". */
static void test_probe_matches_kernel_version(void)
{
	struct utsname u;
	unsigned major = 0, minor = 0;

	if (geteuid() != 0)
		SKIP("opening an overlay context needs root");
	if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2)
		SKIP("cannot parse the kernel release");
	if (overlay_unavailable())
		SKIP(overlay_unavailable());

	bool expected = major > 6 || (major == 6 && minor >= 8);
	CHECK_INT_EQ(overlay_has_new_api(), expected);
}

static void test_mount_rejects_bad_lowers(void)
{
	struct overlay o;
	char *error = NULL;
	char *missing[] = { "/nonexistent/obake-layer" };

	CHECK_INT_EQ(overlay_mount(&o, "/tmp", missing, 1, &error), -1);
	CHECK(contains(error, "/nonexistent/obake-layer"));
	free(error);

	error = NULL;
	CHECK_INT_EQ(overlay_mount(&o, "/tmp", missing, 0, &error), -1);
	CHECK(error != NULL);
	free(error);
}

/* True if DIR is a directory with no entries. */
static bool is_empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *entry;
	bool empty = d != NULL;

	while (d && (entry = readdir(d)) != NULL)
		if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
			empty = false;
	if (d)
		closedir(d);
	return empty;
}

/*
 * A failed mount removes the scratch directory it made. The failure comes from placing the scratch
 * directory inside another overlay, which the kernel rejects as an upper file system.
 */
static void test_mount_failure_cleans_up(void)
{
	if (overlay_unavailable())
		SKIP(overlay_unavailable());

	struct stack s = { 0 };
	struct overlay outer;
	if (!mount_three_layers(&s, &outer)) {
		free_stack(&s);
		return;
	}
	char *inner_parent = xasprintf("%s/scratch", outer.merged);
	make_subdir(outer.merged, "scratch");

	struct overlay inner;
	char *error = NULL;
	CHECK_INT_EQ(overlay_mount(&inner, inner_parent, s.layers, 1, &error), -1);
	CHECK(contains(error, "upper"));
	CHECK(is_empty_dir(inner_parent));
	free(error);
	free(inner_parent);

	unmount(&outer, true);
	free_stack(&s);
}

/* A lower layer that is not a directory is rejected with its path. */
static void test_mount_rejects_file_lower(void)
{
	char *root = scratch_dir("overlay");
	if (!root) {
		test_current_failed = true;
		return;
	}
	char *file = xasprintf("%s/not-a-directory", root);
	scratch_write_text(file, "x");

	struct overlay o;
	char *error = NULL;
	char *lowers[] = { file };
	CHECK_INT_EQ(overlay_mount(&o, root, lowers, 1, &error), -1);
	CHECK(contains(error, file));
	free(error);

	CHECK_INT_EQ(unlink(file), 0);
	CHECK_INT_EQ(rmdir(root), 0);
	free(file);
	free(root);
}

static void test_stack_reads_topmost(void)
{
	if (overlay_unavailable())
		SKIP(overlay_unavailable());

	struct stack s = { 0 };
	struct overlay o;
	if (make_stack(&s, 3)) {
		fill_three_layers(&s);
		if (mount_stack(&o, &s)) {
			check_three_layers(&o);
			CHECK_INT_EQ(o.used_new_api, overlay_has_new_api());
			CHECK_INT_EQ(o.merged_lowers, 0);
			unmount(&o, true);
		}
	}
	free_stack(&s);
}

static void test_writes_land_in_upper(void)
{
	if (overlay_unavailable())
		SKIP(overlay_unavailable());

	struct stack s = { 0 };
	struct overlay o;
	if (!mount_three_layers(&s, &o)) {
		free_stack(&s);
		return;
	}

	write_in(o.merged, "new", "written");
	write_in(o.merged, "c", "changed");
	char *b_path = xasprintf("%s/b", o.merged);
	CHECK_INT_EQ(unlink(b_path), 0);
	free(b_path);

	char *upper_new = read_in(o.upper, "new"), *upper_c = read_in(o.upper, "c");
	char *base_c = read_in(s.layers[2], "c"), *middle_b = read_in(s.layers[1], "b");
	CHECK_STR_EQ(upper_new, "written");
	CHECK_STR_EQ(upper_c, "changed");
	CHECK(is_whiteout(o.upper, "b"));
	CHECK_STR_EQ(base_c, "base");
	CHECK_STR_EQ(middle_b, "middle");
	for (size_t i = 0; i < s.count; i++)
		CHECK(!exists(s.layers[i], "new"));
	CHECK(!exists(o.merged, "b"));
	free(upper_new);
	free(upper_c);
	free(base_c);
	free(middle_b);

	unmount(&o, false);
	char *kept_file = o.upper ? read_in(o.upper, "new") : NULL;
	CHECK_STR_EQ(kept_file, "written");
	free(kept_file);
	free(o.upper);
	free(o.scratch);
	free_stack(&s);
}

static void test_whiteout_hides_lower(void)
{
	if (overlay_unavailable())
		SKIP(overlay_unavailable());

	struct stack s = { 0 };
	struct overlay o;
	if (make_stack(&s, 2)) {
		write_in(s.layers[1], "gone", "base");
		make_whiteout(s.layers[0], "gone");
		make_subdir(s.layers[1], "d");
		write_in(s.layers[1], "d/below", "base");
		make_subdir(s.layers[0], "d");
		write_in(s.layers[0], "d/above", "top");
		make_opaque(s.layers[0], "d");

		if (mount_stack(&o, &s)) {
			CHECK(!exists(o.merged, "gone"));
			CHECK(exists(o.merged, "d/above"));
			CHECK(!exists(o.merged, "d/below"));
			unmount(&o, true);
		}
	}
	free_stack(&s);
}

/*
 * Fill DEEP_LAYERS layers. Each has its own file, and "shared" differs per layer. The deepest
 * merged layer (the one above the bottom, which stays separate) contains "deepest", a hard link pair, an owned and moded file, a symbolic link, "gone" (whited
 * out by a layer that is also merged) and "od/hidden" (below an opaque "od").
 */
static void fill_deep_layers(struct stack *s)
{
	const char *deepest = s->layers[s->count - 2];

	for (size_t i = 0; i < s->count; i++) {
		char name[32], text[32];
		snprintf(name, sizeof(name), "f%zu", i);
		snprintf(text, sizeof(text), "%zu", i);
		write_in(s->layers[i], name, text);
		write_in(s->layers[i], "shared", text);
	}
	write_in(deepest, "deepest", "deepest");
	write_in(deepest, "h1", "linked");
	write_in(deepest, "gone", "deepest");
	write_in(deepest, "owned", "owned");
	make_subdir(deepest, "od");
	write_in(deepest, "od/hidden", "deepest");

	char *h1 = xasprintf("%s/h1", deepest), *h2 = xasprintf("%s/h2", deepest);
	char *owned = xasprintf("%s/owned", deepest), *sym = xasprintf("%s/sym", deepest);
	CHECK_INT_EQ(link(h1, h2), 0);
	CHECK_INT_EQ(chown(owned, 1234, 5678), 0);
	CHECK_INT_EQ(chmod(owned, 0640), 0);
	CHECK_INT_EQ(symlink("deepest", sym), 0);
	free(h1);
	free(h2);
	free(owned);
	free(sym);

	/* Both layers are among the merged ones: the 101 above the bottom one. */
	make_whiteout(s->layers[s->count - 50], "gone");
	make_subdir(s->layers[s->count - 40], "od");
	write_in(s->layers[s->count - 40], "od/kept", "kept");
	make_opaque(s->layers[s->count - 40], "od");
}

static void check_deep_merged_view(const struct overlay *o)
{
	char *deepest = read_in(o->merged, "deepest"), *shared = read_in(o->merged, "shared");
	char *f0 = read_in(o->merged, "f0"), *f599 = read_in(o->merged, "f599");
	char *sym = read_in(o->merged, "sym");

	CHECK_STR_EQ(deepest, "deepest");
	CHECK_STR_EQ(shared, "0");
	CHECK_STR_EQ(f0, "0");
	CHECK_STR_EQ(f599, "599");
	CHECK_STR_EQ(sym, "deepest");
	CHECK(!exists(o->merged, "gone"));
	CHECK(exists(o->merged, "od/kept"));
	CHECK(!exists(o->merged, "od/hidden"));
	free(deepest);
	free(shared);
	free(f0);
	free(f599);
	free(sym);

	char *owned = xasprintf("%s/owned", o->merged);
	struct stat st;
	CHECK_INT_EQ(stat(owned, &st), 0);
	CHECK_INT_EQ(st.st_uid, 1234);
	CHECK_INT_EQ(st.st_gid, 5678);
	CHECK_INT_EQ(st.st_mode & 07777, 0640);
	free(owned);
}

/* The merged copy keeps hard links as links, and the source layers keep theirs. */
static void check_deep_hard_links(const struct overlay *o, const struct stack *s)
{
	char *copy1 = xasprintf("%s/lower/h1", o->scratch), *copy2 = xasprintf("%s/lower/h2", o->scratch);
	char *source = xasprintf("%s/h1", s->layers[s->count - 2]);
	struct stat st1, st2, source_st;

	CHECK_INT_EQ(lstat(copy1, &st1), 0);
	CHECK_INT_EQ(lstat(copy2, &st2), 0);
	CHECK_INT_EQ(st1.st_ino, st2.st_ino);
	CHECK_INT_EQ(lstat(source, &source_st), 0);
	CHECK_INT_EQ(source_st.st_nlink, 2);
	CHECK(source_st.st_ino != st1.st_ino);
	free(copy1);
	free(copy2);
	free(source);
}

static void run_deep_stack(bool legacy)
{
	struct stack s = { 0 };
	struct overlay o;
	if (!make_stack(&s, DEEP_LAYERS)) {
		test_current_failed = true;
		free_stack(&s);
		return;
	}
	fill_deep_layers(&s);

	if (legacy)
		setenv("OBAKE_OVERLAY_LEGACY", "1", 1);
	bool mounted = mount_stack(&o, &s);
	unsetenv("OBAKE_OVERLAY_LEGACY");
	if (mounted) {
		CHECK_INT_EQ(o.used_new_api, !legacy);
		CHECK_INT_EQ(o.merged_lowers, DEEP_LAYERS - (OVERLAY_MAX_LOWER - 2) - 1);
		/* The bottom layer (the base system in a build) is mounted as it is, not copied. */
		CHECK(exists(o.scratch, "lower/f598"));
		CHECK(!exists(o.scratch, "lower/f599"));
		check_deep_merged_view(&o);
		check_deep_hard_links(&o, &s);
		CHECK(is_whiteout(s.layers[s.count - 50], "gone"));
		unmount(&o, true);
	}
	free_stack(&s);
}

static void test_deep_stack_new_api(void)
{
	if (overlay_unavailable())
		SKIP(overlay_unavailable());
	if (!overlay_has_new_api())
		SKIP("the kernel rejects lowerdir+ (Linux 6.8 or later needed)");
	run_deep_stack(false);
}

static void test_deep_stack_legacy(void)
{
	if (overlay_unavailable())
		SKIP(overlay_unavailable());
	run_deep_stack(true);
}

static void test_legacy_small_stack(void)
{
	if (overlay_unavailable())
		SKIP(overlay_unavailable());

	struct stack s = { 0 };
	struct overlay o;
	if (make_stack(&s, 3)) {
		fill_three_layers(&s);
		setenv("OBAKE_OVERLAY_LEGACY", "1", 1);
		bool mounted = mount_stack(&o, &s);
		unsetenv("OBAKE_OVERLAY_LEGACY");
		if (mounted) {
			CHECK(!o.used_new_api);
			check_three_layers(&o);
			write_in(o.merged, "new", "written");
			CHECK(exists(o.upper, "new"));
			CHECK(!exists(s.layers[0], "new"));
			unmount(&o, true);
		}
	}
	free_stack(&s);
}

static void test_unmount_leaves_no_mounts(void)
{
	if (overlay_unavailable())
		SKIP(overlay_unavailable());

	struct stack s = { 0 };
	struct overlay o;
	if (!mount_three_layers(&s, &o)) {
		free_stack(&s);
		return;
	}
	char *scratch = xstrdup(o.scratch);
	CHECK(has_mount_under(scratch));
	write_in(o.merged, "new", "written");

	unmount(&o, false);
	CHECK(!has_mount_under(scratch));
	CHECK(!exists(scratch, "merged"));
	CHECK(!exists(scratch, "work"));
	CHECK(exists(scratch, "upper/new"));
	CHECK(!o.mounted);

	/* Unmounting again only removes what is left. */
	unmount(&o, true);
	CHECK(access(scratch, F_OK) < 0);
	free(scratch);
	free_stack(&s);
}

/* A file still open in the tree makes the plain unmount fail with EBUSY, so the detached unmount follows. */
static void test_unmount_busy_tree(void)
{
	if (overlay_unavailable())
		SKIP(overlay_unavailable());

	struct stack s = { 0 };
	struct overlay o;
	if (!mount_three_layers(&s, &o)) {
		free_stack(&s);
		return;
	}
	char *scratch = xstrdup(o.scratch);
	char *path = xasprintf("%s/being-written", o.merged);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);

	unmount(&o, true);
	CHECK(!has_mount_under(scratch));
	CHECK_INT_EQ(write(fd, "late", 4), 4);
	if (fd >= 0)
		close(fd);
	free(path);
	free(scratch);
	free_stack(&s);
}

int main(void)
{
	/* The tests that need the mount(2) path set it themselves. */
	unsetenv("OBAKE_OVERLAY_LEGACY");
	RUN_TEST(test_probe_matches_kernel_version);
	RUN_TEST(test_mount_rejects_bad_lowers);
	RUN_TEST(test_mount_rejects_file_lower);
	RUN_TEST(test_mount_failure_cleans_up);
	RUN_TEST(test_stack_reads_topmost);
	RUN_TEST(test_writes_land_in_upper);
	RUN_TEST(test_whiteout_hides_lower);
	RUN_TEST(test_deep_stack_new_api);
	RUN_TEST(test_deep_stack_legacy);
	RUN_TEST(test_legacy_small_stack);
	RUN_TEST(test_unmount_leaves_no_mounts);
	RUN_TEST(test_unmount_busy_tree);
	return test_summary();
}
