/*
 * Solving with opam-0install's semantics: roles are fixed greedily in depth-first order from the
 * root, each to its most preferred candidate that still admits a full solution. A solver belongs
 * to one worker thread; several solvers can share one universe.
 */
#ifndef OBAKE_SOLVER_H
#define OBAKE_SOLVER_H

#include <stdbool.h>
#include <stdint.h>

#include "sat.h"
#include "universe.h"

struct solve_request {
	const char *ocaml_version; /* pins `ocaml` with `=`; NULL leaves it free */
	const uint32_t *targets;   /* package indices, each pinned to its exact version */
	uint32_t target_count;
	bool with_test; /* with-test for the targets only */
	bool with_doc;  /* with-doc for the targets only */
};

struct solve_result {
	bool solved;
	uint32_t *packages; /* selected package indices, sorted as name.version strings */
	uint32_t package_count;
	/*
	 * Direct dependencies of packages[i] in the solution: edges[edge_start[i] .. edge_start[i + 1])
	 * are package indices, following each selected candidate's essential requirements (an OR
	 * resolved to the side the solver chose), as day10 reads them from the solver's output.
	 */
	uint32_t *edge_start;
	uint32_t *edges;
	char *diagnostics; /* why there is no solution; NULL when solved */
	uint64_t decisions, conflicts;
};

struct solver {
	struct universe u; /* this worker's copy */
	struct universe_mark base;
	struct sat sat;
	uint32_t *role_stamp; /* decision walk: roles visited in the current walk */
	uint32_t role_stamp_capacity;
	uint32_t stamp;
	uint32_t root;         /* root candidate of the current solve */
	uint32_t ocaml_role;   /* the `ocaml` root of the current solve, or NO_ID */
	const char *ocaml_pin; /* the version `ocaml` is pinned to in it, or NULL */
	/* Candidates whose requirements this solve replaced (with-test targets), to restore afterwards. */
	struct impl *saved_impls;
	uint32_t *saved_ids;
	uint32_t saved_count;
	uint32_t *selected_by_name; /* name id -> selected package index, during result collection */
};

void solver_init(struct solver *s, const struct universe *shared);
void solver_release(struct solver *s);

/*
 * Solve REQ; fills OUT, whose arrays the caller frees with solve_result_release. Without a
 * solution, OUT->diagnostics explains why.
 */
void solver_solve(struct solver *s, const struct solve_request *req, struct solve_result *out);
void solve_result_release(struct solve_result *r);

#endif
