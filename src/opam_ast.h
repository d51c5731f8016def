/* Syntax tree of an opam file, as opam-file-format defines it. Positions are byte offsets into the file's text. */
#ifndef OBAKE_OPAM_AST_H
#define OBAKE_OPAM_AST_H

#include <stdbool.h>
#include <stdint.h>

enum value_kind {
	VALUE_BOOL,
	VALUE_INT,
	VALUE_STRING,
	VALUE_IDENT,
	VALUE_RELOP,        /* atom RELOP atom */
	VALUE_PREFIX_RELOP, /* RELOP atom, as in {>= "1.0"} */
	VALUE_LOGOP,        /* value & value, value | value */
	VALUE_PFXOP,        /* !value, ?value */
	VALUE_ENVOP,        /* atom ENVOP atom, as in [PATH += "x"] */
	VALUE_LIST,         /* [ values ] */
	VALUE_GROUP,        /* ( values ) */
	VALUE_OPTION,       /* value { values } */
};

/* `~` parses as RELOP_GEQ, as opam does. */
enum relop { RELOP_EQ, RELOP_NEQ, RELOP_GEQ, RELOP_GT, RELOP_LEQ, RELOP_LT };
enum logop { LOGOP_AND, LOGOP_OR };
enum pfxop { PFXOP_NOT, PFXOP_DEFINED };
enum envop { ENVOP_EQ, ENVOP_PLUS_EQ, ENVOP_EQ_PLUS, ENVOP_EQ_PLUS_EQ, ENVOP_COLON_EQ, ENVOP_EQ_COLON };

struct value {
	uint8_t kind;    /* enum value_kind */
	uint8_t op;      /* enum relop, logop, pfxop or envop for operator kinds */
	uint16_t height; /* 1 for an atom, else 1 + the tallest child; bounded by the parser */
	uint32_t pos;    /* byte offset of the value's first token */
	uint32_t len;    /* STRING, IDENT: bytes in str; LIST, GROUP, OPTION: count of items */
	union {
		bool boolean;
		int64_t integer;
		const char *str; /* STRING (unescaped) and IDENT; NUL-terminated, may contain NUL for STRING */
		struct {
			struct value *lhs, *rhs;
		} pair;               /* RELOP, LOGOP, ENVOP */
		struct value *arg;    /* PREFIX_RELOP, PFXOP */
		struct value **items; /* LIST, GROUP */
		struct {
			struct value *subject;
			struct value **items;
		} option; /* OPTION */
	} u;
};

enum item_kind { ITEM_FIELD, ITEM_SECTION };

struct item {
	uint8_t kind;     /* enum item_kind */
	uint32_t pos;     /* byte offset of the field or section name */
	const char *name; /* field name, or section kind such as "url" */
	union {
		struct value *value; /* FIELD */
		struct {
			const char *label; /* "name" of `kind "name" { }`, or NULL */
			struct item **items;
			uint32_t count;
		} section;
	} u;
};

struct opam_file {
	const char *path; /* for messages */
	const char *text; /* the bytes parsed, kept for messages */
	uint32_t text_len;
	struct item **items;
	uint32_t count;
	/* The header names a format newer than 2.1 and the rest failed to parse: opam keeps only the header. */
	bool from_future;
};

/* Compare two trees, ignoring positions. */
bool value_equal(const struct value *a, const struct value *b);
bool opam_file_equal(const struct opam_file *a, const struct opam_file *b);
/* Return the first field called NAME among ITEMS, or NULL. */
const struct item *opam_find_field(const struct item *const *items, uint32_t count, const char *name);

#endif
