#include "formula.h"

#include <string.h>

#include "printer.h"
#include "util.h"
#include "version.h"

/* The result of evaluating a constraint: opam's partial evaluation to `True, `False or a formula. */
enum outcome { OUTCOME_TRUE, OUTCOME_FALSE, OUTCOME_FORMULA };

struct reduced {
	enum outcome outcome;
	struct vformula *formula;
};

static struct reduced outcome(enum outcome o)
{
	struct reduced r = { o, NULL };
	return r;
}

static struct reduced with_formula(struct vformula *f)
{
	struct reduced r = { OUTCOME_FORMULA, f };
	return r;
}

static struct vformula *new_vformula(struct arena *arena, enum vformula_kind kind)
{
	struct vformula *f = arena_calloc(arena, 1, sizeof(*f));

	f->kind = kind;
	return f;
}

static enum relop negate_relop(enum relop op)
{
	switch (op) {
	case RELOP_EQ: return RELOP_NEQ;
	case RELOP_NEQ: return RELOP_EQ;
	case RELOP_GEQ: return RELOP_LT;
	case RELOP_LT: return RELOP_GEQ;
	case RELOP_GT: return RELOP_LEQ;
	case RELOP_LEQ: return RELOP_GT;
	}
	return op;
}

/* Combine two outcomes: `False absorbs an AND and `True absorbs an OR; the neutral side disappears. */
static struct reduced combine(struct reduced a, struct reduced b, bool is_and, struct arena *arena)
{
	enum outcome absorbing = is_and ? OUTCOME_FALSE : OUTCOME_TRUE;
	enum outcome neutral = is_and ? OUTCOME_TRUE : OUTCOME_FALSE;

	if (a.outcome == absorbing || b.outcome == absorbing)
		return outcome(absorbing);
	if (a.outcome == neutral)
		return b;
	if (b.outcome == neutral)
		return a;

	/* A dropped constraint (EMPTY) is true: neutral in an AND, absorbing in an OR. */
	bool a_empty = a.formula->kind == VFORMULA_EMPTY, b_empty = b.formula->kind == VFORMULA_EMPTY;
	if (a_empty || b_empty) {
		if (!is_and)
			return a_empty ? a : b;
		return a_empty ? b : a;
	}

	struct vformula *f = new_vformula(arena, is_and ? VFORMULA_AND : VFORMULA_OR);
	f->lhs = a.formula;
	f->rhs = b.formula;
	return with_formula(f);
}

struct constraint_ctx {
	const struct filter_env *env;
	struct arena *arena;
};

static struct reduced reduce_constraints(struct constraint_ctx *ctx, struct value *const *items, uint32_t count,
					 bool negated);

/* A bare filter inside a constraint, such as `with-test` or `os = "linux"`; undefined counts as false. */
static struct reduced reduce_filter_atom(struct constraint_ctx *ctx, const struct value *v, bool negated)
{
	struct fvalue fv = filter_eval(v, ctx->env, ctx->arena);
	bool b;

	if (!fvalue_to_bool(fv, &b))
		return outcome(OUTCOME_FALSE);
	if (negated)
		b = !b;
	return outcome(b ? OUTCOME_TRUE : OUTCOME_FALSE);
}

/* `>= "1.0"`: a version that fails to expand to a valid version drops the constraint, not the dependency. */
static struct reduced reduce_version_atom(struct constraint_ctx *ctx, const struct value *v, bool negated)
{
	struct fvalue fv = filter_eval(v->u.arg, ctx->env, ctx->arena);
	const char *version = NULL;

	if (fv.kind == FVALUE_STRING)
		version = fv.string;
	else if (fv.kind == FVALUE_BOOL)
		version = fv.boolean ? "true" : "false";
	if (!version || !version_is_valid(version))
		return with_formula(new_vformula(ctx->arena, VFORMULA_EMPTY));

	struct vformula *f = new_vformula(ctx->arena, VFORMULA_ATOM);
	f->op = negated ? negate_relop(v->op) : (enum relop)v->op;
	f->version = version;
	return with_formula(f);
}

static struct reduced reduce_constraint(struct constraint_ctx *ctx, const struct value *v, bool negated)
{
	switch (v->kind) {
	case VALUE_PREFIX_RELOP: return reduce_version_atom(ctx, v, negated);
	case VALUE_LOGOP: {
		/* Negation swaps AND and OR (De Morgan). */
		bool is_and = (v->op == LOGOP_AND) != negated;
		struct reduced a = reduce_constraint(ctx, v->u.pair.lhs, negated);
		struct reduced b = reduce_constraint(ctx, v->u.pair.rhs, negated);
		return combine(a, b, is_and, ctx->arena);
	}
	case VALUE_GROUP: return reduce_constraints(ctx, v->u.items, v->len, negated);
	case VALUE_PFXOP:
		if (v->op == PFXOP_NOT)
			return reduce_constraint(ctx, v->u.arg, !negated);
		return reduce_filter_atom(ctx, v, negated);
	default: return reduce_filter_atom(ctx, v, negated);
	}
}

