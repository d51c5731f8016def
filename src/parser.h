/* Parser for opam files: text to syntax tree, following opam-file-format's grammar and precedences. */
#ifndef OBAKE_PARSER_H
#define OBAKE_PARSER_H

#include <stdint.h>

#include "arena.h"
#include "diag.h"
#include "opam_ast.h"

/* Values nested deeper than this are rejected, so hostile input cannot exhaust the stack. */
#define PARSER_MAX_DEPTH 1000

/* Largest file the parser accepts: positions are 32-bit byte offsets. */
#define PARSER_MAX_FILE_SIZE (UINT32_MAX - 1)

/*
 * Parse TEXT (LEN bytes) read from PATH into a tree allocated in ARENA. TEXT must stay alive as long
 * as the tree. Returns NULL after adding an error to DIAGS when the file does not parse. PATH and
 * TEXT are stored in the result for later messages.
 */
struct opam_file *opam_parse(struct arena *arena, const char *path, const char *text, uint32_t len,
			     struct diag_list *diags);

/* Parse a single value, as found after `field:`; used by tests and command-line filters. */
struct value *opam_parse_value(struct arena *arena, const char *path, const char *text, uint32_t len,
			       struct diag_list *diags);

#endif
