#include "package.h"

#include <string.h>

#include "filter.h"
#include "formula.h"
#include "version.h"

struct extractor {
	struct package *package;
	struct arena *arena;
	struct diag_list *diags;
	const struct opam_file *file;
};

static void field_warning(struct extractor *x, const struct item *it, const char *expected)
{
	diag_add(x->diags, SEVERITY_WARNING, x->file->path, x->file->text, x->file->text_len, it->pos,
		 "field '%s' ignored: expected %s", it->name, expected);
}

/*
 * opam reads a single value where a list is expected as a list of that one value. SLOT is caller
 * storage that holds the single value in that case.
 */
static struct value *const *list_items(const struct value *v, struct value **slot, uint32_t *count)
{
	if (v->kind == VALUE_LIST) {
		*count = v->len;
		return v->u.items;
	}
	*slot = (struct value *)v;
	*count = 1;
	return slot;
}

/* Unwrap `value {options}` into its subject, with the options in *ITEMS. */
static const struct value *option_subject(const struct value *v, struct value *const **items, uint32_t *count)
{
	if (v->kind == VALUE_OPTION) {
		*items = v->u.option.items;
		*count = v->len;
		return v->u.option.subject;
	}
	*items = NULL;
	*count = 0;
	return v;
}

/* The filter in `{...}` after a command or argument: empty, or one valid filter. */
static bool option_filter_is_valid(struct value *const *items, uint32_t count)
{
	return count == 0 || (count == 1 && filter_is_valid(items[0]));
}

/* Depth of nested lists at the start of V, as opam's list_depth measures it. */
static int list_depth(const struct value *v)
{
	int depth = 0;

	for (;;) {
		if (v->kind == VALUE_OPTION) {
			v = v->u.option.subject;
		} else if (v->kind == VALUE_LIST) {
			depth++;
			if (v->len == 0)
				return depth;
			v = v->u.items[0];
		} else {
			return depth;
		}
	}
}

/* One command: `[args] {filter}` where each argument is a string or identifier with an optional filter. */
static bool command_is_valid(const struct value *v, bool allow_single_arg)
{
	struct value *const *opts;
	uint32_t nopts;
	const struct value *args = option_subject(v, &opts, &nopts);

	if (!option_filter_is_valid(opts, nopts))
		return false;
	if (args->kind != VALUE_LIST) {
		if (!allow_single_arg)
			return false;
		return args->kind == VALUE_STRING || args->kind == VALUE_IDENT;
	}
	for (uint32_t i = 0; i < args->len; i++) {
		struct value *const *aopts;
		uint32_t naopts;
		const struct value *arg = option_subject(args->u.items[i], &aopts, &naopts);
		if ((arg->kind != VALUE_STRING && arg->kind != VALUE_IDENT) || !option_filter_is_valid(aopts, naopts))
			return false;
	}
	return true;
}

/* `build:` and `install:` are lists of commands; opam wraps a lone command `["make"]` into `[["make"]]`. */
static bool commands_are_valid(const struct value *v)
{
	int depth = list_depth(v);

	if (depth < 2)
		return command_is_valid(v, depth == 0);
	if (v->kind != VALUE_LIST)
		return false;
	for (uint32_t i = 0; i < v->len; i++)
		if (!command_is_valid(v->u.items[i], false))
			return false;
	return true;
}

/* `patches: ["fix.patch" {filter}]` */
static bool patches_are_valid(const struct value *v)
{
	uint32_t n;
	struct value *slot;
	struct value *const *items = list_items(v, &slot, &n);

	for (uint32_t i = 0; i < n; i++) {
		struct value *const *opts;
		uint32_t nopts;
		const struct value *name = option_subject(items[i], &opts, &nopts);
		if (name->kind != VALUE_STRING || !option_filter_is_valid(opts, nopts))
			return false;
	}
	return true;
}

/* One environment update: `[VAR = "value"]` or `[VAR += "value"]`. */
static bool env_update_is_valid(const struct value *v)
{
	if (v->kind == VALUE_LIST) {
		if (v->len != 1)
			return false;
		v = v->u.items[0];
	}
	if (v->kind == VALUE_RELOP)
		return v->op == RELOP_EQ && v->u.pair.lhs->kind == VALUE_IDENT && v->u.pair.rhs->kind == VALUE_STRING;
	if (v->kind == VALUE_ENVOP)
		return v->u.pair.lhs->kind == VALUE_IDENT && v->u.pair.rhs->kind == VALUE_STRING;
	return false;
}

static bool build_env_is_valid(const struct value *v)
{
	if (list_depth(v) < 2)
		return env_update_is_valid(v);
	for (uint32_t i = 0; i < v->len; i++)
		if (!env_update_is_valid(v->u.items[i]))
			return false;
	return true;
}

