/*
 * Tests of the opam file lexer, parser and printer against opam-file-format 2.1+ (opamLexer.mll,
 * opamBaseParser.mly). Trees are compared through a fully bracketed rendering: `(| a (& b c))`,
 * `(! a)`, `(>= "1")` for a prefix relop, `(= a b)`, `(+= a b)`, `[a b]` for a list, `(group a b)`
 * and `(option subject items...)`.
 */
#include "harness.h"

#include <inttypes.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"
#include "lexer.h"
#include "opam_ast.h"
#include "parser.h"
#include "printer.h"
#include "util.h"

/* Arena and diagnostics of the last parse. Each parse helper releases the previous ones. */
static struct arena arena;
static struct diag_list diags;
static struct strbuf shown;

/* Every input that parsed, replayed by the round-trip test. */
struct parsed_input {
	char *text;
	uint32_t len;
	bool is_value; /* parsed with opam_parse_value, not opam_parse */
};

static struct parsed_input *parsed_inputs;
static size_t parsed_count, parsed_capacity;

static void remember_input(const char *text, uint32_t len, bool is_value)
{
	if (parsed_count == parsed_capacity) {
		parsed_capacity = parsed_capacity ? parsed_capacity * 2 : 64;
		parsed_inputs = xreallocarray(parsed_inputs, parsed_capacity, sizeof(*parsed_inputs));
	}
	struct parsed_input *in = &parsed_inputs[parsed_count++];
	in->text = xmalloc(len + 1);
	memcpy(in->text, text, len);
	in->text[len] = '\0';
	in->len = len;
	in->is_value = is_value;
}

static void reset_state(void)
{
	diag_list_release(&diags);
	arena_release(&arena);
}

/* Parse LEN bytes of TEXT as a file. The tree stays valid until the next parse and while TEXT lives. */
static struct opam_file *parse_bytes(const char *text, size_t len)
{
	reset_state();
	struct opam_file *f = opam_parse(&arena, "test.opam", text, (uint32_t)len, &diags);
	if (f)
		remember_input(text, (uint32_t)len, false);
	return f;
}

static struct opam_file *parse(const char *text)
{
	return parse_bytes(text, strlen(text));
}

static struct value *parse_value_text(const char *text)
{
	reset_state();
	struct value *v = opam_parse_value(&arena, "test.opam", text, (uint32_t)strlen(text), &diags);
	if (v)
		remember_input(text, (uint32_t)strlen(text), true);
	return v;
}

static const struct diag *first_error(void)
{
	for (size_t i = 0; i < diags.count; i++)
		if (diags.items[i].severity == SEVERITY_ERROR)
			return &diags.items[i];
	return NULL;
}

/* Append bytes as a quoted string with C escapes, so that expected renderings are plain C literals. */
static void show_bytes(struct strbuf *out, const char *s, uint32_t len)
{
	strbuf_addc(out, '"');
	for (uint32_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			strbuf_addf(out, "\\%c", c);
		else if (c == '\n')
			strbuf_adds(out, "\\n");
		else if (c == '\r')
			strbuf_adds(out, "\\r");
		else if (c == '\t')
			strbuf_adds(out, "\\t");
		else if (c < 0x20 || c >= 0x7f)
			strbuf_addf(out, "\\x%02x", c);
		else
			strbuf_addc(out, (char)c);
	}
	strbuf_addc(out, '"');
}

static const char *envop_text(enum envop op)
{
	static const char *const symbols[] = { "=", "+=", "=+", "=+=", ":=", "=:" };

	return symbols[op];
}

static void show_value_into(struct strbuf *out, const struct value *v);

static void show_values_into(struct strbuf *out, struct value **items, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		strbuf_addc(out, ' ');
		show_value_into(out, items[i]);
	}
}

static void show_value_into(struct strbuf *out, const struct value *v)
{
	switch ((enum value_kind)v->kind) {
	case VALUE_BOOL: strbuf_adds(out, v->u.boolean ? "true" : "false"); break;
	case VALUE_INT: strbuf_addf(out, "%" PRId64, v->u.integer); break;
	case VALUE_STRING: show_bytes(out, v->u.str, v->len); break;
	case VALUE_IDENT: strbuf_add(out, v->u.str, v->len); break;
	case VALUE_RELOP:
	case VALUE_ENVOP:
	case VALUE_LOGOP:
		if (v->kind == VALUE_RELOP)
			strbuf_addf(out, "(%s ", relop_symbol(v->op));
		else if (v->kind == VALUE_ENVOP)
			strbuf_addf(out, "(%s ", envop_text(v->op));
		else
			strbuf_adds(out, v->op == LOGOP_AND ? "(& " : "(| ");
		show_value_into(out, v->u.pair.lhs);
		strbuf_addc(out, ' ');
		show_value_into(out, v->u.pair.rhs);
		strbuf_addc(out, ')');
		break;
	case VALUE_PREFIX_RELOP:
		strbuf_addf(out, "(%s ", relop_symbol(v->op));
		show_value_into(out, v->u.arg);
		strbuf_addc(out, ')');
		break;
	case VALUE_PFXOP:
		strbuf_adds(out, v->op == PFXOP_NOT ? "(! " : "(? ");
		show_value_into(out, v->u.arg);
		strbuf_addc(out, ')');
		break;
	case VALUE_LIST:
		strbuf_addc(out, '[');
		for (uint32_t i = 0; i < v->len; i++) {
			if (i)
				strbuf_addc(out, ' ');
			show_value_into(out, v->u.items[i]);
		}
		strbuf_addc(out, ']');
		break;
	case VALUE_GROUP:
		strbuf_adds(out, "(group");
		show_values_into(out, v->u.items, v->len);
		strbuf_addc(out, ')');
		break;
	case VALUE_OPTION:
		strbuf_adds(out, "(option ");
		show_value_into(out, v->u.option.subject);
		show_values_into(out, v->u.option.items, v->len);
		strbuf_addc(out, ')');
		break;
	}
}

static void show_items_into(struct strbuf *out, struct item **items, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		const struct item *it = items[i];
		if (i)
			strbuf_adds(out, "; ");
		strbuf_adds(out, it->name);
		if (it->kind == ITEM_FIELD) {
			strbuf_adds(out, ": ");
			show_value_into(out, it->u.value);
			continue;
		}
		if (it->u.section.label) {
			strbuf_addc(out, ' ');
			show_bytes(out, it->u.section.label, (uint32_t)strlen(it->u.section.label));
		}
		strbuf_adds(out, " {");
		show_items_into(out, it->u.section.items, it->u.section.count);
		strbuf_addc(out, '}');
	}
}

/* Render the first error of the last parse as "error LINE:COLUMN: MESSAGE". */
static const char *show_error(void)
{
	const struct diag *d = first_error();

	strbuf_reset(&shown);
	if (!d)
		strbuf_adds(&shown, "failed without an error");
	else
		strbuf_addf(&shown, "error %u:%u: %s", d->line, d->column, d->message);
	return strbuf_str(&shown);
}

/* Parse TEXT as a value and render it, or render its first error. */
static const char *show(const char *text)
{
	struct value *v = parse_value_text(text);

	if (!v)
		return show_error();
	strbuf_reset(&shown);
	show_value_into(&shown, v);
	return strbuf_str(&shown);
}

/* Parse TEXT as a file and render its items separated by "; ", or render its first error. */
static const char *show_file(const char *text)
{
	struct opam_file *f = parse(text);

	if (!f)
		return show_error();
	strbuf_reset(&shown);
	show_items_into(&shown, f->items, f->count);
	return strbuf_str(&shown);
}

