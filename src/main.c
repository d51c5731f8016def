/* obake: build every package of an opam repository and report which ones build. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "util.h"

#define OBAKE_VERSION "0.1.0"

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "check", command_check, "parse every opam file of the repositories and report each problem" },
	{ "list", command_list, "print the latest available version of every package" },
	{ "solve", command_solve, "select the packages opam-0install would install for each target" },
	{ "dockerfile", command_dockerfile, "write Dockerfiles, bake files and a driver script for BuildKit" },
	{ "base", command_base, "create the base root file system builds start from" },
	{ "fetch", command_fetch, "download the targets' sources into the store's checksum-addressed cache" },
	{ "build", command_build, "build the targets natively, one cached layer per package and closure" },
	{ "prune", command_prune, "remove layers from the store by age or to fit a size" },
};

static void print_help(void)
{
	printf("usage: obake COMMAND [OPTIONS] [ARGS]\n\n"
	       "Commands:\n");
	for (size_t i = 0; i < ARRAY_LEN(commands); i++)
		printf("  %-10s %s\n", commands[i].name, commands[i].summary);
	printf("\nOptions common to every command:\n"
	       "  -r, --opam-repository DIR  opam repository to read (repeatable; the first one holding a\n"
	       "                             package version wins); default: $OBAKE_OPAM_REPOSITORY,\n"
	       "                             comma-separated\n"
	       "  -j, --jobs N               parallel workers (default: one per core)\n"
	       "  --ocaml VERSION            OCaml version that fixes ocaml:version (default 5.3.0)\n"
	       "  --os, --os-family, --os-distribution, --os-version, --arch, --opam-version VALUE\n"
	       "                             filter environment (default linux, debian, debian, 13,\n"
	       "                             the host's architecture, 2.4.1)\n"
	       "  --sys-ocaml-version, --sys-ocaml-arch, --sys-ocaml-cc, --sys-ocaml-libc VALUE\n"
	       "                             the system compiler's settings (default: empty, none)\n"
	       "  --var NAME=VALUE           set any other filter variable\n"
	       "  -q, --quiet                print only results\n"
	       "  -v, --verbose              print every warning\n"
	       "  -h, --help                 print the command's usage\n"
	       "\nlist options:\n"
	       "  --all-versions             print every version, available or not\n"
	       "  --json                     print a JSON array of {name, version, available, repository}\n"
	       "\nsolve options (targets: NAME, NAME.VERSION, NAME>=VERSION, ...):\n"
	       "  --all                      every package's latest available version\n"
	       "  --all-versions             every available version of the targets (or of all, with --all)\n"
	       "  --with-test, --with-doc    include the targets' test or documentation dependencies\n"
	       "  --deps, --list, --dot      write <target>-deps.json, <target>-list.json, <target>.dot\n"
	       "  -o, --output DIR           folder for those files (default .)\n"
	       "\ndockerfile options:\n"
	       "  --archive-mirror DIR|URL   build offline: write OUT/context holding the repository and\n"
	       "                             the sources the solutions need, looked up by checksum here\n"
	       "                             first (repeatable), and build from that context\n"
	       "\nbuild, base, fetch and prune options:\n"
	       "  --store DIR                layers, sources and bases (default: $OBAKE_STORE or ~/.cache/obake)\n"
	       "  --suite, --mirror, --extra-packages A,B, --base-tar FILE   how the base is made\n"
	       "  --archive-mirror DIR|URL   look sources up by checksum here first (repeatable)\n"
	       "  --timeout SECONDS, --memory SIZE   limits per build (default 3600 s, 8G)\n"
	       "  --runtime runc|crun        OCI runtime (default runc)\n"
	       "  --dry-run                  report which layers the store has, build nothing\n"
	       "  --retry-failed             rebuild layers recorded as failed\n"
	       "  --depexts                  the base also holds the system packages the solutions name\n"
	       "                             (those missing from its Debian release are left out)\n"
	       "  --detect-sys-ocaml         set the sys-ocaml-* variables not given from the base's\n"
	       "                             ocamlc, as opam does\n"
	       "  --older-than DAYS, --max-size SIZE   what prune removes\n"
	       "\nExit status: 0 on success, 1 when check finds a file that does not parse, a\n"
	       "target has no solution or a target does not build, 2 on a usage error, an unknown\n"
	       "target, a repository that cannot be read or a file that cannot be written, 130 when\n"
	       "a build is interrupted.\n");
}

/* Output that could not be written (a full disk, a closed pipe) must not pass for success. */
static int finish_output(int status)
{
	errno = 0;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: cannot write standard output: %s\n", program_name,
			errno ? strerror(errno) : "write error");
		return EXIT_USAGE;
	}
	return status;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_help();
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		print_help();
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("obake %s\n", OBAKE_VERSION);
		return EXIT_OK;
	}

	for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		int status = commands[i].run(argc - 1, argv + 1);
		return finish_output(status);
	}

	fprintf(stderr, "%s: unknown command '%s'; run 'obake --help' for the list of commands\n", program_name,
		argv[1]);
	return EXIT_USAGE;
}
