/*
 * Solving many targets: turning command-line targets into package versions, and solving each one
 * alone on parallel worker threads that share one universe. Used by `solve` and `dockerfile`.
 */
#ifndef OBAKE_BATCH_H
#define OBAKE_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "options.h"
#include "plan.h"
#include "repo.h"
#include "solver.h"

struct target_list {
	uint32_t *items; /* package indices */
	uint32_t count, capacity;
};

/*
 * Collect OPTS's targets: its operands (NAME, NAME.VERSION, NAME>=VERSION, ...), or every
 * package with --all. Prints an error for each operand that names nothing and returns false then.
 */
bool targets_collect(const struct repo_index *idx, const struct options *opts, struct target_list *out);
void target_list_release(struct target_list *l);

/* What solving one target produced. */
struct outcome {
	uint32_t target; /* package index */
	bool solved;     /* a solution with an install order exists */
	struct solve_result result;
	struct plan plan;        /* valid when solved */
	const char *diagnostics; /* why not solved: the solver's explanation or the plan's cycle */
	double milliseconds;     /* time spent on this target, in its worker */
};

struct batch_report {
	unsigned workers;
	double wall_milliseconds;
};

/*
 * Called with each outcome in target order, as soon as it and all before it are done; the batch
 * frees the outcome's solution and plan right after. Calls never overlap.
 */
typedef void (*outcome_consumer)(void *ctx, const struct outcome *o);

/*
 * Solve each target alone; returns one outcome per target, in order. With CONSUMER, outcomes are
 * handed over as they complete and freed, which keeps memory flat and output streaming; the
 * returned array then keeps only each outcome's status and time.
 */
struct outcome *batch_solve(const struct options *opts, const struct repo_index *idx, const struct target_list *targets,
			    outcome_consumer consumer, void *ctx, struct batch_report *report);
void batch_release(struct outcome *outcomes, uint32_t count);
/* One line on standard error: counts, wall time, per-solve median and maximum. */
void batch_print_summary(const struct outcome *outcomes, uint32_t count, const struct batch_report *report);

#endif
