#include "printer.h"

#include <inttypes.h>
#include <string.h>

static const char *envop_symbol(enum envop op)
{
	static const char *const symbols[] = { "=", "+=", "=+", "=+=", ":=", "=:" };

	return symbols[op];
}

const char *relop_symbol(enum relop op)
{
	static const char *const symbols[] = { "=", "!=", ">=", ">", "<=", "<" };

	return symbols[op];
}

void opam_print_string(struct strbuf *out, const char *s, uint32_t len)
{
	strbuf_addc(out, '"');
	for (uint32_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': strbuf_adds(out, "\\\""); break;
		case '\\': strbuf_adds(out, "\\\\"); break;
		case '\n': strbuf_adds(out, "\\n"); break;
		case '\r': strbuf_adds(out, "\\r"); break;
		case '\t': strbuf_adds(out, "\\t"); break;
		default:
			/* Control bytes are escaped so the output survives editors; bytes >= 0x80 pass as they are. */
			if (c < 0x20 || c == 0x7f)
				strbuf_addf(out, "\\x%02x", c);
			else
				strbuf_addc(out, (char)c);
		}
	}
	strbuf_addc(out, '"');
}

static void print_values(struct strbuf *out, struct value **items, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		if (i)
			strbuf_addc(out, ' ');
		opam_print_value(out, items[i]);
	}
}

/*
 * Trees come from the parser, where every explicit parenthesis is a GROUP node, so the printer
 * never needs to add parentheses for precedence.
 */
void opam_print_value(struct strbuf *out, const struct value *v)
{
	switch ((enum value_kind)v->kind) {
	case VALUE_BOOL: strbuf_adds(out, v->u.boolean ? "true" : "false"); break;
	case VALUE_INT: strbuf_addf(out, "%" PRId64, v->u.integer); break;
	case VALUE_STRING: opam_print_string(out, v->u.str, v->len); break;
	case VALUE_IDENT: strbuf_add(out, v->u.str, v->len); break;
	case VALUE_RELOP:
		opam_print_value(out, v->u.pair.lhs);
		strbuf_addf(out, " %s ", relop_symbol(v->op));
		opam_print_value(out, v->u.pair.rhs);
		break;
	case VALUE_ENVOP:
		opam_print_value(out, v->u.pair.lhs);
		strbuf_addf(out, " %s ", envop_symbol(v->op));
		opam_print_value(out, v->u.pair.rhs);
		break;
	case VALUE_PREFIX_RELOP:
		strbuf_addf(out, "%s ", relop_symbol(v->op));
		opam_print_value(out, v->u.arg);
		break;
	case VALUE_LOGOP:
		opam_print_value(out, v->u.pair.lhs);
		strbuf_adds(out, v->op == LOGOP_AND ? " & " : " | ");
		opam_print_value(out, v->u.pair.rhs);
		break;
	case VALUE_PFXOP:
		strbuf_addc(out, v->op == PFXOP_NOT ? '!' : '?');
		/* `! = "1"` must not print as the operator `!=`. */
		if (v->u.arg->kind == VALUE_PREFIX_RELOP)
			strbuf_addc(out, ' ');
		opam_print_value(out, v->u.arg);
		break;
	case VALUE_LIST:
	case VALUE_GROUP:
		strbuf_addc(out, v->kind == VALUE_LIST ? '[' : '(');
		print_values(out, v->u.items, v->len);
		strbuf_addc(out, v->kind == VALUE_LIST ? ']' : ')');
		break;
	case VALUE_OPTION:
		opam_print_value(out, v->u.option.subject);
		strbuf_adds(out, " {");
		print_values(out, v->u.option.items, v->len);
		strbuf_addc(out, '}');
		break;
	}
}

static void print_items(struct strbuf *out, struct item **items, uint32_t count, int indent)
{
	for (uint32_t i = 0; i < count; i++) {
		const struct item *it = items[i];
		strbuf_addf(out, "%*s%s", indent, "", it->name);
		if (it->kind == ITEM_FIELD) {
			strbuf_adds(out, ": ");
			opam_print_value(out, it->u.value);
			strbuf_addc(out, '\n');
			continue;
		}
		if (it->u.section.label) {
			strbuf_addc(out, ' ');
			opam_print_string(out, it->u.section.label, (uint32_t)strlen(it->u.section.label));
		}
		strbuf_adds(out, " {\n");
		print_items(out, it->u.section.items, it->u.section.count, indent + 2);
		strbuf_addf(out, "%*s}\n", indent, "");
	}
}

void opam_print_file(struct strbuf *out, const struct opam_file *f)
{
	print_items(out, f->items, f->count, 0);
}
