/* Steps shared by the commands. */
#ifndef OBAKE_CMD_COMMON_H
#define OBAKE_CMD_COMMON_H

#include "diag.h"
#include "options.h"
#include "repo.h"

/* Load the repositories named by OPTS; print fatal problems and return -1 if one cannot be read. */
int load_repositories(struct repo_index *idx, const struct options *opts, struct diag_list *diags);

/*
 * Outside `check`, print problems that change what is indexed (a file skipped, a duplicate
 * version) one per line, and only count warnings about single fields unless VERBOSITY asks for each.
 */
void report_load_problems(const struct diag_list *diags, int verbosity);

#endif
