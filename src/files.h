/*
 * Directory trees: creating, removing and copying them in-process. Running `mkdir -p`, `rm -rf`
 * or `cp -R` through a shell would cost a process per call and break on paths that need quoting.
 */
#ifndef OBAKE_FILES_H
#define OBAKE_FILES_H

#include <stddef.h>
#include <sys/stat.h>

/* Create PATH and its missing parents (mode 0755), as `mkdir -p` does. */
int make_dirs(const char *path, char **error);

/* A function that for_each_child calls for each entry; a non-zero result stops the walk. */
typedef int visit_fn(void *context, const char *src_child, const char *dst_child);

/*
 * Call VISIT(CONTEXT, SRC/NAME, DST/NAME) for each entry NAME of the directory SRC except . and ..
 * (DST/NAME is NULL when DST is). Returns the first non-zero result, or -1 with ERROR set when SRC
 * cannot be read.
 */
int for_each_child(const char *src, const char *dst, visit_fn *visit, void *context, char **error);

/*
 * Remove PATH and everything below it, without following symbolic links. A missing PATH is not an
 * error. A mount point at or below PATH is an error, and what is mounted there stays untouched.
 */
int remove_tree(const char *path, char **error);

/* Remove PATH as remove_tree does, and print a warning when that fails. */
void remove_tree_or_warn(const char *path);

/* Write all LEN bytes of DATA to FD, retrying short writes; -1 with errno set on failure. */
int write_all(int fd, const char *data, size_t len);

/* Copy the rest of the file IN to OUT, from their current offsets; -1 with errno set on failure. */
int copy_bytes(int in, int out);

/* Copy the bytes of the regular file SRC to the new file DST, created with mode 0600. */
int copy_regular(const char *src, const char *dst, char **error);

/* Create DST as a symbolic link with the target of SRC, whose status is ST. */
int copy_symlink(const char *src, const char *dst, const struct stat *st, char **error);

/*
 * Copy the tree SRC to the new path DST: directories, regular files with their permission bits,
 * and symbolic links. Owners, times and extended attributes are not kept. Other file types
 * (devices, sockets, FIFOs) are an error, because they have no place in the trees copied here.
 */
int copy_tree(const char *src, const char *dst, char **error);

#endif
