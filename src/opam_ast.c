#include "opam_ast.h"

#include <string.h>

bool value_equal(const struct value *a, const struct value *b)
{
	if (a->kind != b->kind || a->op != b->op)
		return false;

	switch ((enum value_kind)a->kind) {
	case VALUE_BOOL: return a->u.boolean == b->u.boolean;
	case VALUE_INT: return a->u.integer == b->u.integer;
	case VALUE_STRING:
	case VALUE_IDENT: return a->len == b->len && memcmp(a->u.str, b->u.str, a->len) == 0;
	case VALUE_RELOP:
	case VALUE_LOGOP:
	case VALUE_ENVOP: return value_equal(a->u.pair.lhs, b->u.pair.lhs) && value_equal(a->u.pair.rhs, b->u.pair.rhs);
	case VALUE_PREFIX_RELOP:
	case VALUE_PFXOP: return value_equal(a->u.arg, b->u.arg);
	case VALUE_LIST:
	case VALUE_GROUP:
		if (a->len != b->len)
			return false;
		for (uint32_t i = 0; i < a->len; i++)
			if (!value_equal(a->u.items[i], b->u.items[i]))
				return false;
		return true;
	case VALUE_OPTION:
		if (a->len != b->len || !value_equal(a->u.option.subject, b->u.option.subject))
			return false;
		for (uint32_t i = 0; i < a->len; i++)
			if (!value_equal(a->u.option.items[i], b->u.option.items[i]))
				return false;
		return true;
	}
	return false;
}

static bool items_equal(struct item **a, uint32_t na, struct item **b, uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++) {
		const struct item *x = a[i], *y = b[i];
		if (x->kind != y->kind || strcmp(x->name, y->name) != 0)
			return false;
		if (x->kind == ITEM_FIELD) {
			if (!value_equal(x->u.value, y->u.value))
				return false;
			continue;
		}
		const char *lx = x->u.section.label, *ly = y->u.section.label;
		if ((lx == NULL) != (ly == NULL) || (lx && strcmp(lx, ly) != 0))
			return false;
		if (!items_equal(x->u.section.items, x->u.section.count, y->u.section.items, y->u.section.count))
			return false;
	}
	return true;
}

bool opam_file_equal(const struct opam_file *a, const struct opam_file *b)
{
	return items_equal(a->items, a->count, b->items, b->count);
}

const struct item *opam_find_field(const struct item *const *items, uint32_t count, const char *name)
{
	for (uint32_t i = 0; i < count; i++)
		if (items[i]->kind == ITEM_FIELD && strcmp(items[i]->name, name) == 0)
			return items[i];
	return NULL;
}
