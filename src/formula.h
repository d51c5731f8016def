/*
 * Package formulas: `depends`, `depopts` and `conflicts` after their filters are evaluated, as
 * opam's OpamFilter.filter_formula reduces them. Each atom is a package name with an optional
 * version formula; dropped atoms vanish (in an OR the other side becomes mandatory).
 */
#ifndef OBAKE_FORMULA_H
#define OBAKE_FORMULA_H

#include <stdbool.h>

#include "arena.h"
#include "filter.h"
#include "opam_ast.h"
#include "util.h"

/* A version formula such as `>= "1.0" & < "2.0"`; VFORMULA_EMPTY is true (a dropped constraint). */
enum vformula_kind { VFORMULA_EMPTY, VFORMULA_ATOM, VFORMULA_AND, VFORMULA_OR };

struct vformula {
	enum vformula_kind kind;
	enum relop op;        /* ATOM */
	const char *version;  /* ATOM */
	struct vformula *lhs; /* AND, OR */
	struct vformula *rhs;
};

enum formula_kind { FORMULA_EMPTY, FORMULA_ATOM, FORMULA_AND, FORMULA_OR };

struct formula {
	enum formula_kind kind;
	const char *name;            /* ATOM: package name */
	struct vformula *constraint; /* ATOM: NULL when any version will do */
	struct formula *lhs;         /* AND, OR */
	struct formula *rhs;
};

/* How the items of a top-level list combine: `depends` is a conjunction, `conflicts` and `depopts` disjunctions. */
enum formula_join { FORMULA_CONJUNCTION, FORMULA_DISJUNCTION };

/*
 * Evaluate the filters of the filtered package formula V in ENV, with undefined conditions false.
 * Returns NULL for an empty formula. The result lives in ARENA.
 */
struct formula *formula_reduce(const struct value *v, enum formula_join join, const struct filter_env *env,
			       struct arena *arena);

/* True if VERSION satisfies F (NULL or empty: always). */
bool vformula_check(const struct vformula *f, const char *version);

/* Print F in opam syntax, as `>= 1.0 & < 2.0` (opam-0install's diagnostic style). */
void vformula_print(struct strbuf *out, const struct vformula *f);
void formula_print(struct strbuf *out, const struct formula *f);

/* Call FN with every package name written in the filtered formula V, whatever its filters say. */
void formula_each_name(const struct value *v, void (*fn)(const char *name, void *ctx), void *ctx);
/* Call FN with every package name of the reduced formula F. */
void formula_each_atom(const struct formula *f, void (*fn)(const char *name, void *ctx), void *ctx);

/* Shape checks used when loading a file: true if opam accepts V for such a field. */
bool formula_is_valid(const struct value *v);
bool constraint_is_valid(struct value *const *items, uint32_t count);

#endif
