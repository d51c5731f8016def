#include "depexts.h"

#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "util.h"

/* Add the system packages of one depexts entry, `["pkg" ...] {filter}`, when its filter holds. */
static void add_entry(struct name_set *set, const struct value *entry, const struct filter_env *env,
		      struct arena *scratch)
{
	const struct value *list = entry;

	if (entry->kind == VALUE_OPTION) {
		list = entry->u.option.subject;
		if (entry->len == 1 && !filter_eval_bool(entry->u.option.items[0], env, scratch, false))
			return;
	}
	for (uint32_t k = 0; list->kind == VALUE_LIST && k < list->len; k++)
		if (list->u.items[k]->kind == VALUE_STRING)
			intern(&set->table, list->u.items[k]->u.str);
}

void depexts_add(struct name_set *set, const struct package *p, const struct variables *globals)
{
	const struct value *d = p->depexts;
	struct arena scratch = { 0 };

	if (!d)
		return;
	struct filter_env env = { globals, p->name, p->version, NULL };
	/* A list of entries, or one entry that opam reads as a list of one. */
	bool single = d->kind == VALUE_OPTION ||
		      (d->kind == VALUE_LIST && d->len > 0 && d->u.items[0]->kind == VALUE_STRING);
	for (uint32_t e = 0; e < (single ? 1 : d->len); e++)
		add_entry(set, single ? d : d->u.items[e], &env, &scratch);
	arena_release(&scratch);
}

/* Add each name of a dpkg "Provides:" value ("a, b (= 1.0), c") to SET. */
static void add_provided(struct name_set *set, const char *value, size_t len)
{
	char *copy = xstrndup(value, len);

	for (char *item = strtok(copy, ","); item; item = strtok(NULL, ",")) {
		item += strspn(item, " \t");
		item[strcspn(item, " \t(")] = '\0';
		if (*item)
			intern(&set->table, item);
	}
	free(copy);
}

/* Add the names of one stanza of the status file, [START, END), when it is installed. */
static void add_stanza(struct name_set *set, const char *start, const char *end)
{
	const char *package = NULL, *provides = NULL;
	size_t package_len = 0, provides_len = 0;
	bool installed = false;

	for (const char *line = start; line < end;) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			eol = end;
		size_t len = (size_t)(eol - line);
		if (len > 9 && strncmp(line, "Package: ", 9) == 0) {
			package = line + 9;
			package_len = len - 9;
		} else if (len > 10 && strncmp(line, "Provides: ", 10) == 0) {
			provides = line + 10;
			provides_len = len - 10;
		} else if (len >= 8 && strncmp(line, "Status: ", 8) == 0) {
			installed = len >= 18 && memcmp(eol - 10, " installed", 10) == 0;
		}
		line = eol + 1;
	}
	if (!installed || !package)
		return;
	char *name = xstrndup(package, package_len);
	intern(&set->table, name);
	free(name);
	if (provides)
		add_provided(set, provides, provides_len);
}

bool depexts_load_installed(struct name_set *set, const char *rootfs)
{
	char *path = xasprintf("%s/var/lib/dpkg/status", rootfs), *text;
	size_t len;

	if (read_file(path, &text, &len) != 0) {
		free(path);
		return false;
	}
	free(path);

	/* Stanzas are separated by an empty line. */
	const char *start = text, *end = text + len;
	while (start < end) {
		const char *blank = strstr(start, "\n\n");
		const char *stop = blank ? blank + 1 : end;
		add_stanza(set, start, stop);
		start = blank ? blank + 2 : end;
	}
	free(text);
	return true;
}

void name_set_release(struct name_set *set)
{
	intern_release(&set->table);
	memset(set, 0, sizeof(*set));
}

bool debian_package_name_valid(const char *name)
{
	size_t len = strcspn(name, ":");

	if (len < 2 || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))
			return false;
	}
	if (name[len] == '\0')
		return true;
	/* An architecture: lowercase letters, digits and dashes. */
	const char *arch = name + len + 1;
	if (!*arch)
		return false;
	for (; *arch; arch++)
		if (!((*arch >= 'a' && *arch <= 'z') || (*arch >= '0' && *arch <= '9') || *arch == '-'))
			return false;
	return true;
}

bool depexts_installed(const struct name_set *installed, const char *name)
{
	size_t len = strcspn(name, ":");

	if (name[len] == '\0')
		return name_set_has(installed, name);
	/* dpkg's status names the package without its architecture. */
	char *bare = xstrndup(name, len);
	bool found = name_set_has(installed, bare);
	free(bare);
	return found;
}
