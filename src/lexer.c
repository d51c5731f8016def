#include "lexer.h"

#include <string.h>

#include "opam_ast.h"

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Characters of an identifier component: letters, digits, '_' and '-'. */
static bool is_ident_char(char c)
{
	return is_alpha(c) || is_digit(c) || c == '_' || c == '-';
}

void lexer_init(struct lexer *lx, const char *text, uint32_t len, struct arena *arena)
{
	memset(lx, 0, sizeof(*lx));
	lx->text = text;
	lx->len = len;
	lx->arena = arena;
}

static enum token_kind fail(struct lexer *lx, uint32_t pos, const char *message)
{
	lx->error = message;
	lx->error_pos = pos;
	return TOKEN_ERROR;
}

static int peek(const struct lexer *lx, uint32_t ahead)
{
	uint32_t at = lx->pos + ahead;

	return at < lx->len ? (unsigned char)lx->text[at] : -1;
}

/* Skip blanks and comments; return false after setting an error for an unterminated comment. */
static bool skip_blanks(struct lexer *lx)
{
	while (lx->pos < lx->len) {
		char c = lx->text[lx->pos];

		if (c == ' ' || c == '\t' || c == '\n') {
			lx->pos++;
		} else if (c == '\r' && peek(lx, 1) == '\n') {
			lx->pos += 2;
		} else if (c == '#') {
			while (lx->pos < lx->len && lx->text[lx->pos] != '\n')
				lx->pos++;
		} else if (c == '(' && peek(lx, 1) == '*') {
			/* Block comments nest; quotes inside them are not special. */
			uint32_t start = lx->pos;
			unsigned depth = 1;
			lx->pos += 2;
			while (depth > 0) {
				if (lx->pos >= lx->len) {
					fail(lx, start, "unterminated comment");
					return false;
				}
				if (lx->text[lx->pos] == '*' && peek(lx, 1) == ')') {
					depth--;
					lx->pos += 2;
				} else if (lx->text[lx->pos] == '(' && peek(lx, 1) == '*') {
					depth++;
					lx->pos += 2;
				} else {
					lx->pos++;
				}
			}
		} else {
			break;
		}
	}
	return true;
}

