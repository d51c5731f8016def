/*
 * The offline build context for `obake dockerfile --archive-mirror`. dockerd 20.10's built-in
 * Dockerfile frontend has no named build contexts, so the repository and the archives must sit in
 * one folder. obake makes that folder under the output folder instead of adding files to the
 * user's repository.
 */
#include "build_context.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd_common.h"
#include "util.h"

/* Remove PATH and everything under it; a missing PATH is no error. */
static int remove_tree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);

	DIR *dir = opendir(path);
	if (!dir)
		return -1;
	int status = 0;
	struct dirent *entry;
	while (status == 0 && (entry = readdir(dir)) != NULL) {
		if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
			continue;
		char *child = xasprintf("%s/%s", path, entry->d_name);
		status = remove_tree(child);
		free(child);
	}
	closedir(dir);
	return status == 0 ? rmdir(path) : -1;
}

static int copy_file(const char *source, const char *target, mode_t mode)
{
	char buffer[1 << 16];
	int in = open(source, O_RDONLY | O_CLOEXEC);
	int out = in < 0 ? -1 : open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
	int status = in < 0 || out < 0 ? -1 : 0;

	while (status == 0) {
		ssize_t n = read(in, buffer, sizeof(buffer));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			status = n < 0 ? -1 : 0;
			break;
		}
		for (ssize_t done = 0; done < n && status == 0;) {
			ssize_t w = write(out, buffer + done, (size_t)(n - done));
			if (w < 0 && errno != EINTR)
				status = -1;
			done += w > 0 ? w : 0;
		}
	}
	int saved = errno;
	if (out >= 0 && close(out) != 0 && status == 0) {
		saved = errno;
		status = -1;
	}
	if (in >= 0)
		close(in);
	errno = saved;
	return status;
}

/*
 * Mirror the tree SOURCE at TARGET: directories are created, regular files hard-linked (copied where
 * the file system refuses links, across file systems for example), symbolic links recreated. The
 * directory SKIP (device and inode) is left out, so that an output folder inside the repository is
 * not copied into itself. Prints what failed and returns -1.
 */
static int link_tree(const char *source, const char *target, const struct stat *skip)
{
	struct stat st;

	if (lstat(source, &st) != 0) {
		fprintf(stderr, "%s: cannot read %s: %s\n", program_name, source, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode) && st.st_dev == skip->st_dev && st.st_ino == skip->st_ino)
		return 0;

	int status = 0;
	if (S_ISLNK(st.st_mode)) {
		char *link_target = xcalloc((size_t)st.st_size + 2, 1);
		ssize_t n = readlink(source, link_target, (size_t)st.st_size + 1);
		status = n < 0 || symlink(link_target, target) != 0 ? -1 : 0;
		free(link_target);
	} else if (S_ISREG(st.st_mode)) {
		status = link(source, target);
		if (status != 0 && (errno == EXDEV || errno == EPERM || errno == EMLINK || errno == ENOTSUP))
			status = copy_file(source, target, st.st_mode);
	} else if (S_ISDIR(st.st_mode)) {
		/* Owner write permission, so that the next run can remove the context. */
		DIR *dir = NULL;
		if (mkdir(target, (st.st_mode & 07777) | S_IWUSR) != 0 || !(dir = opendir(source))) {
			fprintf(stderr, "%s: cannot copy the folder %s to %s: %s\n", program_name, source, target,
				strerror(errno));
			return -1;
		}
		struct dirent *entry;
		while (dir && status == 0 && (entry = readdir(dir)) != NULL) {
			if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
				continue;
			char *from = xasprintf("%s/%s", source, entry->d_name);
			char *to = xasprintf("%s/%s", target, entry->d_name);
			status = link_tree(from, to, skip);
			free(from);
			free(to);
		}
		closedir(dir);
		return status; /* a failure below was printed where it happened */
	}
	/* Sockets, fifos and devices have no place in a repository and are left out. */
	if (status != 0)
		fprintf(stderr, "%s: cannot link %s to %s: %s\n", program_name, source, target, strerror(errno));
	return status;
}

char *build_context_create(const struct options *opts, const struct repo_index *idx, const struct outcome *outcomes,
			   uint32_t count, const char *out_dir)
{
	char *abs_out = realpath(out_dir, NULL);
	if (!abs_out) {
		fprintf(stderr, "%s: cannot resolve output folder %s: %s\n", program_name, out_dir, strerror(errno));
		return NULL;
	}
	char *context = xasprintf("%s/context", abs_out);
	char *repository = xasprintf("%s/" BUILD_CONTEXT_REPOSITORY, context);
	char *cache = xasprintf("%s/" BUILD_CONTEXT_DOWNLOAD_CACHE, context);
	struct stat context_st;
	bool ok = false;

	/* A context left by an earlier run may hold archives that these solutions no longer need. */
	if (remove_tree(context) != 0) {
		fprintf(stderr, "%s: cannot remove the old build context %s: %s\n", program_name, context,
			strerror(errno));
		goto out;
	}
	if (mkdir(context, 0755) != 0 || stat(context, &context_st) != 0 || mkdir(cache, 0755) != 0) {
		fprintf(stderr, "%s: cannot create the build context %s: %s\n", program_name, context, strerror(errno));
		goto out;
	}
	if (link_tree(opts->repositories[0], repository, &context_st) != 0)
		goto out;

	/*
	 * Failed sources were printed by the fetcher. They fail only the packages that need them, in
	 * the image build, as they would fail in `obake build`.
	 */
	unsigned failed = fetch_sources(opts, idx, cache, outcomes, count, NULL, NULL);
	if (failed > 0)
		fprintf(stderr,
			"%s: warning: %u sources are missing from the build context; the packages that need them will "
			"fail\n",
			program_name, failed);
	ok = true;
out:
	free(abs_out);
	free(repository);
	free(cache);
	if (!ok) {
		free(context);
		return NULL;
	}
	return context;
}
