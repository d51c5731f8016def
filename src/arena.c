#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Blocks of 1 MiB keep malloc calls rare; larger requests get a block of their own. */
#define ARENA_BLOCK_SIZE (1u << 20)

struct arena_block {
	struct arena_block *next;
	size_t size;
	alignas(max_align_t) unsigned char data[];
};

void *arena_alloc(struct arena *a, size_t size)
{
	size_t align = alignof(max_align_t);
	size_t rounded = (size + align - 1) & ~(align - 1);

	if (rounded < size)
		die("arena allocation of %zu bytes overflows", size);
	if (!a->head || a->head->size - a->used < rounded) {
		size_t block = rounded > ARENA_BLOCK_SIZE ? rounded : ARENA_BLOCK_SIZE;
		struct arena_block *b = xmalloc(sizeof(*b) + block);
		b->size = block;
		b->next = a->head;
		a->head = b;
		a->used = 0;
		a->total += block;
	}

	void *p = a->head->data + a->used;
	a->used += rounded;
	return p;
}

void *arena_calloc(struct arena *a, size_t count, size_t size)
{
	if (size && count > SIZE_MAX / size)
		die("arena allocation of %zu x %zu bytes overflows", count, size);
	void *p = arena_alloc(a, count * size);
	memset(p, 0, count * size);
	return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t len)
{
	char *p = arena_alloc(a, len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

void arena_release(struct arena *a)
{
	struct arena_block *b = a->head;

	while (b) {
		struct arena_block *next = b->next;
		free(b);
		b = next;
	}
	a->head = NULL;
	a->used = a->total = 0;
}
