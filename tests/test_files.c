/*
 * Tests of the in-process tree operations: creating nested directories, copying a tree with its
 * permission bits and symbolic links, refusing special files, paths that would need quoting in a
 * shell, and removing trees that hold unwritable directories and dangling links.
 */
#include "harness.h"
#include "scratch.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "util.h"

static void test_make_dirs(void)
{
	char *root = scratch_dir("files");
	char *error = NULL;
	if (!root)
		return;
	char *deep = xasprintf("%s/a/b//c/", root);
	char *file = xasprintf("%s/plain", root);
	char *below_file = xasprintf("%s/plain/x", root);
	struct stat st;

	CHECK_INT_EQ(make_dirs(deep, &error), 0);
	CHECK_INT_EQ(stat(deep, &st), 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_INT_EQ(make_dirs(deep, &error), 0);

	scratch_write_text(file, "x");
	CHECK_INT_EQ(make_dirs(below_file, &error), -1);
	CHECK(error != NULL);
	CHECK(error && strstr(error, "plain"));

	free(error);
	free(deep);
	free(file);
	free(below_file);
	scratch_remove(root);
	free(root);
}

static void test_copy_tree(void)
{
	char *root = scratch_dir("files");
	char *error = NULL;
	if (!root)
		return;
	/* A quote, a space and a dollar: names a `sh -c` command line would have broken on. */
	char *src = xasprintf("%s/it's a $dir", root);
	char *dst = xasprintf("%s/copy of it's", root);
	char *path;
	struct stat st;

	CHECK_INT_EQ(make_dirs(src, &error), 0);
	path = xasprintf("%s/files", src);
	mkdir(path, 0750);
	free(path);
	path = xasprintf("%s/opam", src);
	scratch_write_text(path, "opam-version: \"2.0\"\n");
	free(path);
	path = xasprintf("%s/files/run.sh", src);
	scratch_write_text(path, "#!/bin/sh\n");
	chmod(path, 0755);
	free(path);
	path = xasprintf("%s/files/link", src);
	CHECK(symlink("run.sh", path) == 0);
	free(path);

	CHECK_INT_EQ(copy_tree(src, dst, &error), 0);

	path = xasprintf("%s/opam", dst);
	char *text = scratch_read_text(path);
	CHECK_STR_EQ(text, "opam-version: \"2.0\"\n");
	free(text);
	free(path);
	path = xasprintf("%s/files/run.sh", dst);
	CHECK_INT_EQ(stat(path, &st), 0);
	CHECK_INT_EQ(st.st_mode & 07777, 0755);
	free(path);
	path = xasprintf("%s/files", dst);
	CHECK_INT_EQ(stat(path, &st), 0);
	CHECK_INT_EQ(st.st_mode & 07777, 0750);
	free(path);
	path = xasprintf("%s/files/link", dst);
	char target[64] = { 0 };
	CHECK(readlink(path, target, sizeof(target) - 1) == 6);
	CHECK_STR_EQ(target, "run.sh");
	free(path);

	/* The destination must be new: copying onto an existing tree is refused, not merged. */
	CHECK_INT_EQ(copy_tree(src, dst, &error), -1);
	free(error);
	error = NULL;

	free(src);
	free(dst);
	scratch_remove(root);
	free(root);
}

static void test_copy_rejects_special_files(void)
{
	char *root = scratch_dir("files");
	char *error = NULL;
	if (!root)
		return;
	char *src = xasprintf("%s/src", root), *dst = xasprintf("%s/dst", root);
	char *fifo = xasprintf("%s/src/pipe", root);

	mkdir(src, 0755);
	CHECK(mkfifo(fifo, 0644) == 0);
	CHECK_INT_EQ(copy_tree(src, dst, &error), -1);
	CHECK(error != NULL);
	CHECK(error && strstr(error, "pipe"));
	CHECK(error && strstr(error, "only directories"));

	free(error);
	free(src);
	free(dst);
	free(fifo);
	scratch_remove(root);
	free(root);
}

static void test_remove_tree(void)
{
	char *root = scratch_dir("files");
	char *error = NULL;
	if (!root)
		return;
	char *tree = xasprintf("%s/tree", root);
	char *locked = xasprintf("%s/tree/locked", root);
	char *inside = xasprintf("%s/tree/locked/file", root);
	char *dangling = xasprintf("%s/tree/dangling", root);
	struct stat st;

	CHECK_INT_EQ(make_dirs(locked, &error), 0);
	scratch_write_text(inside, "x");
	CHECK(symlink("/nonexistent/target", dangling) == 0);
	/* Root may delete in a read-only directory; others would fail here, so keep it writable for them. */
	chmod(locked, geteuid() == 0 ? 0500 : 0700);

	CHECK_INT_EQ(remove_tree(tree, &error), 0);
	CHECK(lstat(tree, &st) != 0);
	CHECK_INT_EQ(remove_tree(tree, &error), 0);

	free(error);
	free(tree);
	free(locked);
	free(inside);
	free(dangling);
	scratch_remove(root);
	free(root);
}

/* A mount inside the tree stops the removal, and what is mounted there is left as it was. */
static void test_remove_tree_stops_at_mounts(void)
{
	char *root = scratch_dir("files");
	char *error = NULL;
	if (!root)
		return;
	char *mount_point = xasprintf("%s/tree/mnt", root), *tree = xasprintf("%s/tree", root);
	char *kept = xasprintf("%s/tree/mnt/kept", root);

	CHECK_INT_EQ(make_dirs(mount_point, &error), 0);
	if (mount("obake-test", mount_point, "tmpfs", 0, NULL) != 0) {
		scratch_remove(root);
		free(root);
		free(mount_point);
		free(tree);
		free(kept);
		SKIP("mounting a tmpfs needs root");
	}
	scratch_write_text(kept, "kept");

	CHECK_INT_EQ(remove_tree(tree, &error), -1);
	CHECK(error != NULL);
	CHECK(error && strstr(error, "mount point"));
	CHECK(access(kept, F_OK) == 0);

	umount2(mount_point, MNT_DETACH);
	free(error);
	free(mount_point);
	free(tree);
	free(kept);
	scratch_remove(root);
	free(root);
}

int main(void)
{
	RUN_TEST(test_make_dirs);
	RUN_TEST(test_copy_tree);
	RUN_TEST(test_copy_rejects_special_files);
	RUN_TEST(test_remove_tree);
	RUN_TEST(test_remove_tree_stops_at_mounts);
	return test_summary();
}
