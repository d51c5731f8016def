/* A bump allocator: many small allocations freed together. */
#ifndef OBAKE_ARENA_H
#define OBAKE_ARENA_H

#include <stddef.h>

struct arena_block;

struct arena {
	struct arena_block *head; /* the block being filled; older blocks follow */
	size_t used;              /* bytes used in head */
	size_t total;             /* bytes allocated in all blocks, for reports */
};

/* Allocate SIZE bytes aligned for any object; never fails (dies on exhaustion). */
void *arena_alloc(struct arena *a, size_t size);
/* Allocate zeroed memory. */
void *arena_calloc(struct arena *a, size_t count, size_t size);
/* Copy LEN bytes into the arena and NUL-terminate them. */
char *arena_strndup(struct arena *a, const char *s, size_t len);
char *arena_strdup(struct arena *a, const char *s);
/* Free every block at once. */
void arena_release(struct arena *a);

#endif
