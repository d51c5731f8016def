/*
 * Assembling a build's lower layers, two ways, for bench/run (run as root):
 *
 *   assemble largest PLATFORM_DIR BASE_ROOTFS
 *       Find the store's layer with the largest dependency closure. Print its package (name.version)
 *       on the first line, then its lower layers, one path a line, topmost first and BASE_ROOTFS
 *       last, in the order obake's builds mount them.
 *   assemble overlay RUNS SCRATCH LOWER...
 *       obake's way: one overlay mount with every LOWER as a lower layer (overlay_mount, which adds
 *       them one at a time with "lowerdir+" where the kernel accepts it), then unmount and remove.
 *   assemble hardlink RUNS TARGET LAYER...
 *       day10's way, done in this process: hard-link every file of every LAYER (topmost first, as
 *       above) into the new directory TARGET, deepest layer first so that upper layers win, then
 *       remove TARGET.
 *
 * overlay and hardlink do their work RUNS times and print two numbers: the non-directory entries
 * in the assembled tree (the same for both ways on the same layers) and the lowest wall time of a
 * run in seconds. The time leaves out starting this program and counting the entries.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "overlay.h"
#include "store.h"
#include "util.h"

/* Open file descriptors nftw may use. */
#define WALK_FDS 64

static const char usage[] = "usage: assemble largest PLATFORM_DIR BASE_ROOTFS\n"
			    "       assemble overlay RUNS SCRATCH LOWER...\n"
			    "       assemble hardlink RUNS TARGET LAYER...\n";

/* ---- Counting and removing trees ---- */

static unsigned long entry_count;

static int count_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)st;
	(void)ftw;
	if (type != FTW_D && type != FTW_DP)
		entry_count++;
	return 0;
}

