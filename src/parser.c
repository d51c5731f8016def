#include "parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lexer.h"
#include "util.h"

/*
 * Binding strength, from opam-file-format's precedence declarations: '|' < '&' < prefix '!'/'?' <
 * postfix option '{...}'. Relational and environment operators only join two atoms, so they bind
 * tighter than all of these.
 */
enum binding { BIND_ANY, BIND_OR, BIND_AND, BIND_PREFIX };

struct parser {
	struct lexer lexer;
	struct arena *arena;
	struct diag_list *diags;
	const char *path;
	struct token tok; /* the current token, not yet consumed */
	unsigned depth;   /* current nesting of values and sections */
	bool failed;      /* an error was reported; unwind without further messages */
};

static void error_at(struct parser *p, uint32_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void error_at(struct parser *p, uint32_t pos, const char *fmt, ...)
{
	if (p->failed)
		return;
	p->failed = true;

	char message[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	diag_add(p->diags, SEVERITY_ERROR, p->path, p->lexer.text, p->lexer.len, pos, "%s", message);
}

/* Move to the next token; a lexical error becomes a parse error at its position. */
static void advance(struct parser *p)
{
	if (p->failed)
		return;
	if (lexer_next(&p->lexer, &p->tok) == TOKEN_ERROR)
		error_at(p, p->lexer.error_pos, "%s", p->lexer.error);
}

static void unexpected(struct parser *p, const char *expected)
{
	if (p->tok.kind == TOKEN_ERROR)
		return;
	error_at(p, p->tok.start, "expected %s, found %s", expected, token_kind_name(p->tok.kind));
}

static bool enter(struct parser *p)
{
	if (++p->depth > PARSER_MAX_DEPTH) {
		error_at(p, p->tok.start, "values nested deeper than %d levels", PARSER_MAX_DEPTH);
		return false;
	}
	return true;
}

static struct value *new_value(struct parser *p, enum value_kind kind, uint32_t pos)
{
	struct value *v = arena_alloc(p->arena, sizeof(*v));

	memset(v, 0, sizeof(*v));
	v->kind = kind;
	v->pos = pos;
	v->height = 1;
	return v;
}

/*
 * Record that CHILD hangs below PARENT. Trees taller than the limit are rejected here, because a
 * left-associative chain such as `a & a & ...` is built by a loop, not by recursion, yet every
 * later walk of the tree recurses.
 */
static bool attach(struct parser *p, struct value *parent, const struct value *child)
{
	if (child->height >= parent->height)
		parent->height = child->height + 1;
	if (parent->height > PARSER_MAX_DEPTH) {
		error_at(p, parent->pos,
			 "values nested deeper than %d levels (each '&' or '|' of a chain counts as one)",
			 PARSER_MAX_DEPTH);
		return false;
	}
	return true;
}

static bool attach_all(struct parser *p, struct value *parent, struct value **items, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++)
		if (!attach(p, parent, items[i]))
			return false;
	return true;
}

static bool is_atom(enum token_kind kind)
{
	return kind == TOKEN_IDENT || kind == TOKEN_BOOL || kind == TOKEN_INT || kind == TOKEN_STRING;
}

/* Build an atom from the current token and consume it. */
static struct value *parse_atom(struct parser *p)
{
	struct value *v;

	switch (p->tok.kind) {
	case TOKEN_IDENT:
	case TOKEN_STRING:
		v = new_value(p, p->tok.kind == TOKEN_IDENT ? VALUE_IDENT : VALUE_STRING, p->tok.start);
		v->u.str = p->tok.str;
		v->len = p->tok.len;
		break;
	case TOKEN_BOOL:
		v = new_value(p, VALUE_BOOL, p->tok.start);
		v->u.boolean = p->tok.boolean;
		break;
	case TOKEN_INT:
		v = new_value(p, VALUE_INT, p->tok.start);
		v->u.integer = p->tok.integer;
		break;
	default: unexpected(p, "a string, identifier, integer or boolean"); return NULL;
	}
	advance(p);
	return v;
}

static struct value *parse_value(struct parser *p, enum binding min);

/* Parse values up to the token CLOSE, which is consumed. */
static struct value **parse_values(struct parser *p, enum token_kind close, uint32_t *count)
{
	struct value **items = NULL;
	uint32_t n = 0, capacity = 0;

	while (!p->failed && p->tok.kind != close) {
		if (p->tok.kind == TOKEN_EOF) {
			error_at(p, p->tok.start, "expected %s before end of file", token_kind_name(close));
			break;
		}
		struct value *v = parse_value(p, BIND_ANY);
		if (!v)
			break;
		if (n == capacity) {
			capacity = capacity ? capacity * 2 : 4;
			items = xreallocarray(items, capacity, sizeof(*items));
		}
		items[n++] = v;
	}

	struct value **stored = NULL;
	if (!p->failed) {
		advance(p);
		stored = arena_alloc(p->arena, (n ? n : 1) * sizeof(*stored));
		if (n)
			memcpy(stored, items, n * sizeof(*stored));
	}
	free(items);
	*count = n;
	return stored;
}

/* An atom, possibly joined to a second atom by a relational or environment update operator. */
static struct value *parse_atom_expression(struct parser *p)
{
	struct value *lhs = parse_atom(p);

	if (!lhs || (p->tok.kind != TOKEN_RELOP && p->tok.kind != TOKEN_ENVOP))
		return lhs;

	enum value_kind kind = p->tok.kind == TOKEN_RELOP ? VALUE_RELOP : VALUE_ENVOP;
	struct value *v = new_value(p, kind, lhs->pos);
	v->op = p->tok.op;
	advance(p);
	if (p->failed)
		return NULL;
	v->u.pair.lhs = lhs;
	v->u.pair.rhs = parse_atom(p);
	if (!v->u.pair.rhs)
		return NULL;
	v->height = 2;
	return v;
}

/* Everything that can start a value: atoms, groups, lists, prefix operators. */
static struct value *parse_primary(struct parser *p)
{
	uint32_t pos = p->tok.start;

	switch (p->tok.kind) {
	case TOKEN_LPAREN:
	case TOKEN_LBRACKET: {
		enum token_kind close = p->tok.kind == TOKEN_LPAREN ? TOKEN_RPAREN : TOKEN_RBRACKET;
		struct value *v = new_value(p, close == TOKEN_RPAREN ? VALUE_GROUP : VALUE_LIST, pos);
		advance(p);
		if (p->failed)
			return NULL;
		v->u.items = parse_values(p, close, &v->len);
		if (p->failed || !attach_all(p, v, v->u.items, v->len))
			return NULL;
		return v;
	}
	case TOKEN_PFXOP: {
		struct value *v = new_value(p, VALUE_PFXOP, pos);
		v->op = p->tok.op;
		advance(p);
		if (p->failed)
			return NULL;
		v->u.arg = parse_value(p, BIND_PREFIX);
		return v->u.arg && attach(p, v, v->u.arg) ? v : NULL;
	}
	case TOKEN_RELOP: {
		struct value *v = new_value(p, VALUE_PREFIX_RELOP, pos);
		v->op = p->tok.op;
		advance(p);
		if (p->failed)
			return NULL;
		v->u.arg = parse_atom(p);
		if (!v->u.arg)
			return NULL;
		v->height = 2;
		return v;
	}
	default:
		if (is_atom(p->tok.kind))
			return parse_atom_expression(p);
		unexpected(p, "a value");
		return NULL;
	}
}

/* Parse a value whose infix operators bind at least as tightly as MIN. */
static struct value *parse_value(struct parser *p, enum binding min)
{
	if (!enter(p))
		return NULL;

	struct value *lhs = parse_primary(p);
	while (lhs && !p->failed) {
		if (p->tok.kind == TOKEN_LBRACE) {
			/* Options bind tighter than every operator that reaches this loop, and to the left. */
			struct value *v = new_value(p, VALUE_OPTION, lhs->pos);
			advance(p);
			if (p->failed)
				break;
			v->u.option.subject = lhs;
			v->u.option.items = parse_values(p, TOKEN_RBRACE, &v->len);
			if (p->failed || !attach(p, v, lhs) || !attach_all(p, v, v->u.option.items, v->len))
				lhs = NULL;
			else
				lhs = v;
		} else if ((p->tok.kind == TOKEN_AND && min <= BIND_AND) ||
			   (p->tok.kind == TOKEN_OR && min <= BIND_OR)) {
			/* Both are left-associative: the right operand only takes tighter operators. */
			enum binding right = p->tok.kind == TOKEN_AND ? BIND_PREFIX : BIND_AND;
			struct value *v = new_value(p, VALUE_LOGOP, lhs->pos);
			v->op = p->tok.kind == TOKEN_AND ? LOGOP_AND : LOGOP_OR;
			advance(p);
			if (p->failed)
				break;
			v->u.pair.lhs = lhs;
			v->u.pair.rhs = parse_value(p, right);
			if (!v->u.pair.rhs || !attach(p, v, lhs) || !attach(p, v, v->u.pair.rhs))
				lhs = NULL;
			else
				lhs = v;
		} else {
			break;
		}
	}

	p->depth--;
	return p->failed ? NULL : lhs;
}

static struct item *new_item(struct parser *p, enum item_kind kind, const struct token *name)
{
	struct item *it = arena_alloc(p->arena, sizeof(*it));

	memset(it, 0, sizeof(*it));
	it->kind = kind;
	it->pos = name->start;
	it->name = name->str;
	return it;
}

static struct item **parse_items(struct parser *p, enum token_kind close, uint32_t *count);

/* item := IDENT ':' value | IDENT '{' items '}' | IDENT STRING '{' items '}' */
static struct item *parse_item(struct parser *p)
{
	if (p->tok.kind != TOKEN_IDENT) {
		unexpected(p, "a field name");
		return NULL;
	}
	struct token name = p->tok;
	advance(p);
	if (p->failed)
		return NULL;

	if (p->tok.kind == TOKEN_COLON) {
		struct item *it = new_item(p, ITEM_FIELD, &name);
		advance(p);
		if (p->failed)
			return NULL;
		it->u.value = parse_value(p, BIND_ANY);
		return it->u.value ? it : NULL;
	}

	struct item *it = new_item(p, ITEM_SECTION, &name);
	if (p->tok.kind == TOKEN_STRING) {
		it->u.section.label = p->tok.str;
		advance(p);
		if (p->failed)
			return NULL;
	}
	if (p->tok.kind != TOKEN_LBRACE) {
		/* `name:value` without a space lexes as one identifier; say so, since the message is otherwise puzzling. */
		if (strchr(name.str, ':') && !it->u.section.label)
			error_at(p, name.start, "'%s' is read as one identifier: put a space after the ':'", name.str);
		else
			unexpected(p, it->u.section.label ? "'{'" : "':' or '{' after a field name");
		return NULL;
	}
	advance(p);
	if (p->failed || !enter(p))
		return NULL;
	it->u.section.items = parse_items(p, TOKEN_RBRACE, &it->u.section.count);
	p->depth--;
	if (p->failed)
		return NULL;
	advance(p);
	return p->failed ? NULL : it;
}

/* Parse items up to CLOSE (not consumed). */
static struct item **parse_items(struct parser *p, enum token_kind close, uint32_t *count)
{
	struct item **items = NULL;
	uint32_t n = 0, capacity = 0;

	while (!p->failed && p->tok.kind != close) {
		if (p->tok.kind == TOKEN_EOF) {
			error_at(p, p->tok.start, "expected '}' before end of file");
			break;
		}
		struct item *it = parse_item(p);
		if (!it)
			break;
		if (n == capacity) {
			capacity = capacity ? capacity * 2 : 16;
			items = xreallocarray(items, capacity, sizeof(*items));
		}
		items[n++] = it;
	}

	struct item **stored = NULL;
	if (!p->failed) {
		stored = arena_alloc(p->arena, (n ? n : 1) * sizeof(*stored));
		if (n)
			memcpy(stored, items, n * sizeof(*stored));
	}
	free(items);
	*count = n;
	return stored;
}

/*
 * The (major, minor) of an opam-version string, as opam reads it: up to the second dot, or the
 * leading digits and dots; (0, 0) when that is not "N.N".
 */
static void format_version(const char *s, unsigned *major, unsigned *minor)
{
	unsigned a = 0, b = 0;
	int consumed = 0;

	*major = *minor = 0;
	if (sscanf(s, "%u.%u%n", &a, &b, &consumed) == 2 && consumed > 0 && s[0] >= '0' && s[0] <= '9') {
		*major = a;
		*minor = b;
	}
}

static void parser_init(struct parser *p, struct arena *arena, const char *path, const char *text, uint32_t len,
			struct diag_list *diags)
{
	memset(p, 0, sizeof(*p));
	lexer_init(&p->lexer, text, len, arena);
	p->arena = arena;
	p->diags = diags;
	p->path = path;
}

/*
 * Apply opam's rules on the `opam-version` field: with format 2.1 or later it may appear only
 * once; before 2.1, a later occurrence may only say 2.0.
 */
static bool check_opam_version_fields(struct parser *p, struct opam_file *f, bool format_2_1)
{
	for (uint32_t i = 1; i < f->count; i++) {
		struct item *it = f->items[i];
		if (it->kind != ITEM_FIELD || strcmp(it->name, "opam-version") != 0 ||
		    it->u.value->kind != VALUE_STRING)
			continue;
		unsigned major, minor;
		format_version(it->u.value->u.str, &major, &minor);
		if (format_2_1) {
			error_at(p, it->pos,
				 "opam-version appears twice; a file in format 2.1 or later must state it once");
			return false;
		}
		if (major > 2 || (major == 2 && minor > 0)) {
			error_at(p, it->pos, "opam-version \"%s\" must be the first field of the file",
				 it->u.value->u.str);
			return false;
		}
	}
	return true;
}

/* Format of the file's header `opam-version: "X"` if the file starts with one. */
static bool read_header(struct parser *p, const char **version)
{
	struct lexer probe = p->lexer;
	struct token t1, t2, t3;

	*version = NULL;
	if (lexer_next(&probe, &t1) != TOKEN_IDENT || strcmp(t1.str, "opam-version") != 0)
		return false;
	if (lexer_next(&probe, &t2) != TOKEN_COLON || lexer_next(&probe, &t3) != TOKEN_STRING)
		return false;
	*version = t3.str;
	return true;
}

/* The parser's own format: files claiming a newer one may contain syntax it does not know. */
#define KNOWN_FORMAT_MAJOR 2
#define KNOWN_FORMAT_MINOR 1

struct opam_file *opam_parse(struct arena *arena, const char *path, const char *text, uint32_t len,
			     struct diag_list *diags)
{
	struct parser p;
	struct diag_list local = { 0 };

	parser_init(&p, arena, path, text, len, &local);

	struct opam_file *f = arena_calloc(arena, 1, sizeof(*f));
	f->path = arena_strdup(arena, path);
	f->text = text;
	f->text_len = len;

	const char *header = NULL;
	unsigned major = 0, minor = 0;
	if (read_header(&p, &header))
		format_version(header, &major, &minor);
	bool format_2_1 = major > 2 || (major == 2 && minor >= 1);
	bool future = major > KNOWN_FORMAT_MAJOR || (major == KNOWN_FORMAT_MAJOR && minor > KNOWN_FORMAT_MINOR);

	advance(&p);
	if (!p.failed)
		f->items = parse_items(&p, TOKEN_EOF, &f->count);
	bool syntax_failed = p.failed;
	if (!p.failed)
		check_opam_version_fields(&p, f, format_2_1);

	/* Only syntax errors are tolerated in a newer format; a repeated opam-version never is. */
	if (syntax_failed && future) {
		/* A newer format may use syntax this parser lacks: keep the header only, as opam does, and warn. */
		struct diag *d = &local.items[0];
		diag_add(diags, SEVERITY_WARNING, path, NULL, 0, NO_POSITION,
			 "file declares opam-version \"%s\", newer than this parser's %d.%d, and does not parse as "
			 "%d.%d "
			 "(line %u: %s); only its header is kept",
			 header, KNOWN_FORMAT_MAJOR, KNOWN_FORMAT_MINOR, KNOWN_FORMAT_MAJOR, KNOWN_FORMAT_MINOR,
			 d->line, d->message);
		diag_list_release(&local);
		struct lexer lx;
		struct token name;
		lexer_init(&lx, text, len, arena);
		lexer_next(&lx, &name);
		struct item *it = new_item(&p, ITEM_FIELD, &name);
		it->u.value = new_value(&p, VALUE_STRING, name.start);
		it->u.value->u.str = header;
		it->u.value->len = (uint32_t)strlen(header);
		f->items = arena_alloc(arena, sizeof(*f->items));
		f->items[0] = it;
		f->count = 1;
		f->from_future = true;
		return f;
	}

	diag_append(diags, &local);
	return p.failed ? NULL : f;
}

struct value *opam_parse_value(struct arena *arena, const char *path, const char *text, uint32_t len,
			       struct diag_list *diags)
{
	struct parser p;

	parser_init(&p, arena, path, text, len, diags);
	advance(&p);
	if (p.failed)
		return NULL;
	struct value *v = parse_value(&p, BIND_ANY);
	if (v && p.tok.kind != TOKEN_EOF)
		unexpected(&p, "end of input");
	return p.failed ? NULL : v;
}