static void show_token_into(struct strbuf *out, const struct token *tok, const struct lexer *lx)
{
	switch (tok->kind) {
	case TOKEN_EOF: strbuf_adds(out, "EOF"); break;
	case TOKEN_ERROR: strbuf_addf(out, "ERROR(%s@%" PRIu32 ")", lx->error, lx->error_pos); break;
	case TOKEN_STRING:
		strbuf_adds(out, "STRING(");
		show_bytes(out, tok->str, tok->len);
		strbuf_addc(out, ')');
		break;
	case TOKEN_IDENT: strbuf_addf(out, "IDENT(%s)", tok->str); break;
	case TOKEN_BOOL: strbuf_addf(out, "BOOL(%s)", tok->boolean ? "true" : "false"); break;
	case TOKEN_INT: strbuf_addf(out, "INT(%" PRId64 ")", tok->integer); break;
	case TOKEN_COLON: strbuf_adds(out, ":"); break;
	case TOKEN_LBRACE: strbuf_adds(out, "{"); break;
	case TOKEN_RBRACE: strbuf_adds(out, "}"); break;
	case TOKEN_LBRACKET: strbuf_adds(out, "["); break;
	case TOKEN_RBRACKET: strbuf_adds(out, "]"); break;
	case TOKEN_LPAREN: strbuf_adds(out, "("); break;
	case TOKEN_RPAREN: strbuf_adds(out, ")"); break;
	case TOKEN_RELOP: strbuf_addf(out, "RELOP(%s)", relop_symbol(tok->op)); break;
	case TOKEN_AND: strbuf_adds(out, "&"); break;
	case TOKEN_OR: strbuf_adds(out, "|"); break;
	case TOKEN_PFXOP: strbuf_addf(out, "PFXOP(%s)", tok->op == PFXOP_NOT ? "!" : "?"); break;
	case TOKEN_ENVOP: strbuf_addf(out, "ENVOP(%s)", envop_text(tok->op)); break;
	}
}

/* Lex LEN bytes of TEXT up to the end or the first error, rendering tokens separated by spaces. */
static const char *lex_bytes(const char *text, size_t len)
{
	struct lexer lx;
	struct token tok;

	reset_state();
	strbuf_reset(&shown);
	lexer_init(&lx, text, (uint32_t)len, &arena);
	for (int n = 0;; n++) {
		enum token_kind kind = lexer_next(&lx, &tok);
		if (n)
			strbuf_addc(&shown, ' ');
		show_token_into(&shown, &tok, &lx);
		if (kind == TOKEN_EOF || kind == TOKEN_ERROR)
			break;
	}
	return strbuf_str(&shown);
}

static const char *lex(const char *text)
{
	return lex_bytes(text, strlen(text));
}

/* Check that SOURCE, a string literal in opam syntax, lexes to exactly the LEN bytes EXPECTED. */
static void check_string_token(const char *source, const char *expected, uint32_t len, int line)
{
	struct lexer lx;
	struct token tok;

	reset_state();
	lexer_init(&lx, source, (uint32_t)strlen(source), &arena);
	enum token_kind kind = lexer_next(&lx, &tok);
	if (kind != TOKEN_STRING) {
		fprintf(stderr, "%s:%d: %s: %s lexes to kind %d (%s), expected a string\n", __FILE__, line,
			test_current_name, source, kind, kind == TOKEN_ERROR ? lx.error : "");
		test_current_failed = true;
		return;
	}
	if (tok.len != len || memcmp(tok.str, expected, len) != 0 || tok.str[len] != '\0') {
		struct strbuf got = { 0 };
		show_bytes(&got, tok.str, tok.len);
		fprintf(stderr, "%s:%d: %s: %s lexes to %s\n", __FILE__, line, test_current_name, source,
			strbuf_str(&got));
		strbuf_release(&got);
		test_current_failed = true;
	}
	if (lexer_next(&lx, &tok) != TOKEN_EOF) {
		fprintf(stderr, "%s:%d: %s: %s has tokens after the string\n", __FILE__, line, test_current_name,
			source);
		test_current_failed = true;
	}
}

#define CHECK_STRING_TOKEN(source, expected)                                                                           \
	check_string_token((source), (expected), (uint32_t)(sizeof(expected) - 1), __LINE__)

/* Lexer */

static void test_lexer_punctuation(void)
{
	CHECK_STR_EQ(lex(": { } [ ] ( )"), ": { } [ ] ( ) EOF");
	CHECK_STR_EQ(lex("{}[]()"), "{ } [ ] ( ) EOF");
	CHECK_STR_EQ(lex("::"), ": : EOF");
}

static void test_lexer_atoms(void)
{
	CHECK_STR_EQ(lex("\"s\" name true false 42 -7"),
		     "STRING(\"s\") IDENT(name) BOOL(true) BOOL(false) INT(42) INT(-7) EOF");
	CHECK_STR_EQ(lex(""), "EOF");
	CHECK_STR_EQ(lex("  \t\n\r\n "), "EOF");
}

static void test_lexer_relops(void)
{
	CHECK_STR_EQ(lex("= != < <= > >= ~"), "RELOP(=) RELOP(!=) RELOP(<) RELOP(<=) RELOP(>) RELOP(>=) RELOP(>=) EOF");
	CHECK_STR_EQ(lex("a<=b"), "IDENT(a) RELOP(<=) IDENT(b) EOF");
	CHECK_STR_EQ(lex("a!=b"), "IDENT(a) RELOP(!=) IDENT(b) EOF");
	CHECK_STR_EQ(lex("a=b"), "IDENT(a) RELOP(=) IDENT(b) EOF");
	CHECK_STR_EQ(lex("~\"1\""), "RELOP(>=) STRING(\"1\") EOF");
}

static void test_lexer_logops_and_prefix(void)
{
	CHECK_STR_EQ(lex("& | ! ?"), "& | PFXOP(!) PFXOP(?) EOF");
	CHECK_STR_EQ(lex("!a&?b|c"), "PFXOP(!) IDENT(a) & PFXOP(?) IDENT(b) | IDENT(c) EOF");
	CHECK_STR_EQ(lex("! ="), "PFXOP(!) RELOP(=) EOF");
	CHECK_STR_EQ(lex("!!="), "PFXOP(!) RELOP(!=) EOF");
	CHECK_STR_EQ(lex("?="), "PFXOP(?) RELOP(=) EOF");
}

static void test_lexer_envops(void)
{
	CHECK_STR_EQ(lex("+= := =+ =: =+="), "ENVOP(+=) ENVOP(:=) ENVOP(=+) ENVOP(=:) ENVOP(=+=) EOF");
	CHECK_STR_EQ(lex("a=+b"), "IDENT(a) ENVOP(=+) IDENT(b) EOF");
	CHECK_STR_EQ(lex("a:=b"), "IDENT(a) ENVOP(:=) IDENT(b) EOF");
	CHECK_STR_EQ(lex("a=:b"), "IDENT(a) ENVOP(=:) IDENT(b) EOF");
	CHECK_STR_EQ(lex("a=+=b"), "IDENT(a) ENVOP(=+=) IDENT(b) EOF");
	CHECK_STR_EQ(lex("a =:= b"), "IDENT(a) ERROR('=:=' is not a valid environment update operator@2)");
}

static void test_lexer_invalid_characters(void)
{
	CHECK_STR_EQ(lex("a+"), "IDENT(a) ERROR(invalid token@1)");
	CHECK_STR_EQ(lex("1.0"), "INT(1) ERROR(invalid token@1)");
	CHECK_STR_EQ(lex("-"), "ERROR(invalid token@0)");
	CHECK_STR_EQ(lex("--1"), "ERROR(invalid token@0)");
	CHECK_STR_EQ(lex("x\ry"), "IDENT(x) ERROR(invalid token@1)");
	CHECK_STR_EQ(lex("$"), "ERROR(invalid token@0)");
	CHECK_STR_EQ(lex_bytes("a\0b", 3), "IDENT(a) ERROR(invalid token@1)");
	CHECK_STR_EQ(lex("\xc3\xa9t\xc3\xa9"), "ERROR(invalid token@0)");
}

