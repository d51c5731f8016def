/*
 * A CDCL SAT engine over a universe's constraints, as 0install's solver uses one: unit propagation
 * over clauses (two watched literals) and at-most-one constraints, first-UIP learning, no restarts
 * and no activity heuristic. Every decision comes from the caller's decider, so the caller fixes
 * the search order; the engine only says what is forced and what fails.
 *
 * One engine belongs to one worker and one universe copy. Between solves it keeps its watch lists
 * for the universe's base constraints; constraints added for one solve are dropped by sat_reset.
 */
#ifndef OBAKE_SAT_H
#define OBAKE_SAT_H

#include <stdbool.h>
#include <stdint.h>

#include "universe.h"

enum sat_value { SAT_UNDEF = 0, SAT_TRUE = 1, SAT_FALSE = 2 };

struct sat_list {
	uint32_t *items;
	uint32_t count, capacity;
};

struct sat {
	struct universe *u; /* the worker's universe copy; learned clauses are appended to its store */
	uint32_t var_count; /* variables are impl ids */
	uint32_t var_capacity;
	uint8_t *value;       /* enum sat_value per variable */
	uint32_t *level;      /* decision level of each assigned variable */
	uint32_t *reason;     /* how it was assigned, see sat.c */
	uint32_t *reason_var; /* for an at-most-one reason, the true variable that forced it */
	uint8_t *seen;        /* scratch for conflict analysis */
	uint32_t *trail;      /* assigned literals in order */
	uint32_t trail_count;
	uint32_t *trail_limits; /* trail length at the start of each decision level */
	uint32_t level_count;   /* current decision level */
	uint32_t queue_head;    /* next trail entry to propagate */

	struct sat_list *watches;         /* per literal: clauses watching it */
	struct sat_list *amo_occurrences; /* per variable: at-most-one constraints holding it */
	uint32_t watched_clauses;         /* clauses [0, watched_clauses) have watches */
	uint32_t indexed_amos;            /* at-most-ones [0, indexed_amos) are in amo_occurrences */
	uint32_t base_clauses;            /* the universe's own constraints, kept across solves */
	uint32_t base_amos;
	struct sat_list units; /* one-literal clauses, asserted at level 0 of each solve */
	uint32_t base_units;
	struct sat_list dirty_lits; /* literals whose watch lists got per-solve clauses */
	struct sat_list dirty_vars; /* variables whose occurrence lists got per-solve at-most-ones */
	uint8_t *clause_disabled;   /* per clause: ignored in this solve */
	uint32_t clause_disabled_capacity;
	uint8_t *amo_disabled;
	uint32_t amo_disabled_capacity;

	struct sat_list learned_scratch;
	struct sat_list assumptions;      /* variables forced false at level 0 of this solve */
	struct sat_list disabled_clauses; /* marks to clear at reset */
	struct sat_list disabled_amos;
	uint64_t conflicts; /* statistics of the last solve */
	uint64_t decisions;
	uint64_t propagations;
};

/* Picks the next decision: a variable to set true, or UINT32_MAX when the assignment is complete. */
typedef uint32_t (*sat_decider)(void *ctx, const struct sat *s);

/* Attach an engine to U, indexing U's current constraints as the base kept across solves. */
void sat_init(struct sat *s, struct universe *u);
void sat_release(struct sat *s);

/* Index constraints the universe gained since the last call (a solve's root and extra requirements). */
void sat_sync(struct sat *s);
/* Ignore clause or at-most-one ID for the current solve. */
void sat_disable_clause(struct sat *s, uint32_t id);
void sat_disable_amo(struct sat *s, uint32_t id);
/* Force VAR false for the current solve (a candidate rejected by a user constraint). */
void sat_assume_false(struct sat *s, uint32_t var);

/* Search; returns true when satisfiable, with the assignment left in s->value. */
bool sat_solve(struct sat *s, sat_decider decide, void *ctx);

/* Undo the last solve: assignments, learned and per-solve constraints, disabled marks. */
void sat_reset(struct sat *s);

static inline enum sat_value sat_var_value(const struct sat *s, uint32_t var)
{
	return var < s->var_count ? (enum sat_value)s->value[var] : SAT_UNDEF;
}

#endif
