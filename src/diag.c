#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Source lines longer than this are cut around the caret so a minified or binary file cannot flood the output. */
#define MAX_SHOWN_LINE 160

void diag_locate(const char *text, uint32_t text_len, uint32_t offset, uint32_t *line, uint32_t *column)
{
	uint32_t l = 1, line_start = 0;

	if (offset > text_len)
		offset = text_len;
	for (uint32_t i = 0; i < offset; i++) {
		if (text[i] == '\n') {
			l++;
			line_start = i + 1;
		}
	}
	*line = l;
	*column = offset - line_start + 1;
}

/* Copy the line around OFFSET, replacing control bytes so the terminal shows what the parser saw. */
static char *copy_source_line(const char *text, uint32_t text_len, uint32_t offset, uint32_t *caret)
{
	uint32_t start = offset, end = offset;

	if (offset > text_len)
		offset = start = end = text_len;
	while (start > 0 && text[start - 1] != '\n')
		start--;
	while (end < text_len && text[end] != '\n')
		end++;
	if (offset - start > MAX_SHOWN_LINE / 2)
		start = offset - MAX_SHOWN_LINE / 2;
	if (end - start > MAX_SHOWN_LINE)
		end = start + MAX_SHOWN_LINE;

	char *copy = xmalloc(end - start + 1);
	for (uint32_t i = start; i < end; i++) {
		unsigned char c = (unsigned char)text[i];
		copy[i - start] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
	}
	copy[end - start] = '\0';
	*caret = offset - start;
	return copy;
}

void diag_add(struct diag_list *list, enum severity severity, const char *path, const char *text, uint32_t text_len,
	      uint32_t offset, const char *fmt, ...)
{
	if (list->count == list->capacity) {
		list->capacity = list->capacity ? list->capacity * 2 : 16;
		list->items = xreallocarray(list->items, list->capacity, sizeof(*list->items));
	}

	struct diag *d = &list->items[list->count++];
	memset(d, 0, sizeof(*d));
	d->severity = severity;
	d->path = xstrdup(path);

	struct strbuf sb = { 0 };
	va_list ap;
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	d->message = strbuf_detach(&sb);

	if (text && offset != NO_POSITION) {
		diag_locate(text, text_len, offset, &d->line, &d->column);
		d->source_line = copy_source_line(text, text_len, offset, &d->caret);
	}

	if (severity == SEVERITY_ERROR)
		list->errors++;
	else
		list->warnings++;
}

void diag_append(struct diag_list *to, struct diag_list *from)
{
	for (size_t i = 0; i < from->count; i++) {
		if (to->count == to->capacity) {
			to->capacity = to->capacity ? to->capacity * 2 : 16;
			to->items = xreallocarray(to->items, to->capacity, sizeof(*to->items));
		}
		to->items[to->count++] = from->items[i];
	}
	to->errors += from->errors;
	to->warnings += from->warnings;
	free(from->items);
	memset(from, 0, sizeof(*from));
}

void diag_print(FILE *out, const struct diag *d)
{
	const char *label = d->severity == SEVERITY_ERROR ? "error" : "warning";

	if (d->line == 0) {
		fprintf(out, "%s: %s: %s\n", d->path, label, d->message);
		return;
	}
	fprintf(out, "%s:%u:%u: %s: %s\n", d->path, d->line, d->column, label, d->message);
	if (!d->source_line)
		return;

	fprintf(out, "  %s\n  ", d->source_line);
	for (size_t i = 0; i < d->caret && d->source_line[i]; i++)
		fputc(d->source_line[i] == '\t' ? '\t' : ' ', out);
	fputs("^\n", out);
}

void diag_print_all(FILE *out, const struct diag_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		diag_print(out, &list->items[i]);
}

void diag_list_release(struct diag_list *list)
{
	for (size_t i = 0; i < list->count; i++) {
		free(list->items[i].path);
		free(list->items[i].message);
		free(list->items[i].source_line);
	}
	free(list->items);
	memset(list, 0, sizeof(*list));
}