/* The values inside `{...}` are joined by AND (by OR under a negation). */
static struct reduced reduce_constraints(struct constraint_ctx *ctx, struct value *const *items, uint32_t count,
					 bool negated)
{
	if (count == 0)
		return outcome(OUTCOME_TRUE);

	struct reduced r = reduce_constraint(ctx, items[0], negated);
	for (uint32_t i = 1; i < count; i++)
		r = combine(r, reduce_constraint(ctx, items[i], negated), !negated, ctx->arena);
	return r;
}

static struct formula *new_formula(struct arena *arena, enum formula_kind kind)
{
	struct formula *f = arena_calloc(arena, 1, sizeof(*f));

	f->kind = kind;
	return f;
}

/* Join two reduced formulas; an empty side disappears, as in OpamFormula's make_and and make_or. */
static struct formula *join_formulas(struct formula *a, struct formula *b, bool is_and, struct arena *arena)
{
	if (!a)
		return b;
	if (!b)
		return a;

	struct formula *f = new_formula(arena, is_and ? FORMULA_AND : FORMULA_OR);
	f->lhs = a;
	f->rhs = b;
	return f;
}

static struct formula *reduce_items(struct constraint_ctx *ctx, struct value *const *items, uint32_t count,
				    enum formula_join join);

static struct formula *reduce_atom(struct constraint_ctx *ctx, const struct value *v)
{
	const struct value *name = v;
	struct reduced r = outcome(OUTCOME_TRUE);

	if (v->kind == VALUE_OPTION) {
		name = v->u.option.subject;
		r = reduce_constraints(ctx, v->u.option.items, v->len, false);
	}
	if (name->kind != VALUE_STRING || r.outcome == OUTCOME_FALSE)
		return NULL;

	struct formula *f = new_formula(ctx->arena, FORMULA_ATOM);
	f->name = name->u.str;
	f->constraint = r.outcome == OUTCOME_FORMULA ? r.formula : NULL;
	return f;
}

static struct formula *reduce_item(struct constraint_ctx *ctx, const struct value *v, enum formula_join join)
{
	switch (v->kind) {
	case VALUE_STRING:
	case VALUE_OPTION: return reduce_atom(ctx, v);
	case VALUE_GROUP: return reduce_items(ctx, v->u.items, v->len, join);
	case VALUE_LOGOP: {
		struct formula *a = reduce_item(ctx, v->u.pair.lhs, join);
		struct formula *b = reduce_item(ctx, v->u.pair.rhs, join);
		return join_formulas(a, b, v->op == LOGOP_AND, ctx->arena);
	}
	default: return NULL;
	}
}

static struct formula *reduce_items(struct constraint_ctx *ctx, struct value *const *items, uint32_t count,
				    enum formula_join join)
{
	struct formula *result = NULL;

	for (uint32_t i = 0; i < count; i++)
		result = join_formulas(result, reduce_item(ctx, items[i], join), join == FORMULA_CONJUNCTION,
				       ctx->arena);
	return result;
}

struct formula *formula_reduce(const struct value *v, enum formula_join join, const struct filter_env *env,
			       struct arena *arena)
{
	struct constraint_ctx ctx = { env, arena };

	if (!v)
		return NULL;
	if (v->kind == VALUE_LIST)
		return reduce_items(&ctx, v->u.items, v->len, join);
	return reduce_item(&ctx, v, join);
}

static bool relop_holds(enum relop op, int c)
{
	switch (op) {
	case RELOP_EQ: return c == 0;
	case RELOP_NEQ: return c != 0;
	case RELOP_GEQ: return c >= 0;
	case RELOP_GT: return c > 0;
	case RELOP_LEQ: return c <= 0;
	case RELOP_LT: return c < 0;
	}
	return false;
}

bool vformula_check(const struct vformula *f, const char *version)
{
	if (!f)
		return true;

	switch (f->kind) {
	case VFORMULA_EMPTY: return true;
	case VFORMULA_ATOM: return relop_holds(f->op, version_compare(version, f->version));
	case VFORMULA_AND: return vformula_check(f->lhs, version) && vformula_check(f->rhs, version);
	case VFORMULA_OR: return vformula_check(f->lhs, version) || vformula_check(f->rhs, version);
	}
	return false;
}

static void print_vformula(struct strbuf *out, const struct vformula *f, bool in_and)
{
	switch (f->kind) {
	case VFORMULA_EMPTY: break;
	case VFORMULA_ATOM: strbuf_addf(out, "%s %s", relop_symbol(f->op), f->version); break;
	case VFORMULA_AND:
		print_vformula(out, f->lhs, true);
		strbuf_adds(out, " & ");
		print_vformula(out, f->rhs, true);
		break;
	case VFORMULA_OR:
		if (in_and)
			strbuf_addc(out, '(');
		print_vformula(out, f->lhs, false);
		strbuf_adds(out, " | ");
		print_vformula(out, f->rhs, false);
		if (in_and)
			strbuf_addc(out, ')');
		break;
	}
}

