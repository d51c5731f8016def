#include "repo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parser.h"
#include "util.h"
#include "version.h"

/* A package directory to scan: packages/NAME of one repository. */
struct work_item {
	uint32_t repository;
	int packages_fd; /* the repository's packages/ directory */
	const char *name;
	const char *packages_path;
};

/* What one loader thread produces. */
struct loader {
	struct work_item *items;
	uint32_t item_count;
	atomic_uint *next; /* shared cursor over items */
	struct arena arena;
	struct diag_list diags;
	struct package *packages;
	uint32_t package_count;
	uint32_t package_capacity;
	size_t files_read;
	size_t bytes_read;
	size_t files_failed;
};

static void file_error(struct loader *l, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void file_error(struct loader *l, const char *path, const char *fmt, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	diag_add(&l->diags, SEVERITY_ERROR, path, NULL, 0, NO_POSITION, "%s", message);
	l->files_failed++;
}

/*
 * Read an opam file into the loader's arena. Opened without blocking and checked to be a regular
 * file, so a FIFO or device named `opam` cannot hang the load.
 */
static char *read_opam_file(struct loader *l, int dir_fd, const char *path, uint32_t *len)
{
	int fd = openat(dir_fd, "opam", O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT) {
		diag_add(&l->diags, SEVERITY_WARNING, path, NULL, 0, NO_POSITION,
			 "package directory has no opam file; skipped");
		return NULL;
	}

	/* From here on the file counts as read, whether or not it can be. */
	l->files_read++;
	if (fd < 0) {
		file_error(l, path, "cannot open: %s", strerror(errno));
		return NULL;
	}

	struct stat st;
	if (fstat(fd, &st) < 0) {
		file_error(l, path, "cannot stat: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		file_error(l, path, "not a regular file; skipped");
		close(fd);
		return NULL;
	}
	if ((uint64_t)st.st_size > PARSER_MAX_FILE_SIZE) {
		file_error(l, path, "file of %lld bytes is larger than the 4 GiB the parser accepts; skipped",
			   (long long)st.st_size);
		close(fd);
		return NULL;
	}

	size_t capacity = (size_t)st.st_size + 1;
	char *text = arena_alloc(&l->arena, capacity);
	size_t used = 0;
	for (;;) {
		if (used + 1 == capacity) {
			/* The file grew while being read: keep what fits; the parse sees a consistent prefix. */
			break;
		}
		ssize_t n = read(fd, text + used, capacity - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			file_error(l, path, "cannot read: %s", strerror(errno));
			close(fd);
			return NULL;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	close(fd);

	text[used] = '\0';
	*len = (uint32_t)used;
	l->bytes_read += used;
	return text;
}

static struct package *add_package(struct loader *l)
{
	if (l->package_count == l->package_capacity) {
		l->package_capacity = l->package_capacity ? l->package_capacity * 2 : 256;
		l->packages = xreallocarray(l->packages, l->package_capacity, sizeof(*l->packages));
	}
	struct package *p = &l->packages[l->package_count++];
	memset(p, 0, sizeof(*p));
	return p;
}

/* Load packages/NAME/NAME.VERSION/opam for every version directory of one package. */
static void load_version(struct loader *l, const struct work_item *item, int name_fd, const char *entry)
{
	char *path = arena_alloc(&l->arena, strlen(item->packages_path) + strlen(item->name) + strlen(entry) + 8);
	sprintf(path, "%s/%s/%s", item->packages_path, item->name, entry);

	/* NAME.VERSION splits at the first dot. */
	const char *dot = strchr(entry, '.');
	size_t name_len = strlen(item->name);
	if (!dot || (size_t)(dot - entry) != name_len || strncmp(entry, item->name, name_len) != 0) {
		diag_add(&l->diags, SEVERITY_WARNING, path, NULL, 0, NO_POSITION,
			 "directory name is not %s.VERSION; skipped", item->name);
		return;
	}
	if (!version_is_valid(dot + 1)) {
		diag_add(&l->diags, SEVERITY_WARNING, path, NULL, 0, NO_POSITION,
			 "'%s' is not a valid version (letters, digits and _+.~- only); skipped", dot + 1);
		return;
	}

	int dir_fd = openat(name_fd, entry, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0) {
		if (errno != ENOTDIR)
			file_error(l, path, "cannot open directory: %s", strerror(errno));
		return;
	}

	char *opam_path = arena_alloc(&l->arena, strlen(path) + 6);
	sprintf(opam_path, "%s/opam", path);
	uint32_t len = 0;
	char *text = read_opam_file(l, dir_fd, opam_path, &len);
	close(dir_fd);
	if (!text)
		return;

	struct opam_file *file = opam_parse(&l->arena, opam_path, text, len, &l->diags);
	if (!file) {
		l->files_failed++;
		return;
	}

	struct package *p = add_package(l);
	p->name = item->name;
	p->version = dot + 1;
	p->repository = item->repository;
	p->dir = path;
	p->file = file;
	package_extract_fields(p, &l->arena, &l->diags);
}

static void load_package_dir(struct loader *l, const struct work_item *item)
{
	char *path = xasprintf("%s/%s", item->packages_path, item->name);
	int name_fd = openat(item->packages_fd, item->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (name_fd < 0) {
		/* Stray files beside the package directories are not packages. */
		if (errno != ENOTDIR)
			file_error(l, path, "cannot open directory: %s", strerror(errno));
		free(path);
		return;
	}
	DIR *dir = fdopendir(name_fd);
	if (!dir) {
		file_error(l, path, "cannot read directory: %s", strerror(errno));
		close(name_fd);
		free(path);
		return;
	}

	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		/* Plain files beside the version directories (a README) are not versions; links may point to one. */
		if (de->d_type == DT_REG)
			continue;
		const char *entry = arena_strdup(&l->arena, de->d_name);
		load_version(l, item, dirfd(dir), entry);
	}
	closedir(dir);
	free(path);
}

static void *loader_main(void *arg)
{
	struct loader *l = arg;

	for (;;) {
		unsigned i = atomic_fetch_add(l->next, 1);
		if (i >= l->item_count)
			break;
		load_package_dir(l, &l->items[i]);
	}
	return NULL;
}

/* List packages/ of one repository into ITEMS. */
static int list_repository(const char *repo_path, uint32_t index, int *packages_fd, char **packages_path,
			   struct work_item **items, uint32_t *count, uint32_t *capacity, struct arena *names,
			   struct diag_list *diags)
{
	struct stat st;
	if (stat(repo_path, &st) < 0) {
		diag_add(diags, SEVERITY_ERROR, repo_path, NULL, 0, NO_POSITION,
			 "cannot open opam repository: %s; pass the folder that contains packages/ with -r",
			 strerror(errno));
		return -1;
	}
	*packages_path = xasprintf("%s/packages", repo_path);
	*packages_fd = open(*packages_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*packages_fd < 0) {
		diag_add(diags, SEVERITY_ERROR, repo_path, NULL, 0, NO_POSITION,
			 "not an opam repository: cannot open %s: %s", *packages_path, strerror(errno));
		return -1;
	}

	DIR *dir = fdopendir(dup(*packages_fd));
	if (!dir) {
		diag_add(diags, SEVERITY_ERROR, *packages_path, NULL, 0, NO_POSITION, "cannot read directory: %s",
			 strerror(errno));
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (!package_name_is_valid(de->d_name)) {
			diag_add(diags, SEVERITY_WARNING, *packages_path, NULL, 0, NO_POSITION,
				 "'%s' is not a valid package name; skipped", de->d_name);
			continue;
		}
		if (*count == *capacity) {
			*capacity = *capacity ? *capacity * 2 : 1024;
			*items = xreallocarray(*items, *capacity, sizeof(**items));
		}
		struct work_item *it = &(*items)[(*count)++];
		it->repository = index;
		it->packages_fd = *packages_fd;
		it->packages_path = *packages_path;
		it->name = arena_strdup(names, de->d_name);
	}
	closedir(dir);
	return 0;
}

static int compare_packages(const void *a, const void *b)
{
	const struct package *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c == 0)
		c = version_compare(x->version, y->version);
	if (c == 0 && x->repository != y->repository)
		c = x->repository < y->repository ? -1 : 1;
	if (c == 0)
		c = strcmp(x->version, y->version);
	return c;
}

static int compare_diags(const void *a, const void *b)
{
	const struct diag *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	if (c == 0)
		c = x->line < y->line ? -1 : x->line > y->line;
	if (c == 0)
		c = x->column < y->column ? -1 : x->column > y->column;
	return c;
}

/*
 * Keep one package per version. The same version in a later repository is shadowed silently;
 * two directories of one repository whose versions compare equal (5.5.0+introcaml and
 * 5.5.0+introcaml0) keep the one that sorts first byte-wise, with a warning, as opam keeps one.
 */
static void remove_duplicates(struct repo_index *idx, struct diag_list *diags)
{
	uint32_t kept = 0;

	for (uint32_t i = 0; i < idx->package_count; i++) {
		struct package *p = &idx->packages[i];
		if (kept > 0) {
			struct package *prev = &idx->packages[kept - 1];
			if (strcmp(prev->name, p->name) == 0 && version_compare(prev->version, p->version) == 0) {
				if (prev->repository == p->repository)
					diag_add(diags, SEVERITY_WARNING, p->dir, NULL, 0, NO_POSITION,
						 "version %s of %s compares equal to %s, which is kept; this directory "
						 "is ignored",
						 p->version, p->name, prev->version);
				continue;
			}
		}
		idx->packages[kept++] = *p;
	}
	idx->package_count = kept;
}

static void build_name_table(struct repo_index *idx)
{
	idx->names = xcalloc(idx->package_count ? idx->package_count : 1, sizeof(*idx->names));
	idx->name_count = 0;
	for (uint32_t i = 0; i < idx->package_count; i++) {
		struct package *p = &idx->packages[i];
		if (idx->name_count == 0 || strcmp(idx->names[idx->name_count - 1].name, p->name) != 0) {
			struct package_name *n = &idx->names[idx->name_count++];
			n->name = p->name;
			n->first = i;
			n->count = 0;
		}
		idx->names[idx->name_count - 1].count++;
		p->name_id = idx->name_count - 1;

		/* Equal version strings share one copy and one id, which the solver compares as integers. */
		p->version_id = intern(&idx->versions, p->version);
		p->version = intern_string(&idx->versions, p->version_id);
	}
}

static unsigned default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

int repo_index_load(struct repo_index *idx, char *const *paths, uint32_t count, unsigned threads,
		    struct diag_list *diags)
{
	memset(idx, 0, sizeof(*idx));
	idx->repositories = xcalloc(count ? count : 1, sizeof(*idx->repositories));
	idx->repository_count = count;
	threads = threads ? threads : default_threads();

	/* Step 1: list the package directories of every repository. */
	struct arena *names = xcalloc(1, sizeof(*names));
	struct work_item *items = NULL;
	uint32_t item_count = 0, item_capacity = 0;
	int *fds = xcalloc(count ? count : 1, sizeof(*fds));
	char **packages_paths = xcalloc(count ? count : 1, sizeof(*packages_paths));
	int status = 0;
	for (uint32_t r = 0; r < count; r++) {
		idx->repositories[r] = xstrdup(paths[r]);
		fds[r] = -1;
		if (list_repository(paths[r], r, &fds[r], &packages_paths[r], &items, &item_count, &item_capacity,
				    names, diags) < 0)
			status = -1;
	}

	/* Step 2: parse every opam file, spread over the threads. */
	struct loader *loaders = xcalloc(threads, sizeof(*loaders));
	pthread_t *tids = xcalloc(threads, sizeof(*tids));
	atomic_uint next = 0;
	for (unsigned t = 0; t < threads; t++) {
		loaders[t].items = items;
		loaders[t].item_count = item_count;
		loaders[t].next = &next;
	}
	unsigned started = 0;
	for (unsigned t = 1; t < threads; t++) {
		if (pthread_create(&tids[t], NULL, loader_main, &loaders[t]) != 0)
			break;
		started = t;
	}
	loader_main(&loaders[0]);
	for (unsigned t = 1; t <= started; t++)
		pthread_join(tids[t], NULL);

	/* Step 3: merge the results in a stable order. */
	struct diag_list found = { 0 };
	idx->arenas = xcalloc(threads + 1, sizeof(*idx->arenas));
	for (unsigned t = 0; t < threads; t++) {
		struct loader *l = &loaders[t];
		idx->package_count += l->package_count;
		idx->files_read += l->files_read;
		idx->bytes_read += l->bytes_read;
		idx->files_failed += l->files_failed;
		diag_append(&found, &l->diags);
		idx->arenas[idx->arena_count++] = l->arena;
	}
	idx->arenas[idx->arena_count++] = *names;
	idx->packages = xcalloc(idx->package_count ? idx->package_count : 1, sizeof(*idx->packages));
	uint32_t at = 0;
	for (unsigned t = 0; t < threads; t++) {
		if (loaders[t].package_count)
			memcpy(idx->packages + at, loaders[t].packages,
			       loaders[t].package_count * sizeof(struct package));
		at += loaders[t].package_count;
		free(loaders[t].packages);
	}
	qsort(idx->packages, idx->package_count, sizeof(*idx->packages), compare_packages);
	remove_duplicates(idx, &found);
	build_name_table(idx);
	if (found.count)
		qsort(found.items, found.count, sizeof(*found.items), compare_diags);
	diag_append(diags, &found);

	for (uint32_t r = 0; r < count; r++) {
		if (fds[r] >= 0)
			close(fds[r]);
		free(packages_paths[r]);
	}
	free(fds);
	free(packages_paths);
	free(items);
	free(names);
	free(loaders);
	free(tids);
	return status;
}

void repo_index_release(struct repo_index *idx)
{
	for (uint32_t r = 0; r < idx->repository_count; r++)
		free(idx->repositories[r]);
	for (uint32_t a = 0; a < idx->arena_count; a++)
		arena_release(&idx->arenas[a]);
	free(idx->repositories);
	free(idx->arenas);
	free(idx->packages);
	free(idx->names);
	intern_release(&idx->versions);
	memset(idx, 0, sizeof(*idx));
}

const struct package_name *repo_find_name(const struct repo_index *idx, const char *name)
{
	uint32_t lo = 0, hi = idx->name_count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = strcmp(idx->names[mid].name, name);
		if (c == 0)
			return &idx->names[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct package *repo_find_package(const struct repo_index *idx, const char *name, const char *version)
{
	const struct package_name *n = repo_find_name(idx, name);

	if (!n)
		return NULL;
	for (uint32_t i = 0; i < n->count; i++) {
		const struct package *p = &idx->packages[n->first + i];
		if (version_compare(p->version, version) == 0)
			return p;
	}
	return NULL;
}

bool package_is_available(const struct package *p, const struct variables *globals, struct arena *scratch)
{
	struct filter_env env = { globals, p->name, p->version, NULL };

	if (!p->available)
		return true;
	return filter_eval_bool(p->available, &env, scratch, false);
}

const struct package *repo_latest_available(const struct repo_index *idx, const struct package_name *name,
					    const struct variables *globals, struct arena *scratch)
{
	for (uint32_t i = name->count; i-- > 0;) {
		const struct package *p = &idx->packages[name->first + i];
		if (package_is_available(p, globals, scratch))
			return p;
	}
	return NULL;
}