/* The number of non-directory entries under ROOT, or -1. */
static long count_files(const char *root)
{
	entry_count = 0;
	if (nftw(root, count_entry, WALK_FDS, FTW_PHYS) != 0) {
		fprintf(stderr, "assemble: cannot walk %s: %s\n", root, strerror(errno));
		return -1;
	}
	return (long)entry_count;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	if (remove(path) != 0) {
		fprintf(stderr, "assemble: cannot remove %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int remove_tree(const char *root)
{
	return nftw(root, remove_entry, WALK_FDS, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

/* ---- largest: the largest closure in the store ---- */

struct layer {
	char *key;
	char *package; /* name.version */
	char **deps;   /* keys of the direct dependency layers, in layer.json's order */
	size_t dep_count;
};

static struct layer *layers;
static size_t layer_count;

static struct layer *find_layer(const char *key)
{
	for (size_t i = 0; i < layer_count; i++)
		if (strcmp(layers[i].key, key) == 0)
			return &layers[i];
	return NULL;
}

/* Read the dependencies of every successful layer in S's platform directory. */
static int read_layers(const struct store *s)
{
	DIR *dir = opendir(s->dir);
	if (!dir) {
		fprintf(stderr, "assemble: cannot open directory %s: %s\n", s->dir, strerror(errno));
		return -1;
	}

	struct dirent *entry;
	while ((entry = readdir(dir)) != NULL) {
		/* Skip locks/ and the temporary directories of unfinished builds. */
		if (strlen(entry->d_name) != LAYER_KEY_SIZE - 1)
			continue;
		struct layer_info info;
		char *error = NULL;
		if (store_read_layer(s, entry->d_name, &info, &error) != 0) {
			fprintf(stderr, "assemble: %s\n", error);
			free(error);
			continue;
		}
		if (info.status == LAYER_SUCCESS) {
			layers = xreallocarray(layers, layer_count + 1, sizeof(*layers));
			layers[layer_count++] = (struct layer){ xstrdup(entry->d_name), info.package, info.dependencies,
								info.dependency_count };
			info.package = NULL;
			info.dependencies = NULL;
			info.dependency_count = 0;
		}
		layer_info_release(&info);
	}
	closedir(dir);
	return 0;
}

/*
 * Append every layer LAYER depends on, directly or not, to OUT, dependencies before users, as
 * collect_closure in src/build.c orders them. SEEN has one flag per layer.
 */
static void collect_closure(const struct layer *layer, unsigned char *seen, const struct layer **out, size_t *count)
{
	for (size_t d = 0; d < layer->dep_count; d++) {
		const struct layer *dep = find_layer(layer->deps[d]);
		if (!dep || seen[dep - layers])
			continue;
		seen[dep - layers] = 1;
		collect_closure(dep, seen, out, count);
		out[(*count)++] = dep;
	}
}

static int print_largest(const char *platform_dir, const char *base_rootfs)
{
	struct store s = { .dir = xstrdup(platform_dir) };
	int status = read_layers(&s);
	store_close(&s);
	if (status != 0)
		return 1;
	if (layer_count == 0) {
		fprintf(stderr, "assemble: no successful layer in %s\n", platform_dir);
		return 1;
	}

	const struct layer **closure = xcalloc(layer_count, sizeof(*closure));
	const struct layer **largest = xcalloc(layer_count, sizeof(*largest));
	unsigned char *seen = xcalloc(layer_count, 1);
	const struct layer *largest_layer = &layers[0];
	size_t largest_count = 0;
	for (size_t i = 0; i < layer_count; i++) {
		size_t count = 0;
		memset(seen, 0, layer_count);
		collect_closure(&layers[i], seen, closure, &count);
		if (count > largest_count) {
			largest_count = count;
			largest_layer = &layers[i];
			memcpy(largest, closure, count * sizeof(*closure));
		}
	}

	printf("%s\n", largest_layer->package);
	/* Topmost first: the last installed dependency, down to the base. */
	for (size_t i = largest_count; i-- > 0;)
		printf("%s/%s/fs\n", platform_dir, largest[i]->key);
	printf("%s\n", base_rootfs);
	free(closure);
	free(largest);
	free(seen);
	return 0;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- overlay: obake's way ---- */

/* Mount and unmount once, and count the entries of the mounted tree into *FILES unless FILES is NULL. */
static int mount_once(const char *scratch, char *const *lowers, size_t count, long *files, double *seconds)
{
	struct overlay o;
	char *error = NULL;

	double start = now();
	if (overlay_mount(&o, scratch, lowers, count, &error) != 0) {
		fprintf(stderr, "assemble: %s\n", error);
		free(error);
		return -1;
	}
	*seconds = now() - start;

	int status = 0;
	if (files && (*files = count_files(o.merged)) < 0)
		status = -1;

	start = now();
	if (overlay_unmount(&o, true, &error) != 0) {
		fprintf(stderr, "assemble: %s\n", error);
		free(error);
		return -1;
	}
	*seconds += now() - start;
	return status;
}

/* ---- hardlink: day10's way ---- */

static const char *link_target;   /* the directory being assembled */
static size_t link_source_length; /* length of the current layer's path, to make paths relative */

/*
 * Apply one entry of a layer: directories are created (or kept, if a deeper layer made them) with
 * the layer's owner and mode, anything else replaces what a deeper layer put at the same path.
 * Overlayfs whiteouts are linked like any other file, as `cp -al` copies them.
 */
static int link_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	char *target = xasprintf("%s%s", link_target, path + link_source_length);
	int status = 0;

	if (type == FTW_D) {
		struct stat existing;
		if (lstat(target, &existing) == 0 && !S_ISDIR(existing.st_mode) && unlink(target) != 0)
			status = -1;
		else if (mkdir(target, 0700) != 0 && errno != EEXIST)
			status = -1;
		else if (lchown(target, st->st_uid, st->st_gid) != 0 || chmod(target, st->st_mode & 07777) != 0)
			status = -1;
	} else if (type == FTW_DNR || type == FTW_NS) {
		errno = EACCES;
		status = -1;
	} else if (link(path, target) != 0) {
		/* NOTE: a deeper layer's directory at this path is not replaced, because unlink fails on it. */
		if (errno != EEXIST || unlink(target) != 0 || link(path, target) != 0)
			status = -1;
	}
	if (status != 0)
		fprintf(stderr, "assemble: cannot link %s to %s: %s\n", path, target, strerror(errno));
	free(target);
	return status;
}

/* Link the layers into TARGET and remove it once, and count its entries into *FILES unless FILES is NULL. */
static int link_once(const char *target, char *const *layers_topmost_first, size_t count, long *files, double *seconds)
{
	double start = now();
	if (mkdir(target, 0755) != 0) {
		fprintf(stderr, "assemble: cannot create directory %s: %s\n", target, strerror(errno));
		return -1;
	}
	link_target = target;
	int status = 0;
	for (size_t i = count; status == 0 && i-- > 0;) {
		link_source_length = strlen(layers_topmost_first[i]);
		if (nftw(layers_topmost_first[i], link_entry, WALK_FDS, FTW_PHYS) != 0)
			status = -1;
	}
	*seconds = now() - start;

	if (status == 0 && files && (*files = count_files(target)) < 0)
		status = -1;

	start = now();
	if (remove_tree(target) != 0)
		status = -1;
	*seconds += now() - start;
	return status;
}

int main(int argc, char **argv)
{
	program_name = "assemble";
	if (argc == 4 && strcmp(argv[1], "largest") == 0)
		return print_largest(argv[2], argv[3]);

	bool overlay = argc >= 5 && strcmp(argv[1], "overlay") == 0;
	bool hardlink = argc >= 5 && strcmp(argv[1], "hardlink") == 0;
	int runs = argc >= 5 ? atoi(argv[2]) : 0;
	if ((!overlay && !hardlink) || runs < 1) {
		fputs(usage, stderr);
		return 2;
	}

	char *const *lowers = argv + 4;
	size_t count = (size_t)(argc - 4);
	long files = 0;
	double best = 0;
	for (int run = 0; run < runs; run++) {
		long *count_into = run == 0 ? &files : NULL;
		double seconds;
		int status = overlay ? mount_once(argv[3], lowers, count, count_into, &seconds)
				     : link_once(argv[3], lowers, count, count_into, &seconds);
		if (status != 0)
			return 1;
		if (run == 0 || seconds < best)
			best = seconds;
	}
	printf("%ld %.6f\n", files, best);
	return 0;
}
