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

/* Inside the base: the optional packages apt could not install, one per line. */
#define MISSING_PACKAGES_FILE "/etc/obake-missing-packages"

/*
 * Find the base OPTS describe in STORE_ROOT, creating it when CREATE is true and it is missing
 * (debootstrap or --base-tar; needs root). Returns -1 with ERROR set otherwise.
 */
int base_ensure(const struct options *opts, const char *store_root, bool create, struct base *out, char **error);
void base_release(struct base *b);

/*
 * Read the system compiler's settings from the base, as opam computes its sys-ocaml-* variables
 * from `ocamlc -vnum` and `ocamlc -config`: VALUES[i] for sys_ocaml_variables[i], empty strings
 * when the base has no ocamlc. Returns -1 with ERROR set when the base cannot be entered.
 */
int base_detect_sys_ocaml(const struct base *b, char *values[4], char **error);

/* The optional packages left out of base B, comma-separated, or NULL when none. The caller frees it. */
char *base_missing_packages(const struct base *b);

#endif
