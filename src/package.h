/*
 * One package version of a repository: its opam file and the fields obake uses, checked once at
 * load time. A field whose value has the wrong shape is dropped with a warning, as opam does.
 */
#ifndef OBAKE_PACKAGE_H
#define OBAKE_PACKAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"
#include "opam_ast.h"

enum package_flag {
	PACKAGE_FLAG_AVOID_VERSION = 1 << 0,
	PACKAGE_FLAG_DEPRECATED = 1 << 1,
	PACKAGE_FLAG_CONF = 1 << 2,
	PACKAGE_FLAG_COMPILER = 1 << 3,
	PACKAGE_FLAG_LIGHT_UNINSTALL = 1 << 4,
	PACKAGE_FLAG_PLUGIN = 1 << 5,
	PACKAGE_FLAG_VERBOSE = 1 << 6,
};

/* A download: the `url` section or an `extra-source` section. */
struct package_source {
	const char *name;       /* extra-source file name; NULL for the url section */
	const char *src;        /* URL */
	const char **checksums; /* "sha256=HEX", "md5=HEX", ... */
	uint32_t checksum_count;
	const char **mirrors;
	uint32_t mirror_count;
};

struct package {
	const char *name;
	const char *version;
	uint32_t name_id;    /* index in the repository index's name table */
	uint32_t version_id; /* id of the version string in the repository index's version table */
	uint32_t repository; /* index of the repository it was read from */
	const char *dir;     /* directory holding the opam file (and files/) */
	struct opam_file *file;

	/* Fields, NULL when absent or dropped. */
	const struct value *depends;
	const struct value *depopts;
	const struct value *conflicts;
	const struct value *available; /* a single filter; NULL means true */
	const struct value *build;
	const struct value *install;
	const struct value *patches;
	const struct value *build_env;
	const struct value *depexts;
	const char **conflict_class;
	uint32_t conflict_class_count;
	unsigned flags;             /* enum package_flag */
	struct package_source *url; /* NULL when the package has nothing to download */
	struct package_source *extra_sources;
	uint32_t extra_source_count;
};

/*
 * Fill P's fields from P->file, reporting shape problems to DIAGS as warnings. P->name and
 * P->version must be set: the `name:` and `version:` fields, if present, are checked against them.
 */
void package_extract_fields(struct package *p, struct arena *arena, struct diag_list *diags);

static inline bool package_has_flag(const struct package *p, enum package_flag flag)
{
	return (p->flags & flag) != 0;
}

#endif