static void test_lexer_token_offsets(void)
{
	const char *text = "  ab \"c\\n\" 12\n\"\"\"x\"\"\"";
	struct lexer lx;
	struct token tok;

	reset_state();
	lexer_init(&lx, text, (uint32_t)strlen(text), &arena);
	CHECK_INT_EQ(lexer_next(&lx, &tok), TOKEN_IDENT);
	CHECK_INT_EQ(tok.start, 2);
	CHECK_INT_EQ(tok.end, 4);
	CHECK_INT_EQ(lexer_next(&lx, &tok), TOKEN_STRING);
	CHECK_INT_EQ(tok.start, 5);
	CHECK_INT_EQ(tok.end, 10);
	CHECK_INT_EQ(tok.len, 2);
	CHECK_INT_EQ(lexer_next(&lx, &tok), TOKEN_INT);
	CHECK_INT_EQ(tok.start, 11);
	CHECK_INT_EQ(tok.end, 13);
	CHECK_INT_EQ(lexer_next(&lx, &tok), TOKEN_STRING);
	CHECK_INT_EQ(tok.start, 14);
	CHECK_INT_EQ(tok.end, 21);
	CHECK_INT_EQ(lexer_next(&lx, &tok), TOKEN_EOF);
	CHECK_INT_EQ(tok.start, 21);
}

static void test_lexer_booleans_and_idents(void)
{
	CHECK_STR_EQ(lex("true false"), "BOOL(true) BOOL(false) EOF");
	CHECK_STR_EQ(lex("trueish falsey True true_ true-1 true1"),
		     "IDENT(trueish) IDENT(falsey) IDENT(True) IDENT(true_) IDENT(true-1) IDENT(true1) EOF");
	CHECK_STR_EQ(lex("true:x false+y"), "IDENT(true:x) IDENT(false+y) EOF");
	CHECK_STR_EQ(lex("true:"), "BOOL(true) : EOF");
	CHECK_STR_EQ(lex("true&false"), "BOOL(true) & BOOL(false) EOF");
}

static void test_lexer_idents(void)
{
	CHECK_STR_EQ(lex("0install"), "IDENT(0install) EOF");
	CHECK_STR_EQ(lex("ocaml:native"), "IDENT(ocaml:native) EOF");
	CHECK_STR_EQ(lex("a+b:v"), "IDENT(a+b:v) EOF");
	CHECK_STR_EQ(lex("_:version"), "IDENT(_:version) EOF");
	CHECK_STR_EQ(lex("_+_:x"), "IDENT(_+_:x) EOF");
	CHECK_STR_EQ(lex("_foo"), "IDENT(_foo) EOF");
	CHECK_STR_EQ(lex("-a 1a 1_a -1a"), "IDENT(-a) IDENT(1a) IDENT(1_a) IDENT(-1a) EOF");
	CHECK_STR_EQ(lex("a-:b"), "IDENT(a-:b) EOF");
	CHECK_STR_EQ(lex("a:1b"), "IDENT(a:1b) EOF");
	CHECK_STR_EQ(lex("conf-g++"), "IDENT(conf-g) ERROR(invalid token@6)");
	/* The `:id` suffix is taken once: a second ':' is a colon token. */
	CHECK_STR_EQ(lex("a:b:c"), "IDENT(a:b) : IDENT(c) EOF");
	/* A ':' followed by something without a letter ends the identifier. */
	CHECK_STR_EQ(lex("a:1"), "IDENT(a) : INT(1) EOF");
	CHECK_STR_EQ(lex("a:\"s\""), "IDENT(a) : STRING(\"s\") EOF");
	/* A component after '+' needs a letter or is a single '_'. */
	CHECK_STR_EQ(lex("a+_1"), "IDENT(a+_) INT(1) EOF");
	CHECK_STR_EQ(lex("a+1"), "IDENT(a) ERROR(invalid token@1)");
}

static void test_lexer_underscore_alone(void)
{
	/* `_` matches both the integer and the identifier rule with the same length; the integer rule comes first. */
	CHECK_STR_EQ(lex("_"), "ERROR(invalid integer@0)");
	CHECK_STR_EQ(lex("__"), "ERROR(invalid integer@0)");
	CHECK_STR_EQ(lex("_ "), "ERROR(invalid integer@0)");
}

static void test_lexer_integers(void)
{
	CHECK_STR_EQ(lex("0 007 1_000 -1_0 1__2 3_"), "INT(0) INT(7) INT(1000) INT(-10) INT(12) INT(3) EOF");
	CHECK_STR_EQ(lex("1-2"), "INT(1) INT(-2) EOF");
	CHECK_STR_EQ(lex("-0"), "INT(0) EOF");
	CHECK_STR_EQ(lex("_1"), "ERROR(invalid integer@0)");
	CHECK_STR_EQ(lex("-_1"), "ERROR(invalid integer@0)");
}

static void test_lexer_integer_range(void)
{
	/* OCaml's int_of_string (parse_intnat in runtime/ints.c) accepts -2^62 .. 2^62-1 on 64-bit hosts. */
	CHECK_STR_EQ(lex("4611686018427387903"), "INT(4611686018427387903) EOF");
	CHECK_STR_EQ(lex("4_611_686_018_427_387_903"), "INT(4611686018427387903) EOF");
	CHECK_STR_EQ(lex("-4611686018427387903"), "INT(-4611686018427387903) EOF");
	CHECK_STR_EQ(lex("4611686018427387904"), "ERROR(integer out of range@0)");
	CHECK_STR_EQ(lex("-4611686018427387905"), "ERROR(integer out of range@0)");
	CHECK_STR_EQ(lex("99999999999999999999999999"), "ERROR(integer out of range@0)");
	CHECK_STR_EQ(lex("x 18446744073709551616"), "IDENT(x) ERROR(integer out of range@2)");
}

static void test_lexer_integer_minimum(void)
{
	/* -2^62 is OCaml's min_int, which int_of_string accepts although 2^62 is out of range. */
	CHECK_STR_EQ(lex("-4611686018427387904"), "INT(-4611686018427387904) EOF");
}

static void test_lexer_simple_escapes(void)
{
	CHECK_STRING_TOKEN("\"a\\\\b\"", "a\\b");
	CHECK_STRING_TOKEN("\"\\\"\"", "\"");
	CHECK_STRING_TOKEN("\"\\'\"", "'");
	CHECK_STRING_TOKEN("\"\\n\"", "\n");
	CHECK_STRING_TOKEN("\"\\r\"", "\r");
	CHECK_STRING_TOKEN("\"\\t\"", "\t");
	CHECK_STRING_TOKEN("\"\\b\"", "\b");
	CHECK_STRING_TOKEN("\"\\ \"", " ");
	CHECK_STRING_TOKEN("\"x\\n\\r\\t\\b\\ \\\\\\\"\\'y\"", "x\n\r\t\b \\\"'y");
}

static void test_lexer_decimal_escapes(void)
{
	CHECK_STRING_TOKEN("\"\\065\"", "A");
	CHECK_STRING_TOKEN("\"\\000\"", "\0");
	CHECK_STRING_TOKEN("\"\\255\"", "\xff");
	CHECK_STRING_TOKEN("\"\\1234\"", "{4");
	CHECK_STRING_TOKEN("\"a\\010b\"", "a\nb");
	CHECK_STR_EQ(lex("\"\\256\""), "ERROR(illegal escape sequence@1)");
	CHECK_STR_EQ(lex("\"\\999\""), "ERROR(illegal escape sequence@1)");
	CHECK_STR_EQ(lex("\"\\12\""), "ERROR(illegal escape sequence@1)");
	CHECK_STR_EQ(lex("\"ab\\1x3\""), "ERROR(illegal escape sequence@3)");
}

static void test_lexer_hex_escapes(void)
{
	CHECK_STRING_TOKEN("\"\\x41\"", "A");
	CHECK_STRING_TOKEN("\"\\xfF\"", "\xff");
	CHECK_STRING_TOKEN("\"\\x00z\"", "\0z");
	CHECK_STRING_TOKEN("\"\\x4142\"", "A42");
	CHECK_STR_EQ(lex("\"\\x4g\""), "ERROR(illegal escape sequence@1)");
	CHECK_STR_EQ(lex("\"\\x4\""), "ERROR(illegal escape sequence@1)");
	CHECK_STR_EQ(lex("\"\\X41\""), "ERROR(illegal escape sequence@1)");
}