/* One depexts entry: `["pkg" "pkg2"] {filter}`. */
static bool depext_is_valid(const struct value *v)
{
	struct value *const *opts;
	uint32_t nopts;
	const struct value *names = option_subject(v, &opts, &nopts);

	if (names->kind != VALUE_LIST || !option_filter_is_valid(opts, nopts))
		return false;
	for (uint32_t j = 0; j < names->len; j++)
		if (names->u.items[j]->kind != VALUE_STRING)
			return false;
	return true;
}

/* `depexts:` is a list of entries; opam wraps a lone entry `["pkg"] {filter}` into a list. */
static bool depexts_are_valid(const struct value *v)
{
	if (list_depth(v) < 2)
		return depext_is_valid(v);
	for (uint32_t i = 0; i < v->len; i++)
		if (!depext_is_valid(v->u.items[i]))
			return false;
	return true;
}

/* `available:` holds one filter, possibly written as a one-element list. */
static const struct value *available_filter(const struct value *v, bool *valid)
{
	*valid = true;
	if (v->kind == VALUE_LIST) {
		if (v->len == 0)
			return NULL;
		if (v->len > 1) {
			*valid = false;
			return NULL;
		}
		v = v->u.items[0];
	}
	*valid = filter_is_valid(v);
	return *valid ? v : NULL;
}

static unsigned flag_bit(const char *name)
{
	static const struct {
		const char *name;
		unsigned bit;
	} flags[] = {
		{ "avoid-version", PACKAGE_FLAG_AVOID_VERSION },
		{ "deprecated", PACKAGE_FLAG_DEPRECATED },
		{ "conf", PACKAGE_FLAG_CONF },
		{ "compiler", PACKAGE_FLAG_COMPILER },
		{ "light-uninstall", PACKAGE_FLAG_LIGHT_UNINSTALL },
		{ "plugin", PACKAGE_FLAG_PLUGIN },
		{ "verbose", PACKAGE_FLAG_VERBOSE },
	};

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (strcmp(flags[i].name, name) == 0)
			return flags[i].bit;
	/* Unknown flags are kept by opam and mean nothing to the solver. */
	return 0;
}

static bool extract_flags(struct extractor *x, const struct value *v)
{
	uint32_t n;
	struct value *slot;
	struct value *const *items = list_items(v, &slot, &n);
	unsigned flags = 0;

	for (uint32_t i = 0; i < n; i++) {
		if (items[i]->kind != VALUE_IDENT)
			return false;
		flags |= flag_bit(items[i]->u.str);
	}
	x->package->flags = flags;
	return true;
}

static bool extract_conflict_class(struct extractor *x, const struct value *v)
{
	uint32_t n;
	struct value *slot;
	struct value *const *items = list_items(v, &slot, &n);

	for (uint32_t i = 0; i < n; i++)
		if (items[i]->kind != VALUE_STRING || !package_name_is_valid(items[i]->u.str))
			return false;

	const char **classes = arena_alloc(x->arena, (n ? n : 1) * sizeof(*classes));
	for (uint32_t i = 0; i < n; i++)
		classes[i] = items[i]->u.str;
	x->package->conflict_class = classes;
	x->package->conflict_class_count = n;
	return true;
}

/* Collect the strings of a field that holds one string or a list of strings. */
static bool string_list(struct arena *arena, const struct value *v, const char ***out, uint32_t *count)
{
	uint32_t n;
	struct value *slot;
	struct value *const *items = list_items(v, &slot, &n);

	for (uint32_t i = 0; i < n; i++)
		if (items[i]->kind != VALUE_STRING)
			return false;
	const char **strings = arena_alloc(arena, (n ? n : 1) * sizeof(*strings));
	for (uint32_t i = 0; i < n; i++)
		strings[i] = items[i]->u.str;
	*out = strings;
	*count = n;
	return true;
}

/* Read the fields of a `url` or `extra-source` section. */
static void extract_source(struct extractor *x, const struct item *section, struct package_source *src)
{
	for (uint32_t i = 0; i < section->u.section.count; i++) {
		const struct item *it = section->u.section.items[i];
		if (it->kind != ITEM_FIELD)
			continue;

		const struct value *v = it->u.value;
		if (strcmp(it->name, "src") == 0 || strcmp(it->name, "archive") == 0 || strcmp(it->name, "http") == 0 ||
		    strcmp(it->name, "git") == 0) {
			if (src->src)
				continue;
			if (v->kind == VALUE_STRING)
				src->src = v->u.str;
			else
				field_warning(x, it, "a URL string");
		} else if (strcmp(it->name, "checksum") == 0) {
			if (!string_list(x->arena, v, &src->checksums, &src->checksum_count))
				field_warning(x, it, "a checksum string or a list of them");
		} else if (strcmp(it->name, "mirrors") == 0) {
			if (!string_list(x->arena, v, &src->mirrors, &src->mirror_count))
				field_warning(x, it, "a list of URL strings");
		}
	}
	if (!src->src)
		diag_add(x->diags, SEVERITY_WARNING, x->file->path, x->file->text, x->file->text_len, section->pos,
			 "section '%s' has no 'src:' field", section->name);
}