static int hex_value(char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decode the escape whose backslash is at lx->pos. Appends the byte to OUT (or nothing for a line
 * continuation) and advances past the escape; returns false on an illegal escape.
 */
static bool read_escape(struct lexer *lx, char *out, uint32_t *out_len)
{
	uint32_t at = lx->pos + 1;
	const char *t = lx->text;

	if (at >= lx->len)
		return false;

	char c = t[at];
	if (c == '\n' || (c == '\r' && at + 1 < lx->len && t[at + 1] == '\n')) {
		at += c == '\r' ? 2 : 1;
		while (at < lx->len && (t[at] == ' ' || t[at] == '\t'))
			at++;
		lx->pos = at;
		return true;
	}

	char decoded;
	switch (c) {
	case '\\':
	case '"':
	case '\'':
	case ' ':
		decoded = c;
		at++;
		break;
	case 'n':
		decoded = '\n';
		at++;
		break;
	case 'r':
		decoded = '\r';
		at++;
		break;
	case 't':
		decoded = '\t';
		at++;
		break;
	case 'b':
		decoded = '\b';
		at++;
		break;
	case 'x': {
		int hi = at + 1 < lx->len ? hex_value(t[at + 1]) : -1;
		int lo = at + 2 < lx->len ? hex_value(t[at + 2]) : -1;
		if (hi < 0 || lo < 0)
			return false;
		decoded = (char)(hi * 16 + lo);
		at += 3;
		break;
	}
	default:
		if (at + 2 >= lx->len || !is_digit(t[at]) || !is_digit(t[at + 1]) || !is_digit(t[at + 2]))
			return false;
		int code = (t[at] - '0') * 100 + (t[at + 1] - '0') * 10 + (t[at + 2] - '0');
		if (code > 255)
			return false;
		decoded = (char)code;
		at += 3;
		break;
	}
	out[(*out_len)++] = decoded;
	lx->pos = at;
	return true;
}

/* Read a string whose opening quote(s) end at lx->pos. TRIPLE selects the `"""` form. */
static enum token_kind read_string(struct lexer *lx, struct token *tok, bool triple)
{
	uint32_t body = lx->pos;
	uint32_t end = body;
	bool plain = true;

	/* First pass: find the end and whether the body needs decoding. */
	for (;;) {
		if (end >= lx->len)
			return fail(lx, tok->start, "unterminated string");
		char c = lx->text[end];
		if (c == '"' &&
		    (!triple || (end + 2 < lx->len && lx->text[end + 1] == '"' && lx->text[end + 2] == '"')))
			break;
		if (c == '\\') {
			/* Escapes are checked where they stand, as opam's lexer decodes them while reading. */
			uint32_t saved = lx->pos;
			char scratch[1];
			uint32_t unused = 0;
			lx->pos = end;
			if (!read_escape(lx, scratch, &unused))
				return fail(lx, end, "illegal escape sequence");
			end = lx->pos;
			lx->pos = saved;
			plain = false;
			continue;
		}
		if (c == '\r')
			plain = false;
		end++;
	}

	if (plain) {
		/* Most strings have no escapes and are copied as they are, to add the NUL. */
		tok->str = arena_strndup(lx->arena, lx->text + body, end - body);
		tok->len = end - body;
	} else {
		char *out = arena_alloc(lx->arena, end - body + 1);
		uint32_t n = 0;
		lx->pos = body;
		while (lx->pos < end) {
			char c = lx->text[lx->pos];
			if (c == '\\') {
				uint32_t at = lx->pos;
				if (!read_escape(lx, out, &n))
					return fail(lx, at, "illegal escape sequence");
			} else if (c == '\r' && lx->pos + 1 < end && lx->text[lx->pos + 1] == '\n') {
				out[n++] = '\n';
				lx->pos += 2;
			} else {
				out[n++] = c;
				lx->pos++;
			}
		}
		out[n] = '\0';
		tok->str = out;
		tok->len = n;
	}

	lx->pos = end + (triple ? 3 : 1);
	tok->kind = TOKEN_STRING;
	return TOKEN_STRING;
}

/* Length of the longest identifier at lx->pos: (id|_)(+(id|_))*(:id)? with id an ident-char run holding a letter. */
static uint32_t ident_length(const struct lexer *lx)
{
	const char *t = lx->text;
	uint32_t at = lx->pos;
	uint32_t matched = 0;

	for (bool first = true;; first = false) {
		uint32_t start = first ? at : at + 1;
		if (!first && (at >= lx->len || t[at] != '+'))
			break;

		uint32_t end = start;
		bool has_alpha = false;
		while (end < lx->len && is_ident_char(t[end])) {
			has_alpha |= is_alpha(t[end]);
			end++;
		}
		if (has_alpha) {
			matched = at = end;
			continue;
		}
		/* A run without a letter can still start with the one-character component `_`. */
		if (end > start && t[start] == '_') {
			matched = start + 1;
			at = start + 1;
			if (end > start + 1)
				break;
			continue;
		}
		break;
	}
	if (matched == 0)
		return 0;

	/* Optional `:id` suffix, as in `ocaml:version`. */
	if (matched < lx->len && t[matched] == ':') {
		uint32_t end = matched + 1;
		bool has_alpha = false;
		while (end < lx->len && is_ident_char(t[end])) {
			has_alpha |= is_alpha(t[end]);
			end++;
		}
		if (has_alpha)
			matched = end;
	}
	return matched - lx->pos;
}

/* Length of the match of -?[0-9_]+ at lx->pos, or 0. */
static uint32_t int_length(const struct lexer *lx)
{
	uint32_t at = lx->pos;

	if (at < lx->len && lx->text[at] == '-')
		at++;
	uint32_t digits = at;
	while (at < lx->len && (is_digit(lx->text[at]) || lx->text[at] == '_'))
		at++;
	return at > digits ? at - lx->pos : 0;
}

static bool has_keyword(const struct lexer *lx, const char *word)
{
	size_t n = strlen(word);

	return lx->len - lx->pos >= n && memcmp(lx->text + lx->pos, word, n) == 0;
}

/* Convert an INT token as OCaml's int_of_string does: a digit first, then digits and '_', within 63 bits. */
static enum token_kind read_int(struct lexer *lx, struct token *tok, uint32_t length)
{
	const char *p = lx->text + lx->pos;
	const char *end = p + length;
	bool negative = *p == '-';
	/* OCaml's ints on 64-bit hosts span -2^62 .. 2^62 - 1; the magnitude may reach 2^62 when negative. */
	const uint64_t limit = negative ? (uint64_t)1 << 62 : ((uint64_t)1 << 62) - 1;
	uint64_t value = 0;

	if (negative)
		p++;
	if (!is_digit(*p))
		return fail(lx, lx->pos, "invalid integer");
	for (; p < end; p++) {
		if (*p == '_')
			continue;
		unsigned digit = (unsigned)(*p - '0');
		if (value > (limit - digit) / 10)
			return fail(lx, lx->pos, "integer out of range");
		value = value * 10 + digit;
	}
	tok->kind = TOKEN_INT;
	tok->integer = negative ? -(int64_t)value : (int64_t)value;
	lx->pos += length;
	return TOKEN_INT;
}

/* Tokens made of the characters that also start words: identifiers, integers and booleans. */
static enum token_kind read_word(struct lexer *lx, struct token *tok)
{
	uint32_t ident = ident_length(lx);
	uint32_t integer = int_length(lx);
	uint32_t keyword = has_keyword(lx, "true") ? 4 : has_keyword(lx, "false") ? 5 : 0;

	/* Longest match; on a tie the booleans come first, then integers, then identifiers. */
	if (keyword && keyword >= ident && keyword >= integer) {
		tok->kind = TOKEN_BOOL;
		tok->boolean = keyword == 4;
		lx->pos += keyword;
		return TOKEN_BOOL;
	}
	if (integer && integer >= ident)
		return read_int(lx, tok, integer);
	if (ident) {
		tok->kind = TOKEN_IDENT;
		tok->str = arena_strndup(lx->arena, lx->text + lx->pos, ident);
		tok->len = ident;
		lx->pos += ident;
		return TOKEN_IDENT;
	}
	return fail(lx, lx->pos, "invalid token");
}

/* Operators: relational, environment update, logical and prefix. Longest match first. */
static enum token_kind read_operator(struct lexer *lx, struct token *tok)
{
	int c0 = peek(lx, 0), c1 = peek(lx, 1), c2 = peek(lx, 2);

	if (c0 == '=' && (c1 == '+' || c1 == ':')) {
		if (c2 == '=') {
			if (c1 == ':')
				return fail(lx, lx->pos, "'=:=' is not a valid environment update operator");
			lx->pos += 3;
			tok->kind = TOKEN_ENVOP;
			tok->op = ENVOP_EQ_PLUS_EQ;
			return TOKEN_ENVOP;
		}
		lx->pos += 2;
		tok->kind = TOKEN_ENVOP;
		tok->op = c1 == '+' ? ENVOP_EQ_PLUS : ENVOP_EQ_COLON;
		return TOKEN_ENVOP;
	}
	if ((c0 == '+' || c0 == ':') && c1 == '=') {
		lx->pos += 2;
		tok->kind = TOKEN_ENVOP;
		tok->op = c0 == '+' ? ENVOP_PLUS_EQ : ENVOP_COLON_EQ;
		return TOKEN_ENVOP;
	}

	tok->kind = TOKEN_RELOP;
	switch (c0) {
	case '=':
		tok->op = RELOP_EQ;
		lx->pos += 1;
		return TOKEN_RELOP;
	case '~':
		tok->op = RELOP_GEQ;
		lx->pos += 1;
		return TOKEN_RELOP;
	case '<':
		tok->op = c1 == '=' ? RELOP_LEQ : RELOP_LT;
		lx->pos += c1 == '=' ? 2 : 1;
		return TOKEN_RELOP;
	case '>':
		tok->op = c1 == '=' ? RELOP_GEQ : RELOP_GT;
		lx->pos += c1 == '=' ? 2 : 1;
		return TOKEN_RELOP;
	case '!':
		if (c1 == '=') {
			tok->op = RELOP_NEQ;
			lx->pos += 2;
			return TOKEN_RELOP;
		}
		tok->kind = TOKEN_PFXOP;
		tok->op = PFXOP_NOT;
		lx->pos += 1;
		return TOKEN_PFXOP;
	case '?':
		tok->kind = TOKEN_PFXOP;
		tok->op = PFXOP_DEFINED;
		lx->pos += 1;
		return TOKEN_PFXOP;
	case '&':
		tok->kind = TOKEN_AND;
		lx->pos += 1;
		return TOKEN_AND;
	case '|':
		tok->kind = TOKEN_OR;
		lx->pos += 1;
		return TOKEN_OR;
	default: return fail(lx, lx->pos, "invalid token");
	}
}

enum token_kind lexer_next(struct lexer *lx, struct token *tok)
{
	memset(tok, 0, sizeof(*tok));
	if (!skip_blanks(lx)) {
		tok->kind = TOKEN_ERROR;
		return TOKEN_ERROR;
	}

	tok->start = lx->pos;
	enum token_kind kind;
	if (lx->pos >= lx->len) {
		kind = TOKEN_EOF;
	} else {
		char c = lx->text[lx->pos];
		switch (c) {
		case ':':
			/* `:=` is an operator; a lone ':' separates a field from its value. */
			if (peek(lx, 1) == '=') {
				kind = read_operator(lx, tok);
				break;
			}
			lx->pos++;
			kind = TOKEN_COLON;
			break;
		case '{':
			lx->pos++;
			kind = TOKEN_LBRACE;
			break;
		case '}':
			lx->pos++;
			kind = TOKEN_RBRACE;
			break;
		case '[':
			lx->pos++;
			kind = TOKEN_LBRACKET;
			break;
		case ']':
			lx->pos++;
			kind = TOKEN_RBRACKET;
			break;
		case '(':
			lx->pos++;
			kind = TOKEN_LPAREN;
			break;
		case ')':
			lx->pos++;
			kind = TOKEN_RPAREN;
			break;
		case '"': {
			bool triple = peek(lx, 1) == '"' && peek(lx, 2) == '"';
			lx->pos += triple ? 3 : 1;
			kind = read_string(lx, tok, triple);
			break;
		}
		default:
			if (is_ident_char(c))
				kind = read_word(lx, tok);
			else
				kind = read_operator(lx, tok);
			break;
		}
	}

	tok->kind = kind;
	tok->end = lx->pos;
	return kind;
}

const char *token_kind_name(enum token_kind kind)
{
	switch (kind) {
	case TOKEN_EOF: return "end of file";
	case TOKEN_ERROR: return "an invalid token";
	case TOKEN_STRING: return "a string";
	case TOKEN_IDENT: return "an identifier";
	case TOKEN_BOOL: return "a boolean";
	case TOKEN_INT: return "an integer";
	case TOKEN_COLON: return "':'";
	case TOKEN_LBRACE: return "'{'";
	case TOKEN_RBRACE: return "'}'";
	case TOKEN_LBRACKET: return "'['";
	case TOKEN_RBRACKET: return "']'";
	case TOKEN_LPAREN: return "'('";
	case TOKEN_RPAREN: return "')'";
	case TOKEN_RELOP: return "a comparison operator";
	case TOKEN_AND: return "'&'";
	case TOKEN_OR: return "'|'";
	case TOKEN_PFXOP: return "'!' or '?'";
	case TOKEN_ENVOP: return "an environment update operator";
	}
	return "a token";
}
