/*
 * The base root file system every build starts from: Debian made with debootstrap (or any root file
 * system tarball), with the build tools, opam, a user `opam` with uid 1000, `opam init --bare` and an
 * empty switch `default`. A base is identified by a hash of what made it, cached in the store under
 * that hash and reused; its identity is part of every layer's key.
 */
#ifndef OBAKE_BASE_H
#define OBAKE_BASE_H

#include "options.h"

struct base {
	char *id;     /* hex SHA-256 of the inputs */
	char *dir;    /* STORE/bases/<id> */
	char *rootfs; /* STORE/bases/<id>/rootfs */
};

/* Debian packages every base holds, before --extra-packages. */
#define BASE_PACKAGES "build-essential,opam,git,rsync,unzip,curl,patch,sudo,ca-certificates,bzip2,xz-utils"

/*
 * Find the base OPTS describe in STORE_ROOT, creating it when CREATE is true and it is missing
 * (debootstrap or --base-tar; needs root). Returns -1 with ERROR set otherwise.
 */
int base_ensure(const struct options *opts, const char *store_root, bool create, struct base *out, char **error);
void base_release(struct base *b);

#endif
