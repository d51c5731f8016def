/* String interning: each distinct string is stored once and gets a dense integer id. */
#ifndef OBAKE_INTERN_H
#define OBAKE_INTERN_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

struct intern_table {
	struct arena arena;   /* the strings */
	const char **strings; /* id -> string */
	uint32_t count;
	uint32_t *slots;     /* open addressing: id + 1, or 0 for an empty slot */
	uint32_t slot_count; /* a power of two */
};

/* Return the id of S, adding it if new. */
uint32_t intern(struct intern_table *t, const char *s);
/* Return the id of S, or UINT32_MAX if S was never interned. */
uint32_t intern_find(const struct intern_table *t, const char *s);
static inline const char *intern_string(const struct intern_table *t, uint32_t id)
{
	return t->strings[id];
}
void intern_release(struct intern_table *t);

#endif
