/* Steps shared by the commands. */
#ifndef OBAKE_CMD_COMMON_H
#define OBAKE_CMD_COMMON_H

#include <stdint.h>

#include "batch.h"
#include "diag.h"
#include "options.h"
#include "repo.h"

/* The state a command that solves targets keeps from its start to its end. */
struct command_session {
	struct options opts;
	struct repo_index idx;
	struct diag_list diags;
	struct target_list targets; /* filled by the command, with targets_collect */
};

/*
 * Start solve, dockerfile, build or fetch. Parse ARGV (ARGV[0] is the command's name) with the
 * command's ACCEPTED options, require a target or --all, and create the -o folder when one is given.
 * Then load the repositories and report their problems. Returns EXIT_OK with S ready, or an exit
 * status with S already released.
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
 * Fetch every url and extra-source of the solved OUTCOMES' packages into CACHE_DIR. NEEDED, a flag
 * per package of IDX, limits that to the packages marked in it unless it is NULL. OPTS's archive
 * mirrors are looked up first (see fetch_all). A summary is printed unless -q or nothing was to
 * fetch. Sets
 * UNAVAILABLE[p] (unless it is NULL) for each package p with a source that could not be fetched.
 * Returns the number of sources that could not be fetched.
 */
unsigned fetch_sources(const struct options *opts, const struct repo_index *idx, const char *cache_dir,
		       const struct outcome *outcomes, uint32_t count, const uint8_t *needed, uint8_t *unavailable);

#endif
