#include "filter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "version.h"

struct variable_entry {
	char *name;
	struct fvalue value; /* string owned by the entry */
};

static struct variable_entry *find_entry(const struct variables *vars, const char *name)
{
	for (size_t i = 0; i < vars->count; i++)
		if (strcmp(vars->items[i].name, name) == 0)
			return &vars->items[i];
	return NULL;
}

static struct variable_entry *set_entry(struct variables *vars, const char *name)
{
	struct variable_entry *e = find_entry(vars, name);

	if (e) {
		free((char *)e->value.string);
		e->value.string = NULL;
		return e;
	}
	if (vars->count == vars->capacity) {
		vars->capacity = vars->capacity ? vars->capacity * 2 : 16;
		vars->items = xreallocarray(vars->items, vars->capacity, sizeof(*vars->items));
	}
	e = &vars->items[vars->count++];
	e->name = xstrdup(name);
	e->value.string = NULL;
	return e;
}

void variables_set_string(struct variables *vars, const char *name, const char *value)
{
	struct variable_entry *e = set_entry(vars, name);

	e->value.kind = FVALUE_STRING;
	e->value.boolean = false;
	e->value.string = xstrdup(value);
}

void variables_set_bool(struct variables *vars, const char *name, bool value)
{
	struct variable_entry *e = set_entry(vars, name);

	e->value.kind = FVALUE_BOOL;
	e->value.boolean = value;
}

void variables_unset(struct variables *vars, const char *name)
{
	struct variable_entry *e = find_entry(vars, name);

	if (!e)
		return;
	free(e->name);
	free((char *)e->value.string);
	*e = vars->items[--vars->count];
}

bool variables_get(const struct variables *vars, const char *name, struct fvalue *out)
{
	const struct variable_entry *e = vars ? find_entry(vars, name) : NULL;

	if (!e)
		return false;
	*out = e->value;
	return true;
}

void variables_release(struct variables *vars)
{
	for (size_t i = 0; i < vars->count; i++) {
		free(vars->items[i].name);
		free((char *)vars->items[i].value.string);
	}
	free(vars->items);
	memset(vars, 0, sizeof(*vars));
}

static const struct fvalue undefined = { FVALUE_UNDEFINED, false, NULL };

static struct fvalue make_bool(bool b)
{
	struct fvalue v = { FVALUE_BOOL, b, NULL };
	return v;
}

static struct fvalue make_string(const char *s)
{
	struct fvalue v = { FVALUE_STRING, false, s };
	return v;
}

bool fvalue_to_bool(struct fvalue v, bool *out)
{
	if (v.kind == FVALUE_BOOL) {
		*out = v.boolean;
		return true;
	}
	if (v.kind == FVALUE_STRING && strcmp(v.string, "true") == 0) {
		*out = true;
		return true;
	}
	if (v.kind == FVALUE_STRING && strcmp(v.string, "false") == 0) {
		*out = false;
		return true;
	}
	return false;
}

/* Look up VAR of package PKG ("_" or NULL for the package being evaluated; "" for a global variable). */
static struct fvalue lookup(const struct filter_env *env, const char *pkg, const char *var, struct arena *scratch)
{
	struct fvalue v;
	bool self = pkg && (strcmp(pkg, "_") == 0 || (env->self_name && strcmp(pkg, env->self_name) == 0));

	/* A package's own name and version are visible as `name`, `_:name` and `pkg:name`. */
	if (!pkg || self) {
		if (strcmp(var, "name") == 0 && env->self_name)
			return make_string(env->self_name);
		if (strcmp(var, "version") == 0 && env->self_version)
			return make_string(env->self_version);
	}

	if (!pkg) {
		if (variables_get(env->locals, var, &v) || variables_get(env->globals, var, &v))
			return v;
		return undefined;
	}

	const char *owner = self && env->self_name ? env->self_name : pkg;
	char *full = arena_alloc(scratch, strlen(owner) + strlen(var) + 2);
	strcpy(full, owner);
	strcat(full, ":");
	strcat(full, var);
	if (variables_get(env->locals, full, &v) || variables_get(env->globals, full, &v))
		return v;
	return undefined;
}

/*
 * Resolve `a+b:var`: every package's variable must be true (a false one wins, an undefined or
 * non-boolean one makes the result undefined), as opam's resolve_ident does.
 */
static struct fvalue lookup_many(const struct filter_env *env, char *packages, const char *var, struct arena *scratch)
{
	if (!strchr(packages, '+'))
		return lookup(env, packages, var, scratch);

	bool defined = true;
	for (char *pkg = packages; pkg;) {
		char *next = strchr(pkg, '+');
		if (next)
			*next++ = '\0';
		struct fvalue v = lookup(env, pkg, var, scratch);
		bool b;
		if (v.kind == FVALUE_BOOL && v.boolean) {
			/* true leaves the result as it is */
		} else if (fvalue_to_bool(v, &b)) {
			if (!b)
				return make_bool(false);
		} else {
			defined = false;
		}
		pkg = next;
	}
	return defined ? make_bool(true) : undefined;
}

struct fvalue filter_resolve_ident(const char *ident, const struct filter_env *env, struct arena *scratch)
{
	char *s = arena_strdup(scratch, ident);
	char *packages = NULL, *var = s;
	const char *if_true = NULL, *if_false = NULL;

	/* Split `packages:var?if_true:if_false`, from the right as opam does. */
	char *last_colon = strrchr(s, ':');
	if (last_colon) {
		*last_colon = '\0';
		char *question = strrchr(s, '?');
		if (question) {
			*question = '\0';
			if_true = question + 1;
			if_false = last_colon + 1;
			char *colon = strchr(s, ':');
			if (colon) {
				*colon = '\0';
				packages = s;
				var = colon + 1;
			}
		} else {
			packages = s;
			var = last_colon + 1;
		}
	}

