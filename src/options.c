#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "util.h"
#include "version.h"

enum {
	OPT_OCAML = 256,
	OPT_OS,
	OPT_OS_FAMILY,
	OPT_OS_DISTRIBUTION,
	OPT_OS_VERSION,
	OPT_ARCH,
	OPT_OPAM_VERSION,
	OPT_VAR,
	OPT_JSON,
	OPT_ALL_VERSIONS,
	OPT_ALL,
	OPT_WITH_TEST,
	OPT_WITH_DOC,
	OPT_DEPS,
	OPT_LIST,
	OPT_DOT,
	OPT_BASE_IMAGE,
	OPT_OPAM_SOURCE,
	OPT_OPAM_URL,
	OPT_MAX_LAYERS,
	OPT_MAX_FILE_SIZE,
	OPT_BATCH_SIZE,
	OPT_NO_GROUP,
	OPT_STORE,
	OPT_TIMEOUT,
	OPT_MEMORY,
	OPT_RUNTIME,
	OPT_DRY_RUN,
	OPT_RETRY_FAILED,
	OPT_SUITE,
	OPT_MIRROR,
	OPT_EXTRA_PACKAGES,
	OPT_BASE_TAR,
	OPT_ARCHIVE_MIRROR,
	OPT_OLDER_THAN,
	OPT_MAX_SIZE,
	OPT_SYS_OCAML_VERSION,
	OPT_SYS_OCAML_ARCH,
	OPT_SYS_OCAML_CC,
	OPT_SYS_OCAML_LIBC,
	OPT_DEPEXTS,
	OPT_DETECT_SYS_OCAML,
};

static const struct option long_options[] = {
	{ "opam-repository", required_argument, NULL, 'r' },
	{ "jobs", required_argument, NULL, 'j' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "ocaml", required_argument, NULL, OPT_OCAML },
	{ "os", required_argument, NULL, OPT_OS },
	{ "os-family", required_argument, NULL, OPT_OS_FAMILY },
	{ "os-distribution", required_argument, NULL, OPT_OS_DISTRIBUTION },
	{ "os-version", required_argument, NULL, OPT_OS_VERSION },
	{ "arch", required_argument, NULL, OPT_ARCH },
	{ "opam-version", required_argument, NULL, OPT_OPAM_VERSION },
	{ "var", required_argument, NULL, OPT_VAR },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "all-versions", no_argument, NULL, OPT_ALL_VERSIONS },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "with-test", no_argument, NULL, OPT_WITH_TEST },
	{ "with-doc", no_argument, NULL, OPT_WITH_DOC },
	{ "deps", no_argument, NULL, OPT_DEPS },
	{ "list", no_argument, NULL, OPT_LIST },
	{ "dot", no_argument, NULL, OPT_DOT },
	{ "output", required_argument, NULL, 'o' },
	{ "base-image", required_argument, NULL, OPT_BASE_IMAGE },
	{ "opam-source", required_argument, NULL, OPT_OPAM_SOURCE },
	{ "opam-url", required_argument, NULL, OPT_OPAM_URL },
	{ "max-layers", required_argument, NULL, OPT_MAX_LAYERS },
	{ "max-file-size", required_argument, NULL, OPT_MAX_FILE_SIZE },
	{ "batch-size", required_argument, NULL, OPT_BATCH_SIZE },
	{ "no-group", no_argument, NULL, OPT_NO_GROUP },
	{ "store", required_argument, NULL, OPT_STORE },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "runtime", required_argument, NULL, OPT_RUNTIME },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "retry-failed", no_argument, NULL, OPT_RETRY_FAILED },
	{ "suite", required_argument, NULL, OPT_SUITE },
	{ "mirror", required_argument, NULL, OPT_MIRROR },
	{ "extra-packages", required_argument, NULL, OPT_EXTRA_PACKAGES },
	{ "base-tar", required_argument, NULL, OPT_BASE_TAR },
	{ "archive-mirror", required_argument, NULL, OPT_ARCHIVE_MIRROR },
	{ "older-than", required_argument, NULL, OPT_OLDER_THAN },
	{ "max-size", required_argument, NULL, OPT_MAX_SIZE },
	{ "sys-ocaml-version", required_argument, NULL, OPT_SYS_OCAML_VERSION },
	{ "sys-ocaml-arch", required_argument, NULL, OPT_SYS_OCAML_ARCH },
	{ "sys-ocaml-cc", required_argument, NULL, OPT_SYS_OCAML_CC },
	{ "sys-ocaml-libc", required_argument, NULL, OPT_SYS_OCAML_LIBC },
	{ "depexts", no_argument, NULL, OPT_DEPEXTS },
	{ "detect-sys-ocaml", no_argument, NULL, OPT_DETECT_SYS_OCAML },
	{ NULL, 0, NULL, 0 },
};