void vformula_print(struct strbuf *out, const struct vformula *f)
{
	if (f)
		print_vformula(out, f, false);
}

static void print_formula(struct strbuf *out, const struct formula *f, bool in_and)
{
	switch (f->kind) {
	case FORMULA_EMPTY: break;
	case FORMULA_ATOM:
		strbuf_adds(out, f->name);
		if (f->constraint && f->constraint->kind != VFORMULA_EMPTY) {
			strbuf_adds(out, " {");
			vformula_print(out, f->constraint);
			strbuf_addc(out, '}');
		}
		break;
	case FORMULA_AND:
		print_formula(out, f->lhs, true);
		strbuf_adds(out, " & ");
		print_formula(out, f->rhs, true);
		break;
	case FORMULA_OR:
		if (in_and)
			strbuf_addc(out, '(');
		print_formula(out, f->lhs, false);
		strbuf_adds(out, " | ");
		print_formula(out, f->rhs, false);
		if (in_and)
			strbuf_addc(out, ')');
		break;
	}
}

void formula_print(struct strbuf *out, const struct formula *f)
{
	if (f)
		print_formula(out, f, false);
}

/* A version inside a constraint: a string that is a valid version once every `%{var}%` reads "-", or an identifier. */
static bool version_value_is_valid(const struct value *v)
{
	if (v->kind == VALUE_IDENT)
		return true;
	if (v->kind != VALUE_STRING)
		return false;

	struct strbuf sb = { 0 };
	const char *s = v->u.str;
	while (*s) {
		if (s[0] == '%' && s[1] == '%') {
			strbuf_addc(&sb, '%');
			s += 2;
		} else if (s[0] == '%' && s[1] == '{' && strstr(s, "}%")) {
			strbuf_addc(&sb, '-');
			s = strstr(s, "}%") + 2;
		} else {
			strbuf_addc(&sb, *s++);
		}
	}
	bool valid = version_is_valid(strbuf_str(&sb));
	strbuf_release(&sb);
	return valid;
}

static bool constraint_value_is_valid(const struct value *v)
{
	switch (v->kind) {
	case VALUE_PREFIX_RELOP: return version_value_is_valid(v->u.arg);
	case VALUE_LOGOP: return constraint_value_is_valid(v->u.pair.lhs) && constraint_value_is_valid(v->u.pair.rhs);
	case VALUE_GROUP: return constraint_is_valid(v->u.items, v->len);
	case VALUE_PFXOP:
		if (v->op == PFXOP_NOT)
			return constraint_value_is_valid(v->u.arg);
		return filter_is_valid(v);
	default: return filter_is_valid(v);
	}
}

bool constraint_is_valid(struct value *const *items, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++)
		if (!constraint_value_is_valid(items[i]))
			return false;
	return true;
}

static bool formula_item_is_valid(const struct value *v)
{
	switch (v->kind) {
	case VALUE_STRING: return package_name_is_valid(v->u.str);
	case VALUE_OPTION:
		return v->u.option.subject->kind == VALUE_STRING && package_name_is_valid(v->u.option.subject->u.str) &&
		       constraint_is_valid(v->u.option.items, v->len);
	case VALUE_GROUP:
		for (uint32_t i = 0; i < v->len; i++)
			if (!formula_item_is_valid(v->u.items[i]))
				return false;
		return true;
	case VALUE_LOGOP: return formula_item_is_valid(v->u.pair.lhs) && formula_item_is_valid(v->u.pair.rhs);
	default: return false;
	}
}

bool formula_is_valid(const struct value *v)
{
	if (v->kind != VALUE_LIST)
		return formula_item_is_valid(v);
	for (uint32_t i = 0; i < v->len; i++)
		if (!formula_item_is_valid(v->u.items[i]))
			return false;
	return true;
}

void formula_each_name(const struct value *v, void (*fn)(const char *name, void *ctx), void *ctx)
{
	if (!v)
		return;

	switch (v->kind) {
	case VALUE_STRING: fn(v->u.str, ctx); return;
	case VALUE_OPTION: formula_each_name(v->u.option.subject, fn, ctx); return;
	case VALUE_LIST:
	case VALUE_GROUP:
		for (uint32_t i = 0; i < v->len; i++)
			formula_each_name(v->u.items[i], fn, ctx);
		return;
	case VALUE_LOGOP:
		formula_each_name(v->u.pair.lhs, fn, ctx);
		formula_each_name(v->u.pair.rhs, fn, ctx);
		return;
	default: return;
	}
}

void formula_each_atom(const struct formula *f, void (*fn)(const char *name, void *ctx), void *ctx)
{
	if (!f)
		return;

	switch (f->kind) {
	case FORMULA_EMPTY: return;
	case FORMULA_ATOM: fn(f->name, ctx); return;
	case FORMULA_AND:
	case FORMULA_OR:
		formula_each_atom(f->lhs, fn, ctx);
		formula_each_atom(f->rhs, fn, ctx);
		return;
	}
}