	/* `pkg:enable` means `pkg:installed?enable:disable`. */
	if (packages && !if_true && strcmp(var, "enable") == 0) {
		var = "installed";
		if_true = "enable";
		if_false = "disable";
	}

	struct fvalue v = packages ? lookup_many(env, packages, var, scratch) : lookup(env, NULL, var, scratch);
	if (!if_true)
		return v;

	bool b;
	if (fvalue_to_bool(v, &b) && b)
		return make_string(if_true);
	return make_string(if_false);
}

const char *filter_expand_string(const char *s, const struct filter_env *env, struct arena *scratch)
{
	if (!strchr(s, '%'))
		return s;

	struct strbuf out = { 0 };
	for (const char *p = s; *p;) {
		if (p[0] == '%' && p[1] == '%') {
			strbuf_addc(&out, '%');
			p += 2;
			continue;
		}
		if (p[0] == '%' && p[1] == '{') {
			/* The variable ends at the first `}%` on the same line; an unclosed one stays as written. */
			const char *end = p + 2;
			while (*end && *end != '\n' && !(end[0] == '}' && end[1] == '%'))
				end++;
			if (end[0] == '}' && end[1] == '%') {
				char *ident = arena_strndup(scratch, p + 2, (size_t)(end - p - 2));
				struct fvalue v = filter_resolve_ident(ident, env, scratch);
				if (v.kind == FVALUE_STRING)
					strbuf_adds(&out, v.string);
				else if (v.kind == FVALUE_BOOL)
					strbuf_adds(&out, v.boolean ? "true" : "false");
				p = end + 2;
				continue;
			}
		}
		strbuf_addc(&out, *p++);
	}

	const char *result = arena_strndup(scratch, strbuf_str(&out), out.len);
	strbuf_release(&out);
	return result;
}

/* Integers in filters read as their decimal string, as opam's filter parser converts them. */
static const char *format_integer(struct arena *scratch, int64_t n)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRId64, n);
	return arena_strdup(scratch, buf);
}

static const char *fvalue_string(struct fvalue v)
{
	if (v.kind == FVALUE_BOOL)
		return v.boolean ? "true" : "false";
	return v.string;
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

/* `&` and `|`: the absorbing value wins even against undefined; otherwise undefined spreads. */
static struct fvalue eval_logop(struct fvalue a, struct fvalue b, bool absorbing)
{
	bool x, y;

	if ((b.kind == FVALUE_BOOL && b.boolean == absorbing) || (a.kind == FVALUE_BOOL && a.boolean == absorbing))
		return make_bool(absorbing);
	if (a.kind == FVALUE_UNDEFINED || b.kind == FVALUE_UNDEFINED)
		return undefined;
	if (!fvalue_to_bool(a, &x) || !fvalue_to_bool(b, &y))
		return undefined;
	return make_bool(absorbing ? (x || y) : (x && y));
}

struct fvalue filter_eval(const struct value *v, const struct filter_env *env, struct arena *scratch)
{
	switch ((enum value_kind)v->kind) {
	case VALUE_BOOL: return make_bool(v->u.boolean);
	case VALUE_INT: return make_string(format_integer(scratch, v->u.integer));
	case VALUE_STRING: return make_string(filter_expand_string(v->u.str, env, scratch));
	case VALUE_IDENT: return filter_resolve_ident(v->u.str, env, scratch);
	case VALUE_GROUP: return v->len == 1 ? filter_eval(v->u.items[0], env, scratch) : undefined;
	case VALUE_RELOP: {
		struct fvalue a = filter_eval(v->u.pair.lhs, env, scratch);
		struct fvalue b = filter_eval(v->u.pair.rhs, env, scratch);
		if (a.kind == FVALUE_UNDEFINED || b.kind == FVALUE_UNDEFINED)
			return undefined;
		return make_bool(relop_holds(v->op, version_compare(fvalue_string(a), fvalue_string(b))));
	}
	case VALUE_LOGOP: {
		struct fvalue a = filter_eval(v->u.pair.lhs, env, scratch);
		struct fvalue b = filter_eval(v->u.pair.rhs, env, scratch);
		return eval_logop(a, b, v->op == LOGOP_OR);
	}
	case VALUE_PFXOP: {
		struct fvalue a = filter_eval(v->u.arg, env, scratch);
		if (v->op == PFXOP_DEFINED)
			return make_bool(a.kind != FVALUE_UNDEFINED);
		bool b;
		if (!fvalue_to_bool(a, &b))
			return undefined;
		return make_bool(!b);
	}
	case VALUE_PREFIX_RELOP:
	case VALUE_ENVOP:
	case VALUE_LIST:
	case VALUE_OPTION: break;
	}
	return undefined;
}

bool filter_eval_bool(const struct value *v, const struct filter_env *env, struct arena *scratch, bool default_value)
{
	bool b;

	if (fvalue_to_bool(filter_eval(v, env, scratch), &b))
		return b;
	return default_value;
}

bool filter_is_valid(const struct value *v)
{
	switch ((enum value_kind)v->kind) {
	case VALUE_BOOL:
	case VALUE_INT:
	case VALUE_STRING:
	case VALUE_IDENT: return true;
	case VALUE_GROUP: return v->len == 1 && filter_is_valid(v->u.items[0]);
	case VALUE_RELOP:
	case VALUE_LOGOP: return filter_is_valid(v->u.pair.lhs) && filter_is_valid(v->u.pair.rhs);
	case VALUE_PFXOP: return filter_is_valid(v->u.arg);
	case VALUE_PREFIX_RELOP:
	case VALUE_ENVOP:
	case VALUE_LIST:
	case VALUE_OPTION: break;
	}
	return false;
}