const char *const sys_ocaml_variables[4] = { "sys-ocaml-version", "sys-ocaml-arch", "sys-ocaml-cc", "sys-ocaml-libc" };

/* opam's names for machine architectures, from the kernel's. */
static const char *normalized_arch(const char *machine)
{
	static const struct {
		const char *kernel, *opam;
	} names[] = {
		{ "x86_64", "x86_64" }, { "amd64", "x86_64" },    { "i386", "x86_32" },   { "i486", "x86_32" },
		{ "i586", "x86_32" },   { "i686", "x86_32" },     { "aarch64", "arm64" }, { "arm64", "arm64" },
		{ "armv7l", "arm32" },  { "armv6l", "arm32" },    { "ppc64le", "ppc64" }, { "ppc64", "ppc64" },
		{ "s390x", "s390x" },   { "riscv64", "riscv64" },
	};

	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		if (strcmp(names[i].kernel, machine) == 0)
			return names[i].opam;
	return machine;
}

void options_default_environment(struct variables *globals, const char *ocaml_version)
{
	struct utsname u;

	variables_set_string(globals, "arch", uname(&u) == 0 ? normalized_arch(u.machine) : "x86_64");
	variables_set_string(globals, "os", "linux");
	variables_set_string(globals, "os-family", "debian");
	variables_set_string(globals, "os-distribution", "debian");
	variables_set_string(globals, "os-version", "13");
	variables_set_string(globals, "opam-version", "2.4.1");
	variables_set_bool(globals, "ocaml:native", true);
	variables_set_string(globals, "ocaml:version", ocaml_version);
	/* No system compiler: these read as empty strings, as in the reference solutions. */
	variables_set_string(globals, "sys-ocaml-version", "");
	variables_set_string(globals, "sys-ocaml-arch", "");
	variables_set_string(globals, "sys-ocaml-cc", "");
	variables_set_string(globals, "sys-ocaml-libc", "");
}

static _Noreturn void usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static _Noreturn void usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", program_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s\nTry 'obake --help' for more information.\n", usage);
	exit(2);
}

/* An archive mirror is a URL or an existing directory; anything else is a mistake worth saying now. */
static void check_archive_mirror(const char *usage, const char *value)
{
	struct stat st;

	if (strstr(value, "://"))
		return;
	if (!*value || stat(value, &st) != 0 || !S_ISDIR(st.st_mode))
		usage_error(usage, "invalid --archive-mirror '%s': expected a URL or an existing directory", value);
}

/* Parse a whole number between MIN and MAX for OPTION, or exit with a usage error. */
static unsigned long parse_count(const char *usage, const char *option, const char *text, unsigned long min,
				 unsigned long max)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(text, &end, 10);

	if (errno || end == text || *end || text[0] == '-' || n < min || n > max)
		usage_error(usage, "invalid %s value '%s': expected a whole number from %lu to %lu", option, text, min,
			    max);
	return n;
}

/* A size in bytes, with an optional K, M, G or T suffix (powers of 1024). */
static unsigned long long parse_size(const char *usage, const char *option, const char *text)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(text, &end, 10);
	unsigned shift = 0;

	switch (*end) {
	case 'K':
	case 'k':
		shift = 10;
		end++;
		break;
	case 'M':
	case 'm':
		shift = 20;
		end++;
		break;
	case 'G':
	case 'g':
		shift = 30;
		end++;
		break;
	case 'T':
	case 't':
		shift = 40;
		end++;
		break;
	}
	if (errno || end == text || *end || text[0] == '-' || n == 0 || n > (~0ULL >> shift))
		usage_error(usage, "invalid %s value '%s': expected a size such as 512M or 4G", option, text);
	return n << shift;
}

static bool is_accepted(const char *name, const char *const *accepted)
{
	static const char *const common[] = {
		"opam-repository",
		"jobs",
		"quiet",
		"verbose",
		"help",
		"ocaml",
		"os",
		"os-family",
		"os-distribution",
		"os-version",
		"arch",
		"opam-version",
		"var",
		"sys-ocaml-version",
		"sys-ocaml-arch",
		"sys-ocaml-cc",
		"sys-ocaml-libc",
	};

	for (size_t i = 0; i < ARRAY_LEN(common); i++)
		if (strcmp(common[i], name) == 0)
			return true;
	for (; accepted && *accepted; accepted++)
		if (strcmp(*accepted, name) == 0)
			return true;
	return false;
}

