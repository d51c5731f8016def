/* Command-line options shared by every command: repositories, environment, parallelism. */
#ifndef OBAKE_OPTIONS_H
#define OBAKE_OPTIONS_H

#include <stdbool.h>

#include "filter.h"

#define DEFAULT_OCAML_VERSION "5.3.0"

struct options {
	char **repositories; /* -r, in the order given */
	unsigned repository_count;
	unsigned jobs;             /* -j; 0 means one per core */
	const char *ocaml_version; /* --ocaml */
	struct variables globals;  /* the filter environment, defaults overridden by the options */
	int verbosity;             /* -q: -1, default 0, -v: 1 */
	bool json;
	bool all_versions;
	bool all;                        /* --all: every package */
	bool with_test;                  /* --with-test: test dependencies of the targets */
	bool with_doc;                   /* --with-doc: documentation dependencies of the targets */
	bool write_deps;                 /* --deps: <target>-deps.json */
	bool write_list;                 /* --list: <target>-list.json */
	bool write_dot;                  /* --dot: <target>.dot */
	const char *output_dir;          /* -o: where files go (default .) */
	const char *base_image;          /* --base-image: first FROM of generated Dockerfiles */
	const char *opam_source;         /* --opam-source: "distribution" or "release" */
	const char *opam_url;            /* --opam-url: release binary to download with --opam-source release */
	unsigned max_layers;             /* --max-layers: image depth limit for generated Dockerfiles */
	unsigned long max_file_size;     /* --max-file-size: bytes per generated file */
	unsigned batch_size;             /* --batch-size: targets per bake group */
	bool no_group;                   /* --no-group: one RUN step per package, whatever the depth */
	const char *store_dir;           /* --store: layer store and caches (default $OBAKE_STORE or ./obake-store) */
	unsigned timeout_seconds;        /* --timeout: per build */
	unsigned long long memory_bytes; /* --memory: per build */
	const char *runtime;             /* --runtime: runc or crun */
	bool dry_run;                    /* --dry-run: solve and report which layers exist */
	bool retry_failed;               /* --retry-failed: rebuild layers recorded as failed */
	bool depexts;                    /* --depexts: the base also holds the solutions' system packages */
	bool detect_sys_ocaml;           /* --detect-sys-ocaml: sys-ocaml-* from the base's ocamlc */
	unsigned sys_ocaml_given;        /* bit i: sys_ocaml_variables[i] was set on the command line */
	const char *optional_packages;   /* Debian packages for the base that are left out when missing */
	const char *suite;               /* --suite: Debian release for the base */
	const char *mirror;              /* --mirror: Debian mirror for the base */
	const char *extra_packages;      /* --extra-packages: comma-separated Debian packages for the base */
	const char *base_tar;            /* --base-tar: root file system tarball to import instead */
	char **archive_mirrors;          /* --archive-mirror, repeatable */
	unsigned archive_mirror_count;
	double older_than_days;      /* prune --older-than */
	unsigned long long max_size; /* prune --max-size */
	char **args;                 /* operands after the options */
	int arg_count;
};

/* The variables opam computes from the system compiler, in the order of options.sys_ocaml_given. */
extern const char *const sys_ocaml_variables[4];

/*
 * Parse ARGV (ARGV[0] is the command name) into OPTS; ACCEPTED lists the long options the command
 * takes beyond the common ones, NULL-terminated. Exits with status 2 and a message on a usage error.
 */
void options_parse(struct options *opts, int argc, char **argv, const char *const *accepted, const char *usage);
/* Fill GLOBALS with obake's default environment (see the README) for OCAML_VERSION. */
void options_default_environment(struct variables *globals, const char *ocaml_version);
void options_release(struct options *opts);

#endif