static void test_lexer_line_continuation(void)
{
	CHECK_STRING_TOKEN("\"a\\\n   \t b\"", "ab");
	CHECK_STRING_TOKEN("\"a\\\r\n  b\"", "ab");
	CHECK_STRING_TOKEN("\"a\\\nb\"", "ab");
	/* Only blanks of the next line are skipped, not further newlines. */
	CHECK_STRING_TOKEN("\"a\\\n\n b\"", "a\n b");
	CHECK_STRING_TOKEN("\"\"\"a\\\n  b\"\"\"", "ab");
	/* A backslash before a lone CR is not a continuation. */
	CHECK_STR_EQ(lex("\"a\\\rb\""), "ERROR(illegal escape sequence@2)");
}

static void test_lexer_illegal_escapes(void)
{
	CHECK_STR_EQ(lex("\"\\q\""), "ERROR(illegal escape sequence@1)");
	CHECK_STR_EQ(lex("x \"ab\\zc\""), "IDENT(x) ERROR(illegal escape sequence@5)");
	CHECK_STR_EQ(lex("\"\\\t\""), "ERROR(illegal escape sequence@1)");
	CHECK_STR_EQ(lex("\"\"\"\\q\"\"\""), "ERROR(illegal escape sequence@3)");
}

static void test_lexer_crlf_in_strings(void)
{
	CHECK_STRING_TOKEN("\"a\r\nb\"", "a\nb");
	CHECK_STRING_TOKEN("\"\"\"a\r\nb\r\n\"\"\"", "a\nb\n");
	/* A CR without LF is kept. */
	CHECK_STRING_TOKEN("\"a\rb\"", "a\rb");
	CHECK_STRING_TOKEN("\"a\r\r\nb\"", "a\r\nb");
	CHECK_STRING_TOKEN("\"a\\tb\r\n\"", "a\tb\n");
}

static void test_lexer_triple_strings(void)
{
	CHECK_STRING_TOKEN("\"\"\"a\"b\"\"c\"\"\"", "a\"b\"\"c");
	CHECK_STRING_TOKEN("\"\"\"\"\"\"", "");
	CHECK_STRING_TOKEN("\"\"", "");
	CHECK_STRING_TOKEN("\"\"\"\nline 1\n  line 2\n\"\"\"", "\nline 1\n  line 2\n");
	CHECK_STRING_TOKEN("\"\"\"a\\\"\"\"\"", "a\"");
	CHECK_STRING_TOKEN("\"\"\"\\n\\x41\\066\"\"\"", "\nAB");
	CHECK_STRING_TOKEN("\"\"\"(* # \"\"\"", "(* # ");
	/* Three quotes always open a triple-quoted string, so four quotes leave it open. */
	CHECK_STR_EQ(lex("\"\"\"\""), "ERROR(unterminated string@0)");
	CHECK_STR_EQ(lex("x \"\"\"\" y"), "IDENT(x) ERROR(unterminated string@2)");
	/* The first three quotes close it, and the fourth opens a new string. */
	CHECK_STR_EQ(lex("\"\"\"a\"\"\"\""), "STRING(\"a\") ERROR(unterminated string@7)");
	CHECK_STR_EQ(lex("\"\" \"\""), "STRING(\"\") STRING(\"\") EOF");
}

static void test_lexer_block_comments(void)
{
	CHECK_STR_EQ(lex("(* a *) x"), "IDENT(x) EOF");
	CHECK_STR_EQ(lex("(* (* *) *) x"), "IDENT(x) EOF");
	CHECK_STR_EQ(lex("(* a (* b (* c *) d *) e *)x(**)y"), "IDENT(x) IDENT(y) EOF");
	CHECK_STR_EQ(lex("(*)x*)y"), "IDENT(y) EOF");
	CHECK_STR_EQ(lex("a(*b*)c"), "IDENT(a) IDENT(c) EOF");
	/* Quotes are not special inside comments. */
	CHECK_STR_EQ(lex("(* \" *) x"), "IDENT(x) EOF");
	CHECK_STR_EQ(lex("(* \"*)\" *)"), "ERROR(unterminated string@6)");
	CHECK_STR_EQ(lex("(* # *) x"), "IDENT(x) EOF");
	CHECK_STR_EQ(lex("(* \n\r\n *)\n x"), "IDENT(x) EOF");
	CHECK_STR_EQ(lex("\"(* x *)\""), "STRING(\"(* x *)\") EOF");
}

static void test_lexer_line_comments(void)
{
	CHECK_STR_EQ(lex("# comment\nx"), "IDENT(x) EOF");
	CHECK_STR_EQ(lex("x # comment without newline"), "IDENT(x) EOF");
	CHECK_STR_EQ(lex("x #"), "IDENT(x) EOF");
	CHECK_STR_EQ(lex("# (* \" \nx"), "IDENT(x) EOF");
	CHECK_STR_EQ(lex("x#y\nz"), "IDENT(x) IDENT(z) EOF");
	CHECK_STR_EQ(lex("\"#\" # \"x\""), "STRING(\"#\") EOF");
	CHECK_STR_EQ(lex("# a\r\nb"), "IDENT(b) EOF");
}

static void test_lexer_unterminated(void)
{
	CHECK_STR_EQ(lex("\"abc"), "ERROR(unterminated string@0)");
	CHECK_STR_EQ(lex("x \"abc\\\""), "IDENT(x) ERROR(unterminated string@2)");
	CHECK_STR_EQ(lex("\"\"\"abc\"\""), "ERROR(unterminated string@0)");
	CHECK_STR_EQ(lex("(* abc"), "ERROR(unterminated comment@0)");
	CHECK_STR_EQ(lex("x (* (* *)"), "IDENT(x) ERROR(unterminated comment@2)");
	CHECK_STR_EQ(lex("(*"), "ERROR(unterminated comment@0)");
}

static void test_lexer_escape_before_eof(void)
{
	/* opamLexer.mll decodes escapes as it reads, so a bad escape is reported before the missing quote. */
	CHECK_STR_EQ(lex("\"ab\\q"), "ERROR(illegal escape sequence@3)");
	CHECK_STR_EQ(lex("\"ab\\"), "ERROR(illegal escape sequence@3)");
}

/* Values and precedence */

static void test_parse_atoms(void)
{
	CHECK_STR_EQ(show("\"a b\""), "\"a b\"");
	CHECK_STR_EQ(show("ident"), "ident");
	CHECK_STR_EQ(show("true"), "true");
	CHECK_STR_EQ(show("-12"), "-12");
	CHECK_STR_EQ(show("[]"), "[]");
	CHECK_STR_EQ(show("()"), "(group)");
	CHECK_STR_EQ(show("[a \"b\" 1 false]"), "[a \"b\" 1 false]");
	CHECK_STR_EQ(show("(a b)"), "(group a b)");
	CHECK_STR_EQ(show("[[a] (b [c])]"), "[[a] (group b [c])]");
}

static void test_precedence_or_and(void)
{
	CHECK_STR_EQ(show("a | b & c"), "(| a (& b c))");
	CHECK_STR_EQ(show("a & b | c"), "(| (& a b) c)");
	CHECK_STR_EQ(show("a | b | c"), "(| (| a b) c)");
	CHECK_STR_EQ(show("a & b & c"), "(& (& a b) c)");
	CHECK_STR_EQ(show("a & b | c & d"), "(| (& a b) (& c d))");
	CHECK_STR_EQ(show("a | b & c | d"), "(| (| a (& b c)) d)");
	CHECK_STR_EQ(show("(a | b) & c"), "(& (group (| a b)) c)");
}

static void test_precedence_prefix(void)
{
	CHECK_STR_EQ(show("!a & b"), "(& (! a) b)");
	CHECK_STR_EQ(show("!a | b"), "(| (! a) b)");
	CHECK_STR_EQ(show("?a & b"), "(& (? a) b)");
	CHECK_STR_EQ(show("a & !b & c"), "(& (& a (! b)) c)");
	CHECK_STR_EQ(show("a | !b & c"), "(| a (& (! b) c))");
	CHECK_STR_EQ(show("!!a"), "(! (! a))");
	CHECK_STR_EQ(show("!?a"), "(! (? a))");
	CHECK_STR_EQ(show("!a = b"), "(! (= a b))");
	CHECK_STR_EQ(show("!(a | b)"), "(! (group (| a b)))");
	CHECK_STR_EQ(show("![a]"), "(! [a])");
}