static void add_repository(struct options *opts, const char *path)
{
	opts->repositories = xreallocarray(opts->repositories, opts->repository_count + 1, sizeof(char *));
	opts->repositories[opts->repository_count++] = xstrdup(path);
}

/* OBAKE_OPAM_REPOSITORY holds comma-separated paths, used when no -r is given. */
static void repositories_from_environment(struct options *opts)
{
	const char *value = getenv("OBAKE_OPAM_REPOSITORY");

	if (!value || !*value)
		return;
	char *copy = xstrdup(value);
	for (char *save = NULL, *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save))
		if (*part)
			add_repository(opts, part);
	free(copy);
}

/* The environment settings given on the command line, applied after the defaults. */
struct override {
	const char *name;
	const char *value;
};

void options_parse(struct options *opts, int argc, char **argv, const char *const *accepted, const char *usage)
{
	struct override overrides[64];
	size_t override_count = 0;

	memset(opts, 0, sizeof(*opts));
	opts->ocaml_version = DEFAULT_OCAML_VERSION;
	opts->base_image = "debian:12";
	opts->opam_source = "distribution";
	opts->max_layers = 100;
	opts->max_file_size = 1UL << 20;
	opts->batch_size = 100;
	opts->runtime = "runc";
	opts->timeout_seconds = 3600;
	opts->memory_bytes = 8ULL << 30;

	optind = 1;
	opterr = 0;
	int c, index = -1;
	while ((c = getopt_long(argc, argv, ":r:j:o:qvh", long_options, &index)) != -1) {
		const char *long_name = index >= 0 ? long_options[index].name : c == 'o' ? "output" : NULL;
		if (long_name && !is_accepted(long_name, accepted))
			usage_error(usage, "option '--%s' does not apply to this command", long_name);
		/* `--ocaml --all` forgot the version: an option is no value, except for --var which has an '='. */
		if (optarg && optarg[0] == '-' && optarg[1] == '-' && c != OPT_VAR)
			usage_error(usage, "option '%s' needs a value, not the option '%s'", argv[optind - 2], optarg);
		index = -1;

		switch (c) {
		case 'r': add_repository(opts, optarg); break;
		case 'j': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 1024)
				usage_error(usage, "invalid -j value '%s': expected a number of jobs from 1 to 1024",
					    optarg);
			opts->jobs = (unsigned)n;
			break;
		}
		case 'q': opts->verbosity = -1; break;
		case 'v': opts->verbosity++; break;
		case 'h': printf("usage: %s\n", usage); exit(0);
		case OPT_OCAML:
			if (!version_is_valid(optarg))
				usage_error(usage, "invalid --ocaml version '%s'", optarg);
			opts->ocaml_version = optarg;
			break;
		case OPT_OS:
		case OPT_OS_FAMILY:
		case OPT_OS_DISTRIBUTION:
		case OPT_OS_VERSION:
		case OPT_SYS_OCAML_VERSION:
		case OPT_SYS_OCAML_ARCH:
		case OPT_SYS_OCAML_CC:
		case OPT_SYS_OCAML_LIBC:
		case OPT_ARCH:
		case OPT_OPAM_VERSION:
			/* The long option's name is the variable's name. */
			if (override_count == ARRAY_LEN(overrides))
				usage_error(usage, "too many environment settings at '%s'", optarg);
			overrides[override_count++] = (struct override){ long_name, optarg };
			break;
		case OPT_VAR: {
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg)
				usage_error(usage, "invalid --var '%s': expected NAME=VALUE", optarg);
			*eq = '\0';
			if (override_count == ARRAY_LEN(overrides))
				usage_error(usage, "too many environment settings at '%s'", optarg);
			overrides[override_count++] = (struct override){ optarg, eq + 1 };
			break;
		}
		case OPT_JSON: opts->json = true; break;
		case OPT_ALL_VERSIONS: opts->all_versions = true; break;
		case OPT_ALL: opts->all = true; break;
		case OPT_WITH_TEST: opts->with_test = true; break;
		case OPT_WITH_DOC: opts->with_doc = true; break;
		case OPT_DEPS: opts->write_deps = true; break;
		case OPT_LIST: opts->write_list = true; break;
		case OPT_DOT: opts->write_dot = true; break;
		case 'o': opts->output_dir = optarg; break;
		case OPT_BASE_IMAGE: opts->base_image = optarg; break;
		case OPT_OPAM_SOURCE:
			if (strcmp(optarg, "distribution") != 0 && strcmp(optarg, "release") != 0)
				usage_error(usage, "invalid --opam-source '%s': expected distribution or release",
					    optarg);
			opts->opam_source = optarg;
			break;
		case OPT_OPAM_URL: opts->opam_url = optarg; break;
		case OPT_MAX_LAYERS:
			opts->max_layers = (unsigned)parse_count(usage, "--max-layers", optarg, 10, 10000);
			break;
		case OPT_MAX_FILE_SIZE:
			opts->max_file_size = parse_count(usage, "--max-file-size", optarg, 4096, 1UL << 30);
			break;
		case OPT_BATCH_SIZE:
			opts->batch_size = (unsigned)parse_count(usage, "--batch-size", optarg, 1, 100000);
			break;
		case OPT_NO_GROUP: opts->no_group = true; break;
		case OPT_STORE: opts->store_dir = optarg; break;
		case OPT_TIMEOUT:
			opts->timeout_seconds = (unsigned)parse_count(usage, "--timeout", optarg, 1, 7 * 24 * 3600);
			break;
		case OPT_MEMORY:
			opts->memory_bytes = parse_size(usage, "--memory", optarg);
			/* runc refuses tiny limits, and no opam build fits in less. */
			if (opts->memory_bytes < (64ULL << 20))
				usage_error(usage, "invalid --memory '%s': at least 64M", optarg);
			break;
		case OPT_RUNTIME:
			if (strcmp(optarg, "runc") != 0 && strcmp(optarg, "crun") != 0)
				usage_error(usage, "invalid --runtime '%s': expected runc or crun", optarg);
			opts->runtime = optarg;
			break;
		case OPT_DRY_RUN: opts->dry_run = true; break;
		case OPT_RETRY_FAILED: opts->retry_failed = true; break;
		case OPT_DEPEXTS: opts->depexts = true; break;
		case OPT_DETECT_SYS_OCAML: opts->detect_sys_ocaml = true; break;
		case OPT_SUITE: opts->suite = optarg; break;
		case OPT_MIRROR: opts->mirror = optarg; break;
		case OPT_EXTRA_PACKAGES: opts->extra_packages = optarg; break;
		case OPT_BASE_TAR: opts->base_tar = optarg; break;
		case OPT_ARCHIVE_MIRROR:
			check_archive_mirror(usage, optarg);
			opts->archive_mirrors = xreallocarray(opts->archive_mirrors, opts->archive_mirror_count + 1,
							      sizeof(char *));
			opts->archive_mirrors[opts->archive_mirror_count++] = xstrdup(optarg);
			break;
		case OPT_OLDER_THAN:
			opts->older_than_days = (double)parse_count(usage, "--older-than", optarg, 1, 100000);
			break;
		case OPT_MAX_SIZE: opts->max_size = parse_size(usage, "--max-size", optarg); break;
		case ':': usage_error(usage, "option '%s' needs a value", argv[optind - 1]);
		default: usage_error(usage, "unknown option '%s'", argv[optind - 1]);
		}
	}

	if (opts->repository_count == 0)
		repositories_from_environment(opts);

	options_default_environment(&opts->globals, opts->ocaml_version);
	for (size_t i = 0; i < override_count; i++) {
		for (size_t v = 0; v < ARRAY_LEN(sys_ocaml_variables); v++)
			if (strcmp(overrides[i].name, sys_ocaml_variables[v]) == 0)
				opts->sys_ocaml_given |= 1u << v;
		/* `true` and `false` are booleans in filters, as opam reads them. */
		if (strcmp(overrides[i].value, "true") == 0 || strcmp(overrides[i].value, "false") == 0)
			variables_set_bool(&opts->globals, overrides[i].name, overrides[i].value[0] == 't');
		else
			variables_set_string(&opts->globals, overrides[i].name, overrides[i].value);
	}

	opts->args = argv + optind;
	opts->arg_count = argc - optind;
}

void options_release(struct options *opts)
{
	for (unsigned i = 0; i < opts->archive_mirror_count; i++)
		free(opts->archive_mirrors[i]);
	free(opts->archive_mirrors);
	for (unsigned i = 0; i < opts->repository_count; i++)
		free(opts->repositories[i]);
	free(opts->repositories);
	variables_release(&opts->globals);
}
