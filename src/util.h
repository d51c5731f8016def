/* Checked allocation, fatal errors and a growable string buffer. */
#ifndef OBAKE_UTIL_H
#define OBAKE_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Set by main to the program name used in messages. */
extern const char *program_name;

/* Print "obake: MESSAGE" and exit with status 2. A format ending in ':' appends strerror(errno). */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "obake: warning: MESSAGE" to stderr. A format ending in ':' appends strerror(errno). */
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Store a formatted message in *ERROR (a new string for the caller to free) and return -1. */
int set_error(char **error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Allocation that dies on exhaustion instead of returning NULL. */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t len);

/* Format into a newly allocated string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable, always NUL-terminated byte buffer. */
struct strbuf {
	char *data;      /* the bytes, NUL-terminated; NULL before the first append */
	size_t len;      /* bytes used, not counting the NUL */
	size_t capacity; /* bytes allocated */
};

void strbuf_grow(struct strbuf *sb, size_t extra);
void strbuf_add(struct strbuf *sb, const char *data, size_t len);
void strbuf_addc(struct strbuf *sb, char c);
void strbuf_adds(struct strbuf *sb, const char *s);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Return the contents (never NULL) and keep ownership in the buffer. */
const char *strbuf_str(const struct strbuf *sb);
/* Hand the contents to the caller and reset the buffer. */
char *strbuf_detach(struct strbuf *sb);
void strbuf_reset(struct strbuf *sb);
void strbuf_release(struct strbuf *sb);

/* Read a whole file into a new NUL-terminated buffer; return -1 with errno set on failure. */
int read_file(const char *path, char **data, size_t *len);

#endif
