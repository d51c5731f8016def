/* Commands that read repositories without solving: `check` and `list`. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_common.h"
#include "commands.h"
#include "options.h"
#include "repo.h"
#include "util.h"

static const char check_usage[] = "obake check [-r DIR]... [-j N] [-q]";

int command_check(int argc, char **argv)
{
	struct options opts;
	struct repo_index idx;
	struct diag_list diags = { 0 };

	options_parse(&opts, argc, argv, NULL, check_usage);
	if (opts.arg_count > 0) {
		fprintf(stderr, "%s: check takes no operands: '%s'\nusage: %s\n", program_name, opts.args[0],
			check_usage);
		options_release(&opts);
		return EXIT_USAGE;
	}
	if (load_repositories(&idx, &opts, &diags) < 0) {
		diag_list_release(&diags);
		options_release(&opts);
		return EXIT_USAGE;
	}

	if (opts.verbosity >= 0)
		diag_print_all(stdout, &diags);
	size_t files_with_errors = idx.files_failed;
	printf("checked %zu opam files in %u %s: %zu %s failed, %zu %s, %u package versions indexed\n", idx.files_read,
	       idx.repository_count, idx.repository_count == 1 ? "repository" : "repositories", files_with_errors,
	       files_with_errors == 1 ? "file" : "files", diags.warnings, diags.warnings == 1 ? "warning" : "warnings",
	       idx.package_count);

	int status = diags.errors > 0 ? EXIT_FINDINGS : EXIT_OK;
	repo_index_release(&idx);
	diag_list_release(&diags);
	options_release(&opts);
	return status;
}

static const char list_usage[] = "obake list [-r DIR]... [--all-versions] [--json] [--ocaml VERSION] [--os ...]";

/* A JSON string for S; bytes that are not valid UTF-8 (in a path, say) become '?' rather than losing the entry. */
static json_t *json_text(const char *s)
{
	json_t *j = json_string(s);

	if (j)
		return j;
	char *copy = xstrdup(s);
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

/* One line or JSON object per package version. */
static void emit_package(json_t *array, const struct package *p, bool available, const struct repo_index *idx)
{
	if (!array) {
		printf("%s.%s\n", p->name, p->version);
		return;
	}
	json_t *o = json_pack("{s:s, s:s, s:b, s:o}", "name", p->name, "version", p->version, "available", available,
			      "repository", json_text(idx->repositories[p->repository]));
	json_array_append_new(array, o);
}

int command_list(int argc, char **argv)
{
	static const char *const accepted[] = { "json", "all-versions", NULL };
	struct options opts;
	struct repo_index idx;
	struct diag_list diags = { 0 };

	options_parse(&opts, argc, argv, accepted, list_usage);
	if (load_repositories(&idx, &opts, &diags) < 0) {
		diag_list_release(&diags);
		options_release(&opts);
		return EXIT_USAGE;
	}
	report_load_problems(&diags, opts.verbosity);

	struct arena scratch = { 0 };
	json_t *array = opts.json ? json_array() : NULL;
	for (uint32_t n = 0; n < idx.name_count; n++) {
		const struct package_name *name = &idx.names[n];
		if (!opts.all_versions) {
			const struct package *p = repo_latest_available(&idx, name, &opts.globals, &scratch);
			if (p)
				emit_package(array, p, true, &idx);
			continue;
		}
		for (uint32_t i = 0; i < name->count; i++) {
			const struct package *p = &idx.packages[name->first + i];
			emit_package(array, p, package_is_available(p, &opts.globals, &scratch), &idx);
		}
	}
	if (array) {
		json_dumpf(array, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(array);
	}

	arena_release(&scratch);
	repo_index_release(&idx);
	diag_list_release(&diags);
	options_release(&opts);
	return EXIT_OK;
}
