/* Version comparison exactly as opam orders versions (a Debian-like order). */
#ifndef OBAKE_VERSION_H
#define OBAKE_VERSION_H

#include <stdbool.h>

/* Return <0, 0 or >0 as A sorts before, equal to or after B. */
int version_compare(const char *a, const char *b);
/* True if S is a valid opam version: non-empty, only [A-Za-z0-9_+.~-]. */
bool version_is_valid(const char *s);
/* True if S is a valid package name: only [A-Za-z0-9_+-], with at least one letter. */
bool package_name_is_valid(const char *s);

#endif
