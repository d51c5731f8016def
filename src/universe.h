/*
 * The solver's model of a repository, built once per environment and shared by every solve:
 * roles (package names, and one virtual role per OR in a dependency formula), their candidates in
 * preference order, each candidate's requirements, and the clauses that encode them. This follows
 * opam-0install's model: a role's candidates are its available versions, newest first with
 * avoid-version ones last (none at all when every version is avoid-version); `depends` become
 * essential requirements and `conflicts`, negated, become restrictions.
 */
#ifndef OBAKE_UNIVERSE_H
#define OBAKE_UNIVERSE_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "filter.h"
#include "formula.h"
#include "repo.h"

#define NO_ID UINT32_MAX

enum importance { IMPORTANCE_ESSENTIAL, IMPORTANCE_RESTRICTS };

/* A dependency of a candidate on a role, with an optional version restriction. */
struct requirement {
	uint32_t role;
	uint8_t importance;                 /* enum importance */
	const struct vformula *restriction; /* NULL: any candidate passes */
	const struct formula *source;       /* the atom it came from, for messages; NULL for virtual roles */
};

/* A candidate: a package version, or one side of an OR (virtual). Its id is its SAT variable. */
struct impl {
	uint32_t role;
	uint32_t package;   /* index in repo_index.packages; NO_ID for a virtual candidate */
	uint32_t req_first; /* requirements[req_first .. req_first + req_count) */
	uint32_t req_count;
	uint32_t clause_first; /* clauses this candidate's requirements produced */
	uint32_t clause_end;
	uint32_t amo_first; /* at-most-one constraints its restrictions produced */
	uint32_t amo_end;
	bool dummy; /* the "no candidate" placeholder that diagnostics may select */
};

struct role {
	uint32_t name_id;    /* repository name id; NO_ID for a virtual role or an unknown name */
	const char *name;    /* package name, or NULL for a virtual role */
	uint32_t cand_first; /* candidates[cand_first .. cand_first + cand_count): impl ids, most preferred first */
	uint32_t cand_count;
};

/*
 * Constraints over impl variables. A clause is a disjunction of literals (2 * var + 1 for "not
 * var", 2 * var for "var"); an at-most-one allows at most one of its variables to be true.
 */
struct constraint_store {
	uint32_t *lits; /* clause literals, then at-most-one variables, packed */
	uint32_t lit_count, lit_capacity;
	uint32_t *clause_start; /* clause i is lits[clause_start[i] .. clause_start[i + 1]) */
	uint32_t clause_count, clause_capacity;
	uint32_t *amo_start; /* same for at-most-one constraints, indexes into amo_vars */
	uint32_t *amo_vars;
	uint32_t amo_count, amo_capacity;
	uint32_t amo_var_count, amo_var_capacity;
};

struct universe {
	const struct repo_index *repo;
	const struct variables *globals;
	struct arena arena; /* formulas and strings */

	struct role *roles;
	uint32_t role_count, role_capacity;
	uint32_t *candidates;
	uint32_t candidate_count, candidate_capacity;
	struct impl *impls;
	uint32_t impl_count, impl_capacity;
	struct requirement *requirements;
	uint32_t requirement_count, requirement_capacity;
	uint32_t *impl_of_package; /* package index -> impl id, or NO_ID when not a candidate */
	bool *available;           /* package index -> its `available:` filter holds */
	uint32_t *role_of_name;    /* name id -> role id */
	uint32_t *unknown_roles;   /* roles of names that are depended on but in no repository */
	uint32_t unknown_count, unknown_capacity;
	/*
	 * Every role ends with a dummy candidate, as in 0install's "closest match" mode: a normal solve
	 * forces all dummies false, and diagnostics let the solver pick one where nothing else fits.
	 */
	uint32_t *dummies;
	uint32_t dummy_count, dummy_capacity;

	struct constraint_store store;
	/* Conflict classes: the impls sharing each class, as at-most-one constraints in the store. */
	uint32_t amo_class_first, amo_class_end;
	const char **amo_class_name; /* amo id - amo_class_first -> class name */
};

/* Dependency variables used while reducing formulas: build and post true, the rest chosen per package. */
struct dependency_flags {
	bool with_test;
	bool with_doc;
};

/* Build the universe of IDX for the environment GLOBALS (which must outlive it). */
void universe_build(struct universe *u, const struct repo_index *idx, const struct variables *globals);
void universe_release(struct universe *u);

/*
 * A copy for one worker: solves append roles, candidates and constraints to it (a target's
 * with-test requirements, the root), then roll back with universe_reset. The copy shares SRC's
 * formulas, so SRC must outlive it; its own additions go to its own arena.
 */
void universe_clone(struct universe *dst, const struct universe *src);
void universe_release_clone(struct universe *u);

/* The sizes of every array, to roll a worker's copy back after a solve. */
struct universe_mark {
	uint32_t roles, candidates, impls, requirements, unknowns, dummies;
	uint32_t lits, clauses, amos, amo_vars;
};

void universe_mark(const struct universe *u, struct universe_mark *mark);
void universe_reset(struct universe *u, const struct universe_mark *mark);

/*
 * Append to U's arrays the requirements of package P reduced with FLAGS (`dev` is true for a
 * version "dev"), compiling ORs into new virtual roles. Used by universe_build and by solves that
 * need a target's with-test requirements. Returns the first requirement; *COUNT gets how many.
 */
uint32_t universe_compile_requirements(struct universe *u, const struct package *p, struct dependency_flags flags,
				       uint32_t *count);

/* Role id for a package name, creating one without candidates for a name no repository has. */
uint32_t universe_role_for_name(struct universe *u, const char *name);

/* Emit clauses and at-most-one constraints for IMPL's requirements [first, first + count). */
void universe_encode_requirements(struct universe *u, uint32_t impl, uint32_t first, uint32_t count);

/*
 * Add the virtual root of a solve: one role with one candidate that requires ROLES in order (as
 * opam-0install requires `[ocaml; targets...]`), and a clause that the root is selected.
 * Returns the root candidate.
 */
uint32_t universe_add_root(struct universe *u, const uint32_t *roles, uint32_t count);

/* Negate a version formula (AND and OR swap, comparisons invert) into ARENA. */
struct vformula *vformula_negate(struct arena *arena, const struct vformula *f);

/* True if candidate IMPL passes requirement R's restriction. */
bool universe_impl_meets(const struct universe *u, uint32_t impl, const struct requirement *r);

static inline const struct package *universe_impl_package(const struct universe *u, uint32_t impl)
{
	uint32_t p = u->impls[impl].package;
	return p == NO_ID ? NULL : &u->repo->packages[p];
}

#endif