static void test_prefix_before_prefix_relop(void)
{
	/* `! = "1"` negates a prefix relop, while `!= "1"` is the relop itself. */
	CHECK_STR_EQ(show("! = \"1\""), "(! (= \"1\"))");
	CHECK_STR_EQ(show("!= \"1\""), "(!= \"1\")");
	CHECK_STR_EQ(show("? >= \"1\""), "(? (>= \"1\"))");
}

static void test_precedence_option(void)
{
	CHECK_STR_EQ(show("\"a\" | \"b\" {x}"), "(| \"a\" (option \"b\" x))");
	CHECK_STR_EQ(show("!a {x}"), "(! (option a x))");
	CHECK_STR_EQ(show("a {x} {y}"), "(option (option a x) y)");
	CHECK_STR_EQ(show("a {x} {y} {z}"), "(option (option (option a x) y) z)");
	CHECK_STR_EQ(show("a & b {x}"), "(& a (option b x))");
	CHECK_STR_EQ(show("a {x} & b"), "(& (option a x) b)");
	CHECK_STR_EQ(show("!a {x} & b"), "(& (! (option a x)) b)");
	CHECK_STR_EQ(show("(a | b) {x}"), "(option (group (| a b)) x)");
	CHECK_STR_EQ(show("a = b {x}"), "(option (= a b) x)");
	CHECK_STR_EQ(show("a {}"), "(option a)");
	CHECK_STR_EQ(show("a {x y z}"), "(option a x y z)");
	CHECK_STR_EQ(show("[a {x} b]"), "[(option a x) b]");
	CHECK_STR_EQ(show("a {b {c}}"), "(option a (option b c))");
}

static void test_option_with_prefix_relops(void)
{
	CHECK_STR_EQ(show("\"pkg\" {>= \"1\" < \"2\"}"), "(option \"pkg\" (>= \"1\") (< \"2\"))");
	CHECK_STR_EQ(show("\"pkg\" {>= \"1\" & < \"2\"}"), "(option \"pkg\" (& (>= \"1\") (< \"2\")))");
	CHECK_STR_EQ(show("\"pkg\" {~ \"1\"}"), "(option \"pkg\" (>= \"1\"))");
	CHECK_STR_EQ(show("\"pkg\" {= \"1\" | != \"2\"}"), "(option \"pkg\" (| (= \"1\") (!= \"2\")))");
	CHECK_STR_EQ(show("\"pkg\" {build & >= \"1\"}"), "(option \"pkg\" (& build (>= \"1\")))");
	CHECK_STR_EQ(show(">= \"1\" {x}"), "(option (>= \"1\") x)");
}

static void test_relop_operands(void)
{
	CHECK_STR_EQ(show("os = \"linux\""), "(= os \"linux\")");
	CHECK_STR_EQ(show("1 < 2"), "(< 1 2)");
	CHECK_STR_EQ(show("true != x"), "(!= true x)");
	CHECK_STR_EQ(show("a ~ b"), "(>= a b)");
	/* Inside a list, a second relop starts a new value, a prefix relop. */
	CHECK_STR_EQ(show("[a = b = c]"), "[(= a b) (= c)]");
	CHECK_STR_EQ(show("a = (b)"), "error 1:5: expected a string, identifier, integer or boolean, found '('");
	CHECK_STR_EQ(show("a = b = c"), "error 1:7: expected end of input, found a comparison operator");
	CHECK_STR_EQ(show("(a) = b"), "error 1:5: expected end of input, found a comparison operator");
	CHECK_STR_EQ(show("= = a"),
		     "error 1:3: expected a string, identifier, integer or boolean, found a comparison operator");
}

static void test_relop_chain_at_field(void)
{
	CHECK_STR_EQ(show_file("x: a = b = c"), "error 1:10: expected a field name, found a comparison operator");
	CHECK_STR_EQ(show_file("x: [a = b = c]"), "x: [(= a b) (= c)]");
}

static void test_envops(void)
{
	CHECK_STR_EQ(show("[PATH += \"a\" A := \"b\" B =+ \"c\" C =: \"d\" D =+= \"e\"]"),
		     "[(+= PATH \"a\") (:= A \"b\") (=+ B \"c\") (=: C \"d\") (=+= D \"e\")]");
	CHECK_STR_EQ(show("[PATH = \"a\"]"), "[(= PATH \"a\")]");
	CHECK_STR_EQ(show("a += b & c"), "(& (+= a b) c)");
	CHECK_STR_EQ(show_file("x: a =:= b"), "error 1:6: '=:=' is not a valid environment update operator");
	CHECK_STR_EQ(show_file("x: [a += [b]]"),
		     "error 1:10: expected a string, identifier, integer or boolean, found '['");
}

static void test_value_trailing_tokens(void)
{
	CHECK_STR_EQ(show("a b"), "error 1:3: expected end of input, found an identifier");
	CHECK_STR_EQ(show(""), "error 1:1: expected a value, found end of file");
	CHECK_STR_EQ(show("a )"), "error 1:3: expected end of input, found ')'");
}

/* Items */

static void test_fields(void)
{
	CHECK_STR_EQ(show_file("name: \"x\"\nversion: \"1\""), "name: \"x\"; version: \"1\"");
	CHECK_STR_EQ(show_file("a+b: 1 ocaml:native: true"), "a+b: 1; ocaml:native: true");
	CHECK_STR_EQ(show_file("a:b: c"), "a:b: c");
	CHECK_STR_EQ(show_file("x:\"a\""), "x: \"a\"");
	CHECK_STR_EQ(show_file("x:1"), "x: 1");
	CHECK_STR_EQ(show_file("x:[a]"), "x: [a]");
	CHECK_STR_EQ(show_file("x: a y: b"), "x: a; y: b");
	CHECK_STR_EQ(show_file("x: a {b} y: c"), "x: (option a b); y: c");
	CHECK_STR_EQ(show_file("x: 1 x: 2"), "x: 1; x: 2");
	CHECK_STR_EQ(show_file("true: 1"), "error 1:1: expected a field name, found a boolean");
	CHECK_STR_EQ(show_file("x: 1 2"), "error 1:6: expected a field name, found an integer");
	CHECK_STR_EQ(show_file("\"x\": 1"), "error 1:1: expected a field name, found a string");
}

static void test_sections(void)
{
	CHECK_STR_EQ(show_file("url { src: \"x\" checksum: \"y\" }"), "url {src: \"x\"; checksum: \"y\"}");
	CHECK_STR_EQ(show_file("extra-source \"p.patch\" { src: \"x\" }"), "extra-source \"p.patch\" {src: \"x\"}");
	CHECK_STR_EQ(show_file("s {}"), "s {}");
	CHECK_STR_EQ(show_file("s \"\" {}"), "s \"\" {}");
	CHECK_STR_EQ(show_file("a { b \"c\" { d: 1 } e: 2 }"), "a {b \"c\" {d: 1}; e: 2}");
	CHECK_STR_EQ(show_file("a:b {}"), "a:b {}");
	CHECK_STR_EQ(show_file("s \"a\\nb\" {}"), "s \"a\\nb\" {}");
	CHECK_STR_EQ(show_file("s \"l\" x: 1"), "error 1:7: expected '{', found an identifier");
	CHECK_STR_EQ(show_file("s { x: 1"), "error 1:9: expected '}' before end of file");
	CHECK_STR_EQ(show_file("s { x: 1 }}"), "error 1:11: expected a field name, found '}'");
	CHECK_STR_EQ(show_file("s \"a\" \"b\" {}"), "error 1:7: expected '{', found a string");

	struct opam_file *f = parse("url \"mirror\" {\n  src: \"x\"\n}\nname: \"n\"");
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK_INT_EQ(f->count, 2);
	CHECK_INT_EQ(f->items[0]->kind, ITEM_SECTION);
	CHECK_STR_EQ(f->items[0]->name, "url");
	CHECK_STR_EQ(f->items[0]->u.section.label, "mirror");
	CHECK_INT_EQ(f->items[0]->u.section.count, 1);
	CHECK_INT_EQ(f->items[0]->pos, 0);
	CHECK_INT_EQ(f->items[1]->kind, ITEM_FIELD);
	CHECK_INT_EQ(f->items[1]->pos, 28);

	f = parse("depexts {}");
	CHECK(f != NULL);
	if (f)
		CHECK(f->items[0]->u.section.label == NULL);
}

