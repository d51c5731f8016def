/* Diagnostics: errors and warnings located in a file, collected so that one bad file never stops a load. */
#ifndef OBAKE_DIAG_H
#define OBAKE_DIAG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum severity { SEVERITY_WARNING, SEVERITY_ERROR };

/* NO_POSITION marks a diagnostic about a whole file or directory. */
#define NO_POSITION UINT32_MAX

struct diag {
	enum severity severity;
	char *path;        /* owned */
	char *message;     /* owned */
	uint32_t line;     /* 1-based, 0 when NO_POSITION */
	uint32_t column;   /* 1-based byte column */
	char *source_line; /* owned excerpt of the offending line, or NULL */
	uint32_t caret;    /* byte index of the offending byte in source_line */
};

struct diag_list {
	struct diag *items;
	size_t count;
	size_t capacity;
	size_t errors;
	size_t warnings;
};

/* Add a diagnostic. TEXT and OFFSET locate it (OFFSET may be NO_POSITION and TEXT NULL). */
void diag_add(struct diag_list *list, enum severity severity, const char *path, const char *text, uint32_t text_len,
	      uint32_t offset, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
/* Move every diagnostic of FROM to the end of TO. */
void diag_append(struct diag_list *to, struct diag_list *from);
/* Print one diagnostic as `path:line:col: severity: message`, then the source line and a caret. */
void diag_print(FILE *out, const struct diag *d);
void diag_print_all(FILE *out, const struct diag_list *list);
void diag_list_release(struct diag_list *list);

/* Compute the 1-based line and column of OFFSET in TEXT. */
void diag_locate(const char *text, uint32_t text_len, uint32_t offset, uint32_t *line, uint32_t *column);

#endif
