/*
 * From a solution to a build plan, as day10 derives it: each package's dependencies in the
 * solution (post-only dependencies removed, depopts that are in the solution added), the packages
 * the targets reach, and an install order. Also writes the plan as JSON and Graphviz DOT.
 */
#ifndef OBAKE_PLAN_H
#define OBAKE_PLAN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "filter.h"
#include "repo.h"
#include "solver.h"

struct plan {
	const struct repo_index *repo;
	uint32_t *order; /* packages the targets reach, in install order (dependencies first) */
	uint32_t count;
	uint32_t *dep_start; /* dependencies of order[i]: deps[dep_start[i] .. dep_start[i + 1]) */
	uint32_t *deps;      /* package indices, in opam's package order */
	char *error;         /* why no order exists (a dependency cycle); NULL otherwise */
};

/*
 * Build the plan of RESULT for TARGETS. GLOBALS is the environment of the solve; WITH_TEST and
 * WITH_DOC apply to the targets as in the solve. Returns -1 with plan->error set when the
 * dependencies form a cycle.
 */
int plan_build(struct plan *plan, const struct repo_index *idx, const struct variables *globals,
	       const struct solve_result *result, const uint32_t *targets, uint32_t target_count, bool with_test,
	       bool with_doc);
void plan_release(struct plan *plan);

/* {"pkg.ver": ["dep.ver", ...], ...} for every package of the plan. */
void plan_write_deps_json(const struct plan *plan, FILE *out);
/* ["pkg.ver", ...] in install order. */
void plan_write_list_json(const struct plan *plan, FILE *out);
void plan_write_dot(const struct plan *plan, FILE *out);

/* opam's order of packages: names by first letter without case, then byte-wise; then versions. */
int package_compare(const struct package *a, const struct package *b);

#endif