static void test_field_colon_trap(void)
{
	CHECK_STR_EQ(show_file("field:value"),
		     "error 1:1: 'field:value' is read as one identifier: put a space after the ':'");
	CHECK_STR_EQ(show_file("name: \"a\"\n  build:true\n"),
		     "error 2:3: 'build:true' is read as one identifier: put a space after the ':'");
	CHECK_STR_EQ(show_file("x:= 1"),
		     "error 1:2: expected ':' or '{' after a field name, found an environment update operator");
}

static void test_errors_at_eof(void)
{
	CHECK_STR_EQ(show_file("x"), "error 1:2: expected ':' or '{' after a field name, found end of file");
	CHECK_STR_EQ(show_file("x:"), "error 1:3: expected a value, found end of file");
	CHECK_STR_EQ(show_file("x: [a\n\n  b"), "error 3:4: expected ']' before end of file");
	CHECK_STR_EQ(show_file("x: (a"), "error 1:6: expected ')' before end of file");
	CHECK_STR_EQ(show_file("x: a {b"), "error 1:8: expected '}' before end of file");
	CHECK_STR_EQ(show_file("x: a &"), "error 1:7: expected a value, found end of file");
	CHECK_STR_EQ(show_file("x: >="),
		     "error 1:6: expected a string, identifier, integer or boolean, found end of file");
}

static void test_error_positions(void)
{
	CHECK_STR_EQ(show_file("a: 1\nb: ]"), "error 2:4: expected a value, found ']'");
	CHECK_STR_EQ(show_file("a: 1\r\nb: 2\r\n  c ]"),
		     "error 3:5: expected ':' or '{' after a field name, found ']'");
	CHECK_STR_EQ(show_file("\tx ]"), "error 1:4: expected ':' or '{' after a field name, found ']'");
	CHECK_STR_EQ(show_file("x: 1.0"), "error 1:5: invalid token");
	CHECK_STR_EQ(show_file("x: \"a\\qb\""), "error 1:6: illegal escape sequence");
	CHECK_STR_EQ(show_file("x: \"\"\"\nab\n \\q\"\"\""), "error 3:2: illegal escape sequence");
	CHECK_STR_EQ(show_file("x: \"a\nb\"\ny: ]"), "error 3:4: expected a value, found ']'");
	CHECK_STR_EQ(show_file("(* a\n b *) x: ]"), "error 2:10: expected a value, found ']'");
	CHECK_STR_EQ(show_file("x: 4611686018427387904"), "error 1:4: integer out of range");

	/* The diagnostic keeps the path, the severity and the offending source line. */
	CHECK(parse("a: 1\nb: ]") == NULL);
	CHECK_INT_EQ(diags.count, 1);
	CHECK_INT_EQ(diags.errors, 1);
	CHECK_INT_EQ(diags.warnings, 0);
	if (diags.count == 1) {
		CHECK_INT_EQ(diags.items[0].severity, SEVERITY_ERROR);
		CHECK_STR_EQ(diags.items[0].path, "test.opam");
		CHECK_INT_EQ(diags.items[0].line, 2);
		CHECK_INT_EQ(diags.items[0].column, 4);
		CHECK_STR_EQ(diags.items[0].source_line, "b: ]");
		CHECK_INT_EQ(diags.items[0].caret, 3);
	}
}

static void test_unterminated_errors(void)
{
	CHECK_STR_EQ(show_file("x: 1\ny: \"abc"), "error 2:4: unterminated string");
	CHECK_STR_EQ(show_file("x: 1\ny: \"\"\"abc\n\"\""), "error 2:4: unterminated string");
	CHECK_STR_EQ(show_file("x: 1\n  (* (* *)\n"), "error 2:3: unterminated comment");
	CHECK_STR_EQ(show_file("x: \"(*\" (*"), "error 1:9: unterminated comment");
}

static void test_unterminated_after_bad_escape(void)
{
	CHECK_STR_EQ(show_file("x: \"\\q"), "error 1:5: illegal escape sequence");
}

/* Resource limits */

static char *repeat(const char *prefix, const char *unit, size_t times, const char *middle, const char *closing,
		    const char *suffix)
{
	struct strbuf sb = { 0 };

	strbuf_adds(&sb, prefix);
	for (size_t i = 0; i < times; i++)
		strbuf_adds(&sb, unit);
	strbuf_adds(&sb, middle);
	for (size_t i = 0; i < times; i++)
		strbuf_adds(&sb, closing);
	strbuf_adds(&sb, suffix);
	return strbuf_detach(&sb);
}

static void check_rejected_as_too_deep(char *text, int line)
{
	struct opam_file *f = parse(text);
	const struct diag *d = first_error();

	if (f != NULL || d == NULL || strstr(d->message, "nested deeper") == NULL) {
		const char *got = "no error";
		if (f)
			got = "a parsed file";
		else if (d)
			got = d->message;
		fprintf(stderr, "%s:%d: %s: expected a nesting error, got %s\n", __FILE__, line, test_current_name,
			got);
		test_current_failed = true;
	}
	free(text);
}

static void test_deep_nesting_rejected(void)
{
	size_t n = 100000;

	check_rejected_as_too_deep(repeat("x: ", "(", n, "a", ")", ""), __LINE__);
	check_rejected_as_too_deep(repeat("x: ", "[", n, "a", "]", ""), __LINE__);
	check_rejected_as_too_deep(repeat("x: ", "(", n, "", "", ""), __LINE__);
	check_rejected_as_too_deep(repeat("x: ", "[", n, "", "", ""), __LINE__);
	check_rejected_as_too_deep(repeat("x: ", "!", n, "a", "", ""), __LINE__);
	check_rejected_as_too_deep(repeat("x: ", "a {", n, "a", "}", ""), __LINE__);
	check_rejected_as_too_deep(repeat("", "s {", n, "", "}", ""), __LINE__);
	check_rejected_as_too_deep(repeat("x: ", "(a & ", n, "a", ")", ""), __LINE__);
}

static void test_deep_comment_nesting(void)
{
	char *text = repeat("", "(*", 100000, "", "*)", "x: 1");
	struct opam_file *f = parse(text);

	CHECK(f != NULL);
	if (f)
		CHECK_INT_EQ(f->count, 1);
	free(text);

	text = repeat("", "(*", 100000, "", "", "");
	CHECK_STR_EQ(show_file(text), "error 1:1: unterminated comment");
	free(text);
}

static void test_nesting_within_limit(void)
{
	char *text = repeat("x: ", "(", PARSER_MAX_DEPTH - 1, "a", ")", "");
	struct opam_file *f = parse(text);

	CHECK(f != NULL);
	free(text);

	text = repeat("x: ", "[", 500, "a", "]", "");
	CHECK(parse(text) != NULL);
	free(text);
}

static void check_rejected_chain(const char *first, const char *link, size_t times, int line)
{
	char *text = repeat("x: ", first, 1, "", "", "");
	struct strbuf sb = { 0 };

	strbuf_adds(&sb, text);
	free(text);
	for (size_t i = 0; i < times; i++)
		strbuf_adds(&sb, link);
	check_rejected_as_too_deep(strbuf_detach(&sb), line);
}

static void test_long_chains_rejected(void)
{
	check_rejected_chain("a", " & a", 100000, __LINE__);
	check_rejected_chain("a", " | a", 100000, __LINE__);
	check_rejected_chain("a", " | a & a", 100000, __LINE__);
	check_rejected_chain("a", " {x}", 100000, __LINE__);
	check_rejected_chain("\"p\" {>= \"1\"", " & < \"2\"", 100000, __LINE__);
}

