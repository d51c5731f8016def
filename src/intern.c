#include "intern.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* FNV-1a: short keys, good spread, no dependencies. */
static uint32_t hash_string(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

static uint32_t *find_slot(const struct intern_table *t, const char *s)
{
	uint32_t mask = t->slot_count - 1;

	for (uint32_t i = hash_string(s) & mask;; i = (i + 1) & mask) {
		uint32_t *slot = &t->slots[i];
		if (*slot == 0 || strcmp(t->strings[*slot - 1], s) == 0)
			return slot;
	}
}

static void grow(struct intern_table *t)
{
	uint32_t old_count = t->slot_count;
	uint32_t *old = t->slots;

	t->slot_count = old_count ? old_count * 2 : 1024;
	t->slots = xcalloc(t->slot_count, sizeof(*t->slots));
	for (uint32_t i = 0; i < old_count; i++)
		if (old[i])
			*find_slot(t, t->strings[old[i] - 1]) = old[i];
	free(old);
}

uint32_t intern_find(const struct intern_table *t, const char *s)
{
	if (!t->slot_count)
		return UINT32_MAX;

	uint32_t slot = *find_slot(t, s);
	return slot ? slot - 1 : UINT32_MAX;
}

uint32_t intern(struct intern_table *t, const char *s)
{
	/* Keep the load factor under one half so probes stay short. */
	if ((t->count + 1) * 2 > t->slot_count)
		grow(t);

	uint32_t *slot = find_slot(t, s);
	if (*slot)
		return *slot - 1;

	if ((t->count & (t->count - 1)) == 0)
		t->strings = xreallocarray(t->strings, t->count ? t->count * 2 : 1, sizeof(*t->strings));
	t->strings[t->count] = arena_strdup(&t->arena, s);
	*slot = ++t->count;
	return t->count - 1;
}

void intern_release(struct intern_table *t)
{
	arena_release(&t->arena);
	free(t->strings);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}