static void extract_sections(struct extractor *x)
{
	const struct opam_file *f = x->file;
	uint32_t extra = 0;

	for (uint32_t i = 0; i < f->count; i++)
		if (f->items[i]->kind == ITEM_SECTION && strcmp(f->items[i]->name, "extra-source") == 0)
			extra++;
	if (extra)
		x->package->extra_sources = arena_calloc(x->arena, extra, sizeof(struct package_source));

	for (uint32_t i = 0; i < f->count; i++) {
		const struct item *it = f->items[i];
		if (it->kind != ITEM_SECTION)
			continue;
		if (strcmp(it->name, "url") == 0) {
			if (x->package->url) {
				diag_add(x->diags, SEVERITY_WARNING, f->path, f->text, f->text_len, it->pos,
					 "duplicate 'url' section ignored");
				continue;
			}
			x->package->url = arena_calloc(x->arena, 1, sizeof(*x->package->url));
			extract_source(x, it, x->package->url);
		} else if (strcmp(it->name, "extra-source") == 0) {
			if (!it->u.section.label) {
				diag_add(x->diags, SEVERITY_WARNING, f->path, f->text, f->text_len, it->pos,
					 "'extra-source' section without a file name ignored");
				continue;
			}
			struct package_source *src = &x->package->extra_sources[x->package->extra_source_count++];
			src->name = it->u.section.label;
			extract_source(x, it, src);
		}
	}
}

/* Check one field; returns false (and the field is dropped) when its value has the wrong shape. */
static bool extract_field(struct extractor *x, const struct item *it)
{
	struct package *p = x->package;
	const struct value *v = it->u.value;
	const char *name = it->name;

	if (strcmp(name, "depends") == 0 || strcmp(name, "depopts") == 0 || strcmp(name, "conflicts") == 0) {
		if (!formula_is_valid(v)) {
			field_warning(x, it, "a package formula");
			return false;
		}
		if (name[3] == 'e')
			p->depends = v;
		else if (name[3] == 'o')
			p->depopts = v;
		else
			p->conflicts = v;
	} else if (strcmp(name, "available") == 0) {
		bool valid;
		p->available = available_filter(v, &valid);
		if (!valid)
			field_warning(x, it, "a single filter");
	} else if (strcmp(name, "flags") == 0) {
		if (!extract_flags(x, v))
			field_warning(x, it, "a list of flag identifiers");
	} else if (strcmp(name, "conflict-class") == 0) {
		if (!extract_conflict_class(x, v))
			field_warning(x, it, "a list of package name strings");
	} else if (strcmp(name, "build") == 0 || strcmp(name, "install") == 0) {
		if (!commands_are_valid(v))
			field_warning(x, it, "a list of commands");
		else if (name[0] == 'b')
			p->build = v;
		else
			p->install = v;
	} else if (strcmp(name, "patches") == 0) {
		if (patches_are_valid(v))
			p->patches = v;
		else
			field_warning(x, it, "a list of file name strings with optional filters");
	} else if (strcmp(name, "build-env") == 0) {
		if (build_env_is_valid(v))
			p->build_env = v;
		else
			field_warning(x, it, "a list of environment updates such as [VAR = \"value\"]");
	} else if (strcmp(name, "depexts") == 0) {
		if (depexts_are_valid(v))
			p->depexts = v;
		else
			field_warning(x, it, "a list of [\"system-package\" ...] {filter}");
	} else if (strcmp(name, "name") == 0 || strcmp(name, "version") == 0) {
		const char *expected = name[0] == 'n' ? p->name : p->version;
		if (v->kind != VALUE_STRING)
			field_warning(x, it, "a string");
		else if (strcmp(v->u.str, expected) != 0)
			diag_add(x->diags, SEVERITY_WARNING, x->file->path, x->file->text, x->file->text_len, it->pos,
				 "field '%s' says \"%s\" but the directory says \"%s\"; the directory wins", name,
				 v->u.str, expected);
	}
	return true;
}

/* Fields obake reads; a second occurrence of one of them is ignored with a warning, as opam keeps the first. */
static bool is_known_field(const char *name)
{
	static const char *const known[] = {
		"depends", "depopts", "conflicts", "available", "flags", "conflict-class", "build",
		"install", "patches", "build-env", "depexts",   "name",  "version",        "opam-version",
	};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(known[i], name) == 0)
			return true;
	return false;
}

void package_extract_fields(struct package *p, struct arena *arena, struct diag_list *diags)
{
	struct extractor x = { p, arena, diags, p->file };
	const struct opam_file *f = p->file;

	for (uint32_t i = 0; i < f->count; i++) {
		const struct item *it = f->items[i];
		if (it->kind != ITEM_FIELD)
			continue;

		if (is_known_field(it->name) &&
		    opam_find_field((const struct item *const *)f->items, i, it->name) != NULL) {
			diag_add(diags, SEVERITY_WARNING, f->path, f->text, f->text_len, it->pos,
				 "duplicate field '%s' ignored; the first one is kept", it->name);
			continue;
		}
		extract_field(&x, it);
	}
	extract_sections(&x);
}
