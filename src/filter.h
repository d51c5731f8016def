/*
 * Filters: opam's boolean and string expressions over variables (`os = "linux" & !with-test`),
 * with the three-valued logic of opam's OpamFilter (true, false, undefined) and `%{var}%` expansion.
 */
#ifndef OBAKE_FILTER_H
#define OBAKE_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "opam_ast.h"

enum fvalue_kind { FVALUE_UNDEFINED, FVALUE_BOOL, FVALUE_STRING };

/* The value of a filter or a variable. */
struct fvalue {
	enum fvalue_kind kind;
	bool boolean;
	const char *string;
};

/* A set of variables, such as the global environment (`os`, `arch`) or package variables (`ocaml:version`). */
struct variables {
	struct variable_entry *items;
	size_t count;
	size_t capacity;
};

void variables_set_string(struct variables *vars, const char *name, const char *value);
void variables_set_bool(struct variables *vars, const char *name, bool value);
/* Remove NAME so that it is undefined. */
void variables_unset(struct variables *vars, const char *name);
/* Look NAME up; returns false if it is not set. */
bool variables_get(const struct variables *vars, const char *name, struct fvalue *out);
void variables_release(struct variables *vars);

/*
 * What a filter sees: the global variables, the package being evaluated (for `name`, `version`,
 * `_:name` and `_:version`), and the dependency variables (`build`, `post`, `with-test`, ...).
 */
struct filter_env {
	const struct variables *globals;
	const char *self_name;          /* may be NULL */
	const char *self_version;       /* may be NULL */
	const struct variables *locals; /* checked before globals; may be NULL */
};

/* Evaluate filter V. Strings are expanded, with undefined variables expanded to "". */
struct fvalue filter_eval(const struct value *v, const struct filter_env *env, struct arena *scratch);
/* Evaluate V as a condition: undefined, and strings other than "true" and "false", give DEFAULT. */
bool filter_eval_bool(const struct value *v, const struct filter_env *env, struct arena *scratch, bool default_value);
/* Expand `%{var}%` and `%%` in S. Undefined variables expand to "". */
const char *filter_expand_string(const char *s, const struct filter_env *env, struct arena *scratch);
/* Resolve a variable written as in a filter or `%{...}%`: `var`, `pkg:var`, `a+b:var`, `pkg:var?yes:no`. */
struct fvalue filter_resolve_ident(const char *ident, const struct filter_env *env, struct arena *scratch);
/* True if V has a shape opam accepts as a filter (used by the field checks). */
bool filter_is_valid(const struct value *v);
/* Convert a value to a boolean as opam's value_bool does; returns false if it is not one. */
bool fvalue_to_bool(struct fvalue v, bool *out);

#endif
