/*
 * System packages: the ones a package's `depexts` names in an environment, and the ones a base
 * system has installed, read from dpkg's status file. opam checks the first against the second
 * before it builds a package; the native engine does the same, since its builds run with
 * --no-depexts and no network.
 */
#ifndef OBAKE_DEPEXTS_H
#define OBAKE_DEPEXTS_H

#include <stdbool.h>
#include <stddef.h>

#include "filter.h"
#include "intern.h"
#include "package.h"

/* A set of names without duplicates, in the order they were first added. */
struct name_set {
	struct intern_table table;
};

/* Add the system packages P's depexts name in GLOBALS (entries whose filter holds) to SET. */
void depexts_add(struct name_set *set, const struct package *p, const struct variables *globals);

/*
 * Read the packages installed in ROOTFS, with the names they provide, from its dpkg status file.
 * Returns false (and leaves SET empty) when the root has no dpkg: the check is then skipped.
 */
bool depexts_load_installed(struct name_set *set, const char *rootfs);

static inline bool name_set_has(const struct name_set *set, const char *name)
{
	return intern_find(&set->table, name) != UINT32_MAX;
}

/* Whether the system package NAME, `name` or `name:arch`, is in the set of installed packages. */
bool depexts_installed(const struct name_set *installed, const char *name);

static inline size_t name_set_count(const struct name_set *set)
{
	return set->table.count;
}

static inline const char *name_set_at(const struct name_set *set, size_t i)
{
	return intern_string(&set->table, (uint32_t)i);
}

void name_set_release(struct name_set *set);

/*
 * Whether NAME is a Debian package name (lowercase letters, digits and `+-.`, at least two
 * characters, starting with a letter or digit), optionally with an architecture (`libc6:amd64`).
 * Names go into the base's setup script, so anything else is refused before it gets there.
 */
bool debian_package_name_valid(const char *name);

#endif
