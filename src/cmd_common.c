/*
 * Steps shared by the commands: the start and end of a command that solves targets, loading
 * repositories, reporting what the load found, fetching sources.
 */
#include "cmd_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "fetch.h"
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

/* Every source the solved targets' packages download, once each; only packages marked in NEEDED unless it is NULL. */
static struct fetch_item *collect_sources(const struct repo_index *idx, const struct outcome *outcomes, uint32_t count,
					  const uint8_t *needed, size_t *item_count, char ***names, uint32_t **packages)
{
	uint8_t *seen = xcalloc(idx->package_count + 1, 1);
	struct fetch_item *items = NULL;
	size_t n = 0;

	*names = NULL;
	*packages = NULL;
	for (uint32_t t = 0; t < count; t++) {
		for (uint32_t i = 0; outcomes[t].solved && i < outcomes[t].plan.count; i++) {
			uint32_t p = outcomes[t].plan.order[i];
			if (seen[p] || (needed && !needed[p]))
				continue;
			seen[p] = 1;
			const struct package *pkg = &idx->packages[p];
			uint32_t sources = (pkg->url ? 1 : 0) + pkg->extra_source_count;
			for (uint32_t s = 0; s < sources; s++) {
				items = xreallocarray(items, n + 1, sizeof(*items));
				*names = xreallocarray(*names, n + 1, sizeof(char *));
				*packages = xreallocarray(*packages, n + 1, sizeof(uint32_t));
				(*packages)[n] = p;
				(*names)[n] = xasprintf("%s.%s", pkg->name, pkg->version);
				items[n].package = (*names)[n];
				items[n].source = pkg->url && s == 0 ? pkg->url
								     : &pkg->extra_sources[s - (pkg->url ? 1 : 0)];
				n++;
			}
		}
	}
	free(seen);
	*item_count = n;
	return items;
}

unsigned fetch_sources(const struct options *opts, const struct repo_index *idx, const char *cache_dir,
		       const struct outcome *outcomes, uint32_t count, const uint8_t *needed, uint8_t *unavailable)
{
	char **names;
	uint32_t *packages;
	size_t n;
	struct fetch_item *items = collect_sources(idx, outcomes, count, needed, &n, &names, &packages);
	struct fetch_stats stats = { 0 };
	bool *item_failed = xcalloc(n + 1, sizeof(bool));
	unsigned failed = fetch_all_flags(cache_dir, items, n, opts->archive_mirrors, opts->archive_mirror_count,
					  opts->jobs ? opts->jobs : 4, &stats, item_failed);

	for (size_t i = 0; unavailable && i < n; i++)
		if (item_failed[i])
			unavailable[packages[i]] = 1;
	free(item_failed);
	free(packages);

	if (opts->verbosity >= 0 && n > 0)
		fprintf(stderr, "%s: sources: %u cached, %u downloaded, %u failed, %u without a checksum\n",
			program_name, stats.cached, stats.downloaded, stats.failed, stats.no_checksum);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(items);
	return failed;
}

int command_session_open(struct command_session *s, int argc, char **argv, const char *const *accepted,
			 const char *usage)
{
	memset(s, 0, sizeof(*s));
	options_parse(&s->opts, argc, argv, accepted, usage);

	if (s->opts.arg_count == 0 && !s->opts.all) {
		fprintf(stderr, "%s: %s needs a target, or --all\nusage: %s\n", program_name, argv[0], usage);
		options_release(&s->opts);
		return EXIT_USAGE;
	}
	const char *dir = s->opts.output_dir;
	if (dir && mkdir(dir, 0777) < 0 && errno != EEXIST) {
		fprintf(stderr, "%s: cannot create output folder %s: %s\n", program_name, dir, strerror(errno));
		options_release(&s->opts);
		return EXIT_USAGE;
	}

	if (load_repositories(&s->idx, &s->opts, &s->diags) < 0) {
		diag_list_release(&s->diags);
		options_release(&s->opts);
		return EXIT_USAGE;
	}
	report_load_problems(&s->diags, s->opts.verbosity);
	return EXIT_OK;
}

void command_session_close(struct command_session *s)
{
	target_list_release(&s->targets);
	repo_index_release(&s->idx);
	diag_list_release(&s->diags);
	options_release(&s->opts);
}