static void test_wide_values_accepted(void)
{
	char *text = repeat("x: [", "a ", 100000, "", "", "]");
	struct opam_file *f = parse(text);

	CHECK(f != NULL);
	if (f) {
		CHECK_INT_EQ(f->count, 1);
		CHECK_INT_EQ(f->items[0]->u.value->len, 100000);
	}
	free(text);

	text = repeat("", "x: 1\n", 100000, "", "", "");
	f = parse(text);
	CHECK(f != NULL);
	if (f)
		CHECK_INT_EQ(f->count, 100000);
	free(text);
}

/* Files */

static void test_empty_files(void)
{
	static const char *const inputs[] = { "", " \n\t\r\n", "# only a comment", "(* only *)\n# comments\n" };

	for (size_t i = 0; i < ARRAY_LEN(inputs); i++) {
		struct opam_file *f = parse(inputs[i]);
		CHECK(f != NULL);
		if (!f)
			continue;
		CHECK_INT_EQ(f->count, 0);
		CHECK(!f->from_future);
		CHECK_INT_EQ(diags.count, 0);
	}
}

static void test_invalid_bytes(void)
{
	CHECK(parse_bytes("\x00\xff\xfe", 3) == NULL);
	CHECK_INT_EQ(diags.errors, 1);
	CHECK_STR_EQ(show_file("x: \xff"), "error 1:4: invalid token");
	CHECK_STR_EQ(show_file("x\xc3\xa9: 1"), "error 1:2: invalid token");

	/* Strings and comments take any byte, including invalid UTF-8 and NUL. */
	CHECK_STR_EQ(show_file("x: \"\xff\xfe\xc3\""), "x: \"\\xff\\xfe\\xc3\"");
	CHECK_STR_EQ(show_file("# \xff\xfe\nx: (* \xc3 *) 1"), "x: 1");
	struct opam_file *f = parse_bytes("x: \"a\0b\"", 8);
	CHECK(f != NULL);
	if (f) {
		CHECK_INT_EQ(f->items[0]->u.value->len, 3);
		CHECK(memcmp(f->items[0]->u.value->u.str, "a\0b", 3) == 0);
	}
	CHECK(parse_bytes("x: 1\0", 5) == NULL);
	CHECK_INT_EQ(diags.errors, 1);
}

static void test_random_bytes(void)
{
	static const char alphabet[] = "ab1_-+:{}[]()\"\\ \n\r\t#*!?=<>~&|x\0\xff";
	char buffer[256];
	uint64_t state = 0x9e3779b97f4a7c15u;

	for (int round = 0; round < 20000; round++) {
		state ^= state << 13;
		state ^= state >> 7;
		state ^= state << 17;
		size_t len = state % sizeof(buffer);
		for (size_t i = 0; i < len; i++) {
			state ^= state << 13;
			state ^= state >> 7;
			state ^= state << 17;
			buffer[i] = round % 2 ? (char)(state >> 24) : alphabet[(state >> 24) % (sizeof(alphabet) - 1)];
		}
		struct opam_file *f = parse_bytes(buffer, len);
		if ((f == NULL) != (diags.errors > 0)) {
			fprintf(stderr, "%s: round %d: result %s with %zu errors\n", test_current_name, round,
				f ? "parsed" : "NULL", diags.errors);
			test_current_failed = true;
		}
		/* Keep only every 16th parsed input for the round-trip test, which replays each one. */
		if (f && parsed_count > 0 && round % 16 != 0)
			free(parsed_inputs[--parsed_count].text);
	}
}

/* The opam-version header */

static void test_header_once_in_2_1(void)
{
	CHECK_STR_EQ(show_file("opam-version: \"2.1\"\nname: \"a\"\nopam-version: \"2.1\"\n"),
		     "error 3:1: opam-version appears twice; a file in format 2.1 or later must state it once");
	CHECK_STR_EQ(show_file("opam-version: \"2.1\"\nopam-version: \"2.0\""),
		     "error 2:1: opam-version appears twice; a file in format 2.1 or later must state it once");
	CHECK_STR_EQ(show_file("# header\nopam-version: \"2.1.4\"\nx: 1\n  opam-version: \"x\""),
		     "error 4:3: opam-version appears twice; a file in format 2.1 or later must state it once");
	/* Only string-valued top-level fields count. */
	CHECK_STR_EQ(show_file("opam-version: \"2.1\"\nopam-version: 2"), "opam-version: \"2.1\"; opam-version: 2");
	CHECK_STR_EQ(show_file("opam-version: \"2.1\"\ns { opam-version: \"2.1\" }"),
		     "opam-version: \"2.1\"; s {opam-version: \"2.1\"}");
	CHECK_STR_EQ(show_file("opam-version: \"2.1\"\nopam-version {}"), "opam-version: \"2.1\"; opam-version {}");
}

static void test_header_later_2_1_in_2_0_file(void)
{
	CHECK_STR_EQ(show_file("opam-version: \"2.0\"\nname: \"x\"\nopam-version: \"2.1\""),
		     "error 3:1: opam-version \"2.1\" must be the first field of the file");
	CHECK_STR_EQ(show_file("name: \"x\"\nopam-version: \"2.1\""),
		     "error 2:1: opam-version \"2.1\" must be the first field of the file");
	CHECK_STR_EQ(show_file("name: \"x\"\nopam-version: \"2.1.3\""),
		     "error 2:1: opam-version \"2.1.3\" must be the first field of the file");
	CHECK_STR_EQ(show_file("name: \"x\"\nopam-version: \"3.0\""),
		     "error 2:1: opam-version \"3.0\" must be the first field of the file");
	/* A later "2.0" is allowed in a 2.0 file. */
	CHECK_STR_EQ(show_file("opam-version: \"2.0\"\nopam-version: \"2.0\""),
		     "opam-version: \"2.0\"; opam-version: \"2.0\"");
	CHECK_STR_EQ(show_file("name: \"x\"\nopam-version: \"2.0.9\""), "name: \"x\"; opam-version: \"2.0.9\"");
	CHECK_STR_EQ(show_file("name: \"x\"\nopam-version: \"1.2\""), "name: \"x\"; opam-version: \"1.2\"");
}

static void test_header_future_syntax_error(void)
{
	static const char *const inputs[] = {
		"opam-version: \"2.5\"\nname: ]\n",
		"opam-version: \"2.5\"\nx: \"\\q\"",
		"opam-version: \"2.5\"\nnew-syntax: a @ b",
		"# comment\n(* comment *)\nopam-version: \"2.5\" x: 1.0",
		"opam-version: \"2.10\"\nx: (",
		"opam-version: \"3.0~alpha\"\nx",
		"opam-version: \"2.5\"\nname: \"a\"\nopam-version: \"2.1\"\nx: ]",
		"opam-version: \"2.5\" (* \n x: 1",
	};

	for (size_t i = 0; i < ARRAY_LEN(inputs); i++) {
		struct opam_file *f = parse(inputs[i]);
		CHECK(f != NULL);
		if (!f) {
			fprintf(stderr, "%s: input %zu did not parse: %s\n", test_current_name, i, show_error());
			continue;
		}
		CHECK(f->from_future);
		CHECK_INT_EQ(f->count, 1);
		CHECK_INT_EQ(diags.errors, 0);
		CHECK_INT_EQ(diags.warnings, 1);
		if (f->count >= 1) {
			CHECK_INT_EQ(f->items[0]->kind, ITEM_FIELD);
			CHECK_STR_EQ(f->items[0]->name, "opam-version");
			CHECK_INT_EQ(f->items[0]->u.value->kind, VALUE_STRING);
		}
		if (diags.count >= 1)
			CHECK(strstr(diags.items[0].message, "opam-version") != NULL);
	}

	struct opam_file *f = parse("opam-version: \"2.5\"\nname: ]\n");
	if (f && f->count == 1)
		CHECK_STR_EQ(f->items[0]->u.value->u.str, "2.5");
	if (diags.count == 1)
		CHECK(strstr(diags.items[0].message, "\"2.5\"") != NULL);
}

