/* Tokenizer for the opam file format (longest match; on a tie the earlier rule of opam's lexer wins). */
#ifndef OBAKE_LEXER_H
#define OBAKE_LEXER_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"

enum token_kind {
	TOKEN_EOF,
	TOKEN_ERROR,
	TOKEN_STRING,
	TOKEN_IDENT,
	TOKEN_BOOL,
	TOKEN_INT,
	TOKEN_COLON,
	TOKEN_LBRACE,
	TOKEN_RBRACE,
	TOKEN_LBRACKET,
	TOKEN_RBRACKET,
	TOKEN_LPAREN,
	TOKEN_RPAREN,
	TOKEN_RELOP, /* op: enum relop */
	TOKEN_AND,
	TOKEN_OR,
	TOKEN_PFXOP, /* op: enum pfxop */
	TOKEN_ENVOP, /* op: enum envop */
};

struct token {
	enum token_kind kind;
	uint8_t op;
	uint32_t start;  /* byte offset of the first byte */
	uint32_t end;    /* byte offset past the last byte */
	const char *str; /* STRING: unescaped bytes; IDENT: the name (both NUL-terminated) */
	uint32_t len;    /* bytes in str */
	bool boolean;
	int64_t integer;
};

struct lexer {
	const char *text;
	uint32_t len;
	uint32_t pos;
	struct arena *arena; /* where unescaped strings and idents are copied */
	const char *error;   /* message of the last TOKEN_ERROR (static or in the arena) */
	uint32_t error_pos;  /* where that error is */
};

void lexer_init(struct lexer *lx, const char *text, uint32_t len, struct arena *arena);
/* Read the next token; on TOKEN_ERROR, lx->error and lx->error_pos describe the problem. */
enum token_kind lexer_next(struct lexer *lx, struct token *tok);
/* Name a token kind for messages, such as "']'" or "a string". */
const char *token_kind_name(enum token_kind kind);

#endif
