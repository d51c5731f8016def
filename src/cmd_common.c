/* Steps shared by the commands: loading repositories and reporting what the load found. */
#include "cmd_common.h"

#include <stdio.h>

#include "util.h"

/* Load the repositories named by OPTS; print fatal problems and return -1 if one cannot be read. */
int load_repositories(struct repo_index *idx, const struct options *opts, struct diag_list *diags)
{
	if (opts->repository_count == 0) {
		fprintf(stderr, "%s: no opam repository given: pass -r DIR (repeatable) or set OBAKE_OPAM_REPOSITORY\n",
			program_name);
		return -1;
	}
	if (repo_index_load(idx, opts->repositories, opts->repository_count, opts->jobs, diags) < 0) {
		for (size_t i = 0; i < diags->count; i++)
			if (diags->items[i].severity == SEVERITY_ERROR && diags->items[i].line == 0)
				fprintf(stderr, "%s: %s: %s\n", program_name, diags->items[i].path,
					diags->items[i].message);
		repo_index_release(idx);
		return -1;
	}
	return 0;
}

/*
 * Outside `check`, problems that change what is indexed (a file skipped, a duplicate version) are
 * printed one per line; warnings about single fields are only counted unless -v asks for each.
 */
void report_load_problems(const struct diag_list *diags, int verbosity)
{
	size_t field_warnings = 0;

	if (verbosity < 0)
		return;
	for (size_t i = 0; i < diags->count; i++) {
		const struct diag *d = &diags->items[i];
		if (verbosity > 0 || d->severity == SEVERITY_ERROR || d->line == 0)
			diag_print(stderr, d);
		else
			field_warnings++;
	}
	if (field_warnings > 0)
		fprintf(stderr, "%s: %zu %s about fields that were ignored; run 'obake check' or add -v to see them\n",
			program_name, field_warnings, field_warnings == 1 ? "warning" : "warnings");
}