static void test_header_future_without_error(void)
{
	struct opam_file *f = parse("opam-version: \"2.5\"\nname: \"x\"\n");

	CHECK(f != NULL);
	if (!f)
		return;
	CHECK(!f->from_future);
	CHECK_INT_EQ(f->count, 2);
	CHECK_INT_EQ(diags.count, 0);
}

static void test_header_known_format_errors(void)
{
	/* Errors are tolerated only for formats newer than 2.1, and "2.1.9" is format 2.1. */
	CHECK_STR_EQ(show_file("opam-version: \"2.1\"\nx: ]"), "error 2:4: expected a value, found ']'");
	CHECK_STR_EQ(show_file("opam-version: \"2.1.9\"\nx: ]"), "error 2:4: expected a value, found ']'");
	CHECK_STR_EQ(show_file("opam-version: \"2.0\"\nx: ]"), "error 2:4: expected a value, found ']'");
	CHECK_STR_EQ(show_file("x: ]"), "error 1:4: expected a value, found ']'");
	/* The header must be the first item: a later "2.5" does not make the file from the future. */
	CHECK_STR_EQ(show_file("x: 1\nopam-version: \"2.5\"\ny: ]"), "error 3:4: expected a value, found ']'");
	CHECK_STR_EQ(show_file("opam-version: 2.5\nx: ]"), "error 1:16: invalid token");
	/* An error inside the header itself is not tolerated. */
	CHECK_STR_EQ(show_file("opam-version: \"2.5"), "error 1:15: unterminated string");
}

static void test_header_future_duplicate(void)
{
	/* opam checks repeated opam-version fields after it tolerates errors, so this stays an error. */
	struct opam_file *f = parse("opam-version: \"2.5\"\nopam-version: \"2.5\"\n");

	CHECK(f == NULL);
	CHECK_INT_EQ(diags.errors, 1);
	CHECK_STR_EQ(show_error(),
		     "error 2:1: opam-version appears twice; a file in format 2.1 or later must state it once");
}

/* Printing */

static void test_print_all_bytes(void)
{
	struct strbuf text = { 0 };

	strbuf_adds(&text, "x: \"");
	for (int c = 0; c < 256; c++)
		strbuf_addf(&text, "\\%03d", c);
	strbuf_adds(&text, "\"");
	struct opam_file *f = parse(strbuf_str(&text));
	CHECK(f != NULL);
	if (f) {
		const struct value *v = f->items[0]->u.value;
		CHECK_INT_EQ(v->len, 256);
		for (int c = 0; c < 256 && v->len == 256; c++)
			CHECK_INT_EQ((unsigned char)v->u.str[c], c);
	}
	strbuf_release(&text);
}

static void test_print_simple_file(void)
{
	struct opam_file *f = parse("opam-version:\"2.0\" depends:[\"a\"{>=\"1\"}] url{src:\"u\"}");
	struct strbuf out = { 0 };

	CHECK(f != NULL);
	if (!f)
		return;
	opam_print_file(&out, f);
	CHECK_STR_EQ(strbuf_str(&out), "opam-version: \"2.0\"\ndepends: [\"a\" {>= \"1\"}]\nurl {\n  src: \"u\"\n}\n");
	strbuf_release(&out);
}

/* Parse, print, parse again, and check that both trees are equal. */
static bool round_trips(const struct parsed_input *in, struct strbuf *printed)
{
	struct arena first = { 0 }, second = { 0 };
	struct diag_list errors = { 0 };
	bool same = false;

	strbuf_reset(printed);
	if (in->is_value) {
		struct value *a = opam_parse_value(&first, "in", in->text, in->len, &errors);
		if (a) {
			opam_print_value(printed, a);
			struct value *b = opam_parse_value(&second, "out", strbuf_str(printed), (uint32_t)printed->len,
							   &errors);
			same = b && value_equal(a, b);
		}
	} else {
		struct opam_file *a = opam_parse(&first, "in", in->text, in->len, &errors);
		if (a) {
			opam_print_file(printed, a);
			struct opam_file *b = opam_parse(&second, "out", strbuf_str(printed), (uint32_t)printed->len,
							 &errors);
			same = b && opam_file_equal(a, b);
		}
	}
	diag_list_release(&errors);
	arena_release(&first);
	arena_release(&second);
	return same;
}

static void test_round_trip_all_inputs(void)
{
	struct strbuf printed = { 0 };

	CHECK(parsed_count > 100);
	for (size_t i = 0; i < parsed_count; i++) {
		if (round_trips(&parsed_inputs[i], &printed))
			continue;
		struct strbuf input = { 0 };
		show_bytes(&input, parsed_inputs[i].text, parsed_inputs[i].len > 200 ? 200 : parsed_inputs[i].len);
		fprintf(stderr, "%s: %s %s does not round-trip; printed as %.200s\n", test_current_name,
			parsed_inputs[i].is_value ? "value" : "file", strbuf_str(&input), strbuf_str(&printed));
		strbuf_release(&input);
		test_current_failed = true;
	}
	strbuf_release(&printed);
}

int main(void)
{
	RUN_TEST(test_lexer_punctuation);
	RUN_TEST(test_lexer_atoms);
	RUN_TEST(test_lexer_relops);
	RUN_TEST(test_lexer_logops_and_prefix);
	RUN_TEST(test_lexer_envops);
	RUN_TEST(test_lexer_invalid_characters);
	RUN_TEST(test_lexer_token_offsets);
	RUN_TEST(test_lexer_booleans_and_idents);
	RUN_TEST(test_lexer_idents);
	RUN_TEST(test_lexer_underscore_alone);
	RUN_TEST(test_lexer_integers);
	RUN_TEST(test_lexer_integer_range);
	RUN_TEST(test_lexer_integer_minimum);
	RUN_TEST(test_lexer_simple_escapes);
	RUN_TEST(test_lexer_decimal_escapes);
	RUN_TEST(test_lexer_hex_escapes);
	RUN_TEST(test_lexer_line_continuation);
	RUN_TEST(test_lexer_illegal_escapes);
	RUN_TEST(test_lexer_crlf_in_strings);
	RUN_TEST(test_lexer_triple_strings);
	RUN_TEST(test_lexer_block_comments);
	RUN_TEST(test_lexer_line_comments);
	RUN_TEST(test_lexer_unterminated);
	RUN_TEST(test_lexer_escape_before_eof);

	RUN_TEST(test_parse_atoms);
	RUN_TEST(test_precedence_or_and);
	RUN_TEST(test_precedence_prefix);
	RUN_TEST(test_prefix_before_prefix_relop);
	RUN_TEST(test_precedence_option);
	RUN_TEST(test_option_with_prefix_relops);
	RUN_TEST(test_relop_operands);
	RUN_TEST(test_relop_chain_at_field);
	RUN_TEST(test_envops);
	RUN_TEST(test_value_trailing_tokens);

	RUN_TEST(test_fields);
	RUN_TEST(test_sections);
	RUN_TEST(test_field_colon_trap);
	RUN_TEST(test_errors_at_eof);
	RUN_TEST(test_error_positions);
	RUN_TEST(test_unterminated_errors);
	RUN_TEST(test_unterminated_after_bad_escape);

	RUN_TEST(test_deep_nesting_rejected);
	RUN_TEST(test_deep_comment_nesting);
	RUN_TEST(test_nesting_within_limit);
	RUN_TEST(test_long_chains_rejected);
	RUN_TEST(test_wide_values_accepted);

	RUN_TEST(test_empty_files);
	RUN_TEST(test_invalid_bytes);
	RUN_TEST(test_random_bytes);

	RUN_TEST(test_header_once_in_2_1);
	RUN_TEST(test_header_later_2_1_in_2_0_file);
	RUN_TEST(test_header_future_syntax_error);
	RUN_TEST(test_header_future_without_error);
	RUN_TEST(test_header_known_format_errors);
	RUN_TEST(test_header_future_duplicate);

	RUN_TEST(test_print_all_bytes);
	RUN_TEST(test_print_simple_file);
	RUN_TEST(test_round_trip_all_inputs);

	for (size_t i = 0; i < parsed_count; i++)
		free(parsed_inputs[i].text);
	free(parsed_inputs);
	reset_state();
	strbuf_release(&shown);
	return test_summary();
}
