/* Steps shared by the commands. */
#ifndef OBAKE_CMD_COMMON_H
#define OBAKE_CMD_COMMON_H

#include <stdint.h>

#include "batch.h"
#include "diag.h"
#include "options.h"
#include "repo.h"

/* What a command that solves targets holds from its start to its end. */
struct command_session {
	struct options opts;
	struct repo_index idx;
	struct diag_list diags;
	struct target_list targets; /* filled by the command, with targets_collect */
};

/*
 * The start of solve, dockerfile, build and fetch: parse ARGV (ARGV[0] is the command's name) with
 * the command's ACCEPTED options, require a target or --all, create the -o folder when one is
 * given, then load the repositories and report their problems. Returns EXIT_OK with S ready, or an
 * exit status with S already released.
 */
int command_session_open(struct command_session *s, int argc, char **argv, const char *const *accepted,
			 const char *usage);
void command_session_close(struct command_session *s);

/* Load the repositories named by OPTS; print fatal problems and return -1 if one cannot be read. */
int load_repositories(struct repo_index *idx, const struct options *opts, struct diag_list *diags);

/*
 * Outside `check`, print problems that change what is indexed (a file skipped, a duplicate
 * version) one per line, and only count warnings about single fields unless VERBOSITY asks for each.
 */
void report_load_problems(const struct diag_list *diags, int verbosity);

/*
 * Fetch every url and extra-source of the solved OUTCOMES' packages (only of those marked in
 * NEEDED, a flag per package of IDX, unless it is NULL) into CACHE_DIR, looking in OPTS's archive
 * mirrors first (see fetch_all), and print a summary unless -q or nothing was to fetch. Sets
 * UNAVAILABLE[p] (unless it is NULL) for each package p with a source that could not be fetched.
 * Returns the number of sources that could not be fetched.
 */
unsigned fetch_sources(const struct options *opts, const struct repo_index *idx, const char *cache_dir,
		       const struct outcome *outcomes, uint32_t count, const uint8_t *needed, uint8_t *unavailable);

#endif
