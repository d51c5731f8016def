/* Printer for opam syntax trees. Parsing the output gives back an equal tree. */
#ifndef OBAKE_PRINTER_H
#define OBAKE_PRINTER_H

#include "opam_ast.h"
#include "util.h"

void opam_print_file(struct strbuf *out, const struct opam_file *f);
void opam_print_value(struct strbuf *out, const struct value *v);
/* Print a string literal with the escapes the lexer reads back. */
void opam_print_string(struct strbuf *out, const char *s, uint32_t len);
const char *relop_symbol(enum relop op);

#endif
