/*
 * Tests of the repository index: the real opam-repository snapshots (counts, latest available
 * versions against opam-0install's target lists, print and parse round trips), several
 * repositories, hostile files, and the exit statuses of `obake check` and `obake list`.
 */
#include "harness.h"
#include "scratch.h"

#include "fixtures.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "diag.h"
#include "filter.h"
#include "options.h"
#include "parser.h"
#include "printer.h"
#include "repo.h"
#include "util.h"

/* Loader threads for the small repositories made here. The snapshots use one per core. */
#define TEST_THREADS 2

/* Size of each of the large opam files. */
#define HUGE_FILE_BYTES (100u << 20)

/* Depth of the deeply nested values, far beyond PARSER_MAX_DEPTH. */
#define DEEP_NESTING 100000

/* Seconds a load in a child process may take before it counts as hung. */
#define LOAD_TIMEOUT_SECONDS 20

/* ---- Files and directories ---- */

/* Create REPO/packages/NAME/DIRNAME and return its path, which the caller frees. */
static char *make_version_dir(const char *repo, const char *name, const char *dirname)
{
	char *dir = xasprintf("%s/packages/%s/%s", repo, name, dirname);

	if (!scratch_make_dirs(dir)) {
		free(dir);
		return NULL;
	}
	return dir;
}

/* Write REPO/packages/NAME/NAME.VERSION/opam with LEN bytes of TEXT. */
static bool add_opam_bytes(const char *repo, const char *name, const char *version, const char *text, size_t len)
{
	char *dirname = xasprintf("%s.%s", name, version);
	char *dir = make_version_dir(repo, name, dirname);
	bool written = false;

	if (dir) {
		char *path = xasprintf("%s/opam", dir);
		written = scratch_write(path, text, len);
		free(path);
	}
	free(dir);
	free(dirname);
	return written;
}

static bool add_opam(const char *repo, const char *name, const char *version, const char *text)
{
	return add_opam_bytes(repo, name, version, text, strlen(text));
}

/* Return the path of NAME.VERSION's opam file in REPO, which the caller frees. */
static char *opam_path(const char *repo, const char *name, const char *version)
{
	return xasprintf("%s/packages/%s/%s.%s/opam", repo, name, name, version);
}

/* The next value of a fixed xorshift sequence, so that "random" bytes are the same on every run. */
static uint64_t next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

static void fill_random(unsigned char *buffer, size_t len, uint64_t seed)
{
	uint64_t state = seed;

	for (size_t i = 0; i < len; i++)
		buffer[i] = (unsigned char)(next_random(&state) >> 56);
}

/*
 * Write PREFIX, then TOTAL bytes made of copies of the LEN-byte CHUNK, then SUFFIX, to PATH.
 * Writing in chunks keeps the test's own memory small for the 100 MB files.
 */
static bool write_repeated(const char *path, const char *prefix, const void *chunk, size_t len, size_t total,
			   const char *suffix)
{
	FILE *f = fopen(path, "wb");

	if (!f) {
		fprintf(stderr, "%s: cannot create %s: %s\n", test_current_name, path, strerror(errno));
		return false;
	}
	bool written = fputs(prefix, f) >= 0;
	for (size_t done = 0; written && done < total; done += len) {
		size_t n = total - done < len ? total - done : len;
		written = fwrite(chunk, 1, n, f) == n;
	}
	written = written && fputs(suffix, f) >= 0;
	return fclose(f) == 0 && written;
}

/* ---- Loading and diagnostics ---- */

static int load_repository(const char *repo, struct repo_index *idx, struct diag_list *diags)
{
	char *paths[] = { (char *)repo };

	return repo_index_load(idx, paths, 1, TEST_THREADS, diags);
}

/* True if D has SEVERITY and its path and message contain PATH_PART and MESSAGE_PART (NULL matches anything). */
static bool diag_matches(const struct diag *d, enum severity severity, const char *path_part, const char *message_part)
{
	return d->severity == severity && (!path_part || strstr(d->path, path_part)) &&
	       (!message_part || strstr(d->message, message_part));
}

static const struct diag *find_diag(const struct diag_list *diags, enum severity severity, const char *path_part,
				    const char *message_part)
{
	for (size_t i = 0; i < diags->count; i++)
		if (diag_matches(&diags->items[i], severity, path_part, message_part))
			return &diags->items[i];
	return NULL;
}

static size_t count_diags(const struct diag_list *diags, enum severity severity, const char *path_part,
			  const char *message_part)
{
	size_t n = 0;

	for (size_t i = 0; i < diags->count; i++)
		n += diag_matches(&diags->items[i], severity, path_part, message_part);
	return n;
}

/* Print every diagnostic, so that a failing check shows what the load reported. */
static void dump_diags(const struct diag_list *diags)
{
	for (size_t i = 0; i < diags->count && i < 20; i++)
		diag_print(stderr, &diags->items[i]);
}

static const struct value *field_value(const struct package *p, const char *name)
{
	const struct item *it = opam_find_field((const struct item *const *)p->file->items, p->file->count, name);

	return it ? it->u.value : NULL;
}

/* Return the error for FILE_PATH, which must carry a line and a column, or NULL after a failed check. */
static const struct diag *located_error(const struct diag_list *diags, const char *file_path)
{
	const struct diag *d = find_diag(diags, SEVERITY_ERROR, file_path, NULL);

	if (!d) {
		fprintf(stderr, "%s: no error for %s\n", test_current_name, file_path);
		dump_diags(diags);
		test_current_failed = true;
		return NULL;
	}
	CHECK_STR_EQ(d->path, file_path);
	CHECK(d->line >= 1);
	CHECK(d->column >= 1);
	CHECK(d->source_line != NULL);
	return d;
}

/* ---- Real snapshots ---- */

/* A snapshot's index, loaded once and shared by the tests that read it. */
struct snapshot {
	const char *name;
	char *path;
	bool tried;
	int status;
	double seconds;
	struct repo_index idx;
	struct diag_list diags;
};

static struct snapshot snapshot_2026 = { .name = SNAPSHOT_2026 };
static struct snapshot snapshot_2024 = { .name = SNAPSHOT_2024 };

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Load S on first use. Returns NULL when its archive is not available. */
static struct snapshot *snapshot_load(struct snapshot *s)
{
	if (!s->tried) {
		s->tried = true;
		s->path = fixture_snapshot(s->name);
		if (s->path) {
			char *paths[] = { s->path };
			double start = now_seconds();
			s->status = repo_index_load(&s->idx, paths, 1, 0, &s->diags);
			s->seconds = now_seconds() - start;
			printf("ok loaded %s in %.2f s\n", s->name, s->seconds);
		}
	}
	return s->path ? s : NULL;
}

static void snapshot_release(struct snapshot *s)
{
	if (!s->path)
		return;
	repo_index_release(&s->idx);
	diag_list_release(&s->diags);
	free(s->path);
	s->path = NULL;
}

static void test_snapshot_2026_counts(void)
{
	struct snapshot *s = snapshot_load(&snapshot_2026);
	if (!s)
		SKIP("snapshot " SNAPSHOT_2026 " not found: set OBAKE_SHARED_DATA and OBAKE_TEST_TMP");

	CHECK_INT_EQ(s->status, 0);
	CHECK_INT_EQ(s->idx.files_read, 18793);
	CHECK_INT_EQ(s->idx.files_failed, 0);
	CHECK_INT_EQ(s->diags.errors, 0);
	CHECK_INT_EQ(s->idx.package_count, 18792);
	if (s->diags.errors)
		dump_diags(&s->diags);
}

/* 5.5.0+introcaml and 5.5.0+introcaml0 compare equal in opam's order, so only one is indexed. */
static void test_snapshot_2026_equal_versions(void)
{
	struct snapshot *s = snapshot_load(&snapshot_2026);
	if (!s)
		SKIP("snapshot " SNAPSHOT_2026 " not found: set OBAKE_SHARED_DATA and OBAKE_TEST_TMP");

	CHECK_INT_EQ(count_diags(&s->diags, SEVERITY_WARNING, "ocaml-variants", NULL), 1);
	const struct diag *d = find_diag(&s->diags, SEVERITY_WARNING, "ocaml-variants.5.5.0+introcaml0",
					 "compares equal to");
	CHECK(d != NULL);
	if (d)
		CHECK(strstr(d->message, "5.5.0+introcaml,") != NULL || strstr(d->message, "5.5.0+introcaml ") != NULL);

	const struct package *kept = repo_find_package(&s->idx, "ocaml-variants", "5.5.0+introcaml0");
	CHECK(kept != NULL);
	if (kept)
		CHECK_STR_EQ(kept->version, "5.5.0+introcaml");
}

static void test_snapshot_2024_counts(void)
{
	struct snapshot *s = snapshot_load(&snapshot_2024);
	if (!s)
		SKIP("snapshot " SNAPSHOT_2024 " not found: set OBAKE_SHARED_DATA and OBAKE_TEST_TMP");

	CHECK_INT_EQ(s->status, 0);
	CHECK_INT_EQ(s->idx.files_read, 33033);
	CHECK_INT_EQ(s->idx.files_failed, 0);
	CHECK_INT_EQ(s->diags.errors, 0);
	if (s->diags.errors)
		dump_diags(&s->diags);
}

/*
 * Compare the latest available version of every package of the 2026 snapshot, one NAME.VERSION
 * a line in name order, with the oracle's target list for OCAML_VERSION.
 */
static void check_latest_available(const char *ocaml_version, const char *oracle_file)
{
	struct snapshot *s = snapshot_load(&snapshot_2026);
	if (!s)
		SKIP("snapshot " SNAPSHOT_2026 " not found: set OBAKE_SHARED_DATA and OBAKE_TEST_TMP");
	char *oracle_path = fixture_oracle_path(oracle_file);
	if (!oracle_path)
		SKIP("oracle target list not found beside OBAKE_SHARED_DATA");

	char *oracle = NULL;
	size_t oracle_len = 0;
	CHECK_INT_EQ(read_file(oracle_path, &oracle, &oracle_len), 0);
	free(oracle_path);
	if (!oracle)
		return;

	struct variables vars = { 0 };
	struct arena scratch = { 0 };
	options_default_environment(&vars, ocaml_version);

	char *line = oracle;
	size_t mismatches = 0, printed = 0;
	for (uint32_t n = 0; n < s->idx.name_count; n++) {
		const struct package *p = repo_latest_available(&s->idx, &s->idx.names[n], &vars, &scratch);
		if (!p)
			continue;

		char *expected = NULL;
		if (*line) {
			char *end = strchr(line, '\n');
			if (end)
				*end = '\0';
			expected = line;
			line = end ? end + 1 : line + strlen(line);
		}
		char *actual = xasprintf("%s.%s", p->name, p->version);
		if (!expected || strcmp(actual, expected) != 0) {
			mismatches++;
			if (printed++ < 5)
				fprintf(stderr, "%s: latest available is %s, the oracle has %s\n", test_current_name,
					actual, expected ? expected : "(end of file)");
		}
		free(actual);
	}
	size_t oracle_left = 0;
	for (; *line; line += strcspn(line, "\n") + (line[strcspn(line, "\n")] ? 1 : 0))
		oracle_left++;
	if (oracle_left)
		fprintf(stderr, "%s: the oracle lists %zu more packages, the first is %.*s\n", test_current_name,
			oracle_left, (int)strcspn(line, "\n"), line);

	CHECK_INT_EQ(mismatches, 0);
	CHECK_INT_EQ(oracle_left, 0);

	arena_release(&scratch);
	variables_release(&vars);
	free(oracle);
}

static void test_latest_ocaml_5_3_0(void)
{
	check_latest_available("5.3.0", "latest-5.3.0.txt");
}

static void test_latest_ocaml_5_4_1(void)
{
	check_latest_available("5.4.1", "latest-5.4.1.txt");
}

/* Print every opam file of S, parse the output again and compare the two trees. */
static void check_round_trip(struct snapshot *s)
{
	struct strbuf printed = { 0 };
	struct arena arena = { 0 };
	struct diag_list diags = { 0 };
	size_t failures = 0;

	for (uint32_t i = 0; i < s->idx.package_count; i++) {
		const struct package *p = &s->idx.packages[i];

		strbuf_reset(&printed);
		opam_print_file(&printed, p->file);
		struct opam_file *again = opam_parse(&arena, p->file->path, strbuf_str(&printed), (uint32_t)printed.len,
						     &diags);
		if (!again || !opam_file_equal(p->file, again)) {
			if (failures < 5) {
				fprintf(stderr, "%s: %s: %s\n", test_current_name, p->file->path,
					again ? "printed text parses to a different tree"
					      : "printed text does not parse");
				dump_diags(&diags);
			}
			failures++;
		}
		diag_list_release(&diags);
		/* The trees are compared and dropped at once, so the arena is emptied now and then. */
		if (arena.total > (64u << 20))
			arena_release(&arena);
	}
	printf("ok round trip of %u files of %s\n", s->idx.package_count, s->name);
	CHECK_INT_EQ(failures, 0);

	arena_release(&arena);
	strbuf_release(&printed);
}

static void test_round_trip_2026(void)
{
	struct snapshot *s = snapshot_load(&snapshot_2026);
	if (!s)
		SKIP("snapshot " SNAPSHOT_2026 " not found: set OBAKE_SHARED_DATA and OBAKE_TEST_TMP");
	CHECK(s->idx.package_count > 0);
	check_round_trip(s);
}

static void test_round_trip_2024(void)
{
	struct snapshot *s = snapshot_load(&snapshot_2024);
	if (!s)
		SKIP("snapshot " SNAPSHOT_2024 " not found: set OBAKE_SHARED_DATA and OBAKE_TEST_TMP");
	CHECK(s->idx.package_count > 0);
	check_round_trip(s);
}

/* ---- Several repositories ---- */

/*
 * Two repositories: the first has foo.1 and foo.2, the second foo.1 (another synopsis), foo.3 and
 * bar.1. Fills DIRS with their paths.
 */
static bool make_two_repositories(char *dirs[2])
{
	dirs[0] = scratch_dir("repo");
	dirs[1] = scratch_dir("repo");
	if (!dirs[0] || !dirs[1])
		return false;
	return add_opam(dirs[0], "foo", "1", "opam-version: \"2.0\"\nsynopsis: \"first\"\n") &&
	       add_opam(dirs[0], "foo", "2", "opam-version: \"2.0\"\nsynopsis: \"first\"\n") &&
	       add_opam(dirs[1], "foo", "1", "opam-version: \"2.0\"\nsynopsis: \"second\"\n") &&
	       add_opam(dirs[1], "foo", "3", "opam-version: \"2.0\"\nsynopsis: \"second\"\n") &&
	       add_opam(dirs[1], "bar", "1", "opam-version: \"2.0\"\nsynopsis: \"second\"\n");
}

static void release_two_repositories(char *dirs[2])
{
	for (int i = 0; i < 2; i++) {
		scratch_remove(dirs[i]);
		free(dirs[i]);
	}
}

static bool load_two_repositories(char *dirs[2], struct repo_index *idx, struct diag_list *diags)
{
	if (!make_two_repositories(dirs))
		return false;
	int status = repo_index_load(idx, dirs, 2, TEST_THREADS, diags);
	CHECK_INT_EQ(status, 0);
	CHECK_INT_EQ(diags->count, 0);
	if (diags->count)
		dump_diags(diags);
	return true;
}

static void check_synopsis(const struct package *p, const char *expected)
{
	const struct value *v = field_value(p, "synopsis");

	CHECK(v != NULL);
	if (!v)
		return;
	CHECK_INT_EQ(v->kind, VALUE_STRING);
	if (v->kind == VALUE_STRING)
		CHECK_STR_EQ(v->u.str, expected);
}

static void test_repos_first_wins(void)
{
	char *dirs[2] = { NULL, NULL };
	struct repo_index idx;
	struct diag_list diags = { 0 };

	if (!load_two_repositories(dirs, &idx, &diags)) {
		release_two_repositories(dirs);
		SKIP("cannot create the repositories");
	}

	const struct package *foo1 = repo_find_package(&idx, "foo", "1");
	CHECK(foo1 != NULL);
	if (foo1) {
		CHECK_INT_EQ(foo1->repository, 0);
		check_synopsis(foo1, "first");
	}
	const struct package_name *foo = repo_find_name(&idx, "foo");
	CHECK(foo != NULL);
	if (foo)
		CHECK_INT_EQ(foo->count, 3);

	repo_index_release(&idx);
	diag_list_release(&diags);
	release_two_repositories(dirs);
}

static void test_repos_second_versions(void)
{
	char *dirs[2] = { NULL, NULL };
	struct repo_index idx;
	struct diag_list diags = { 0 };

	if (!load_two_repositories(dirs, &idx, &diags)) {
		release_two_repositories(dirs);
		SKIP("cannot create the repositories");
	}

	const struct package *foo2 = repo_find_package(&idx, "foo", "2");
	const struct package *foo3 = repo_find_package(&idx, "foo", "3");
	CHECK(foo2 != NULL);
	CHECK(foo3 != NULL);
	if (foo2)
		CHECK_INT_EQ(foo2->repository, 0);
	if (foo3) {
		CHECK_INT_EQ(foo3->repository, 1);
		check_synopsis(foo3, "second");
	}

	/* Versions are listed oldest to newest, whichever repository contains them. */
	const struct package_name *foo = repo_find_name(&idx, "foo");
	if (foo && foo->count == 3) {
		CHECK_STR_EQ(idx.packages[foo->first].version, "1");
		CHECK_STR_EQ(idx.packages[foo->first + 1].version, "2");
		CHECK_STR_EQ(idx.packages[foo->first + 2].version, "3");
	}

	repo_index_release(&idx);
	diag_list_release(&diags);
	release_two_repositories(dirs);
}

static void test_repos_second_only(void)
{
	char *dirs[2] = { NULL, NULL };
	struct repo_index idx;
	struct diag_list diags = { 0 };

	if (!load_two_repositories(dirs, &idx, &diags)) {
		release_two_repositories(dirs);
		SKIP("cannot create the repositories");
	}

	const struct package *bar = repo_find_package(&idx, "bar", "1");
	CHECK(bar != NULL);
	if (bar)
		CHECK_INT_EQ(bar->repository, 1);
	CHECK_INT_EQ(idx.name_count, 2);
	CHECK_INT_EQ(idx.package_count, 4);

	repo_index_release(&idx);
	diag_list_release(&diags);
	release_two_repositories(dirs);
}

/* Versions spelled differently but equal in opam's order: the first repository's directory is kept, silently. */
static void test_repos_equal_versions(void)
{
	char *dirs[2] = { scratch_dir("repo"), scratch_dir("repo") };
	bool made = dirs[0] && dirs[1] && add_opam(dirs[0], "foo", "1.0", "synopsis: \"first\"\n") &&
		    add_opam(dirs[1], "foo", "01.0", "synopsis: \"second\"\n");
	if (!made) {
		release_two_repositories(dirs);
		SKIP("cannot create the repositories");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(repo_index_load(&idx, dirs, 2, TEST_THREADS, &diags), 0);
	CHECK_INT_EQ(diags.count, 0);
	CHECK_INT_EQ(idx.package_count, 1);
	const struct package *p = repo_find_package(&idx, "foo", "1.0");
	CHECK(p != NULL);
	if (p) {
		CHECK_STR_EQ(p->version, "1.0");
		CHECK_INT_EQ(p->repository, 0);
		check_synopsis(p, "first");
	}

	repo_index_release(&idx);
	diag_list_release(&diags);
	release_two_repositories(dirs);
}

static void test_repos_same_twice(void)
{
	char *dirs[2] = { NULL, NULL };
	if (!make_two_repositories(dirs)) {
		release_two_repositories(dirs);
		SKIP("cannot create the repositories");
	}
	char *paths[] = { dirs[0], dirs[0] };

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(repo_index_load(&idx, paths, 2, TEST_THREADS, &diags), 0);
	CHECK_INT_EQ(diags.count, 0);
	CHECK_INT_EQ(idx.files_read, 4);
	CHECK_INT_EQ(idx.package_count, 2);
	for (uint32_t i = 0; i < idx.package_count; i++)
		CHECK_INT_EQ(idx.packages[i].repository, 0);

	repo_index_release(&idx);
	diag_list_release(&diags);
	release_two_repositories(dirs);
}

/* Several directories of one repository whose versions compare equal: the byte-wise first is kept. */
static void test_repos_equal_in_one(void)
{
	char *repo = scratch_dir("repo");
	bool made = repo && add_opam(repo, "foo", "1.0", "synopsis: \"1.0\"\n") &&
		    add_opam(repo, "foo", "1.00", "synopsis: \"1.00\"\n") &&
		    add_opam(repo, "foo", "01.0", "synopsis: \"01.0\"\n");
	if (!made) {
		scratch_remove(repo);
		free(repo);
		SKIP("cannot create the repository");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	CHECK_INT_EQ(idx.package_count, 1);
	CHECK_INT_EQ(diags.warnings, 2);
	CHECK(find_diag(&diags, SEVERITY_WARNING, "foo.1.0", "compares equal to 01.0") != NULL);
	CHECK(find_diag(&diags, SEVERITY_WARNING, "foo.1.00", "compares equal to 01.0") != NULL);
	const struct package *p = repo_find_package(&idx, "foo", "1.0");
	CHECK(p != NULL);
	if (p) {
		CHECK_STR_EQ(p->version, "01.0");
		check_synopsis(p, "01.0");
	}

	repo_index_release(&idx);
	diag_list_release(&diags);
	scratch_remove(repo);
	free(repo);
}

/* ---- Hostile input ---- */

/* A repository with one ordinary package, good.1, to show that a load goes on past bad files. */
static char *make_repository(void)
{
	char *repo = scratch_dir("repo");

	if (repo && !add_opam(repo, "good", "1", "opam-version: \"2.0\"\navailable: os = \"linux\"\n")) {
		scratch_remove(repo);
		free(repo);
		return NULL;
	}
	return repo;
}

static void drop_repository(char *repo)
{
	scratch_remove(repo);
	free(repo);
}

/* Check that the good package of make_repository was indexed. */
static void check_good_loaded(const struct repo_index *idx)
{
	const struct package *good = repo_find_package(idx, "good", "1");

	CHECK(good != NULL);
	if (good)
		CHECK(good->available != NULL);
}

static void test_hostile_empty_file(void)
{
	char *repo = make_repository();
	if (!repo || !add_opam(repo, "empty", "1", "")) {
		drop_repository(repo);
		SKIP("cannot create the repository");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	CHECK_INT_EQ(diags.count, 0);
	CHECK_INT_EQ(idx.files_read, 2);
	const struct package *p = repo_find_package(&idx, "empty", "1");
	CHECK(p != NULL);
	if (p) {
		CHECK_INT_EQ(p->file->count, 0);
		CHECK(p->depends == NULL);
		CHECK(p->available == NULL);
	}
	check_good_loaded(&idx);

	repo_index_release(&idx);
	diag_list_release(&diags);
	drop_repository(repo);
}

static void test_hostile_empty_packages(void)
{
	char *repo = scratch_dir("repo");
	char *packages = repo ? xasprintf("%s/packages", repo) : NULL;
	if (!packages || mkdir(packages, 0755) < 0) {
		free(packages);
		drop_repository(repo);
		SKIP("cannot create the repository");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	CHECK_INT_EQ(diags.count, 0);
	CHECK_INT_EQ(idx.package_count, 0);
	CHECK_INT_EQ(idx.name_count, 0);
	CHECK(repo_find_name(&idx, "foo") == NULL);
	CHECK(repo_find_package(&idx, "foo", "1") == NULL);

	repo_index_release(&idx);
	diag_list_release(&diags);
	free(packages);
	drop_repository(repo);
}

/* A NUL byte inside a string is data, and survives printing and parsing again. */
static void test_hostile_nul_in_string(void)
{
	static const char text[] = "opam-version: \"2.0\"\nsynopsis: \"a\0b\\000c\"\n";
	char *repo = make_repository();
	if (!repo || !add_opam_bytes(repo, "nul", "1", text, sizeof(text) - 1)) {
		drop_repository(repo);
		SKIP("cannot create the repository");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	CHECK_INT_EQ(diags.count, 0);
	const struct package *p = repo_find_package(&idx, "nul", "1");
	CHECK(p != NULL);
	const struct value *v = p ? field_value(p, "synopsis") : NULL;
	CHECK(v != NULL);
	if (v)
		CHECK_INT_EQ(v->kind, VALUE_STRING);
	if (v && v->kind == VALUE_STRING) {
		CHECK_INT_EQ(v->len, 5);
		CHECK(memcmp(v->u.str, "a\0b\0c", 5) == 0);
	}
	if (p) {
		struct strbuf printed = { 0 };
		struct arena arena = { 0 };
		opam_print_file(&printed, p->file);
		struct opam_file *again = opam_parse(&arena, "printed", strbuf_str(&printed), (uint32_t)printed.len,
						     &diags);
		CHECK(again != NULL);
		if (again)
			CHECK(opam_file_equal(p->file, again));
		arena_release(&arena);
		strbuf_release(&printed);
	}

	repo_index_release(&idx);
	diag_list_release(&diags);
	drop_repository(repo);
}

/* A sparse file larger than the parser's 4 GiB limit is rejected from its size, before any read. */
static void test_hostile_over_4_gib(void)
{
	char *repo = make_repository();
	char *dir = repo ? make_version_dir(repo, "giant", "giant.1") : NULL;
	char *path = dir ? xasprintf("%s/opam", dir) : NULL;
	int fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
	bool made = fd >= 0 && ftruncate(fd, (off_t)5 << 30) == 0;
	if (fd >= 0)
		close(fd);
	if (!made) {
		free(path);
		free(dir);
		drop_repository(repo);
		SKIP("cannot create a sparse 5 GiB file");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	const struct diag *d = find_diag(&diags, SEVERITY_ERROR, path, "4 GiB");
	CHECK(d != NULL);
	if (!d)
		dump_diags(&diags);
	CHECK(repo_find_name(&idx, "giant") == NULL);
	CHECK_INT_EQ(idx.files_failed, 1);
	check_good_loaded(&idx);

	repo_index_release(&idx);
	diag_list_release(&diags);
	free(path);
	free(dir);
	drop_repository(repo);
}

static void test_hostile_binary_garbage(void)
{
	unsigned char garbage[4096];
	fill_random(garbage, sizeof(garbage), 0x6f62616b65ULL);
	char *repo = make_repository();
	if (!repo || !add_opam_bytes(repo, "binary", "1", (const char *)garbage, sizeof(garbage))) {
		drop_repository(repo);
		SKIP("cannot create the repository");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	char *path = opam_path(repo, "binary", "1");
	located_error(&diags, path);
	CHECK_INT_EQ(idx.files_failed, 1);
	CHECK(repo_find_name(&idx, "binary") == NULL);
	check_good_loaded(&idx);

	free(path);
	repo_index_release(&idx);
	diag_list_release(&diags);
	drop_repository(repo);
}

static void test_hostile_unterminated_string(void)
{
	char *repo = make_repository();
	if (!repo || !add_opam(repo, "bad", "1", "opam-version: \"2.0\"\nsynopsis: \"no end\nbuild: []\n")) {
		drop_repository(repo);
		SKIP("cannot create the repository");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	char *path = opam_path(repo, "bad", "1");
	const struct diag *d = located_error(&diags, path);
	if (d) {
		CHECK(strstr(d->message, "unterminated string") != NULL);
		CHECK_INT_EQ(d->line, 2);
		CHECK_INT_EQ(d->column, 11);
	}
	CHECK(repo_find_name(&idx, "bad") == NULL);
	check_good_loaded(&idx);

	free(path);
	repo_index_release(&idx);
	diag_list_release(&diags);
	drop_repository(repo);
}

static void test_hostile_unterminated_comment(void)
{
	char *repo = make_repository();
	if (!repo || !add_opam(repo, "bad", "1", "opam-version: \"2.0\"\n(* a (* nested *) comment\nbuild: []\n")) {
		drop_repository(repo);
		SKIP("cannot create the repository");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	char *path = opam_path(repo, "bad", "1");
	const struct diag *d = located_error(&diags, path);
	if (d) {
		CHECK(strstr(d->message, "unterminated comment") != NULL);
		CHECK_INT_EQ(d->line, 2);
		CHECK_INT_EQ(d->column, 1);
	}
	CHECK(repo_find_name(&idx, "bad") == NULL);
	check_good_loaded(&idx);

	free(path);
	repo_index_release(&idx);
	diag_list_release(&diags);
	drop_repository(repo);
}

/* Return HEAD, COUNT copies of OPEN, MIDDLE, COUNT copies of CLOSE and a newline. */
static char *repeated_text(const char *head, const char *open, const char *middle, const char *close, size_t count)
{
	struct strbuf sb = { 0 };

	strbuf_adds(&sb, head);
	for (size_t i = 0; i < count; i++)
		strbuf_adds(&sb, open);
	strbuf_adds(&sb, middle);
	for (size_t i = 0; i < count; i++)
		strbuf_adds(&sb, close);
	strbuf_addc(&sb, '\n');
	return strbuf_detach(&sb);
}

static void test_hostile_deep_nesting(void)
{
	static const struct {
		const char *name, *open, *close;
	} cases[] = {
		{ "parens", "(", "" },         { "brackets", "[", "" },         { "mixed", "([", "" },
		{ "parens-closed", "(", ")" }, { "brackets-closed", "[", "]" }, { "mixed-closed", "([", "])" },
	};
	char *repo = make_repository();
	if (!repo)
		SKIP("cannot create the repository");
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *text = repeated_text("x: ", cases[i].open, "a", cases[i].close, DEEP_NESTING);
		bool written = add_opam(repo, cases[i].name, "1", text);
		free(text);
		if (!written) {
			drop_repository(repo);
			SKIP("cannot create the repository");
		}
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *path = opam_path(repo, cases[i].name, "1");
		const struct diag *d = located_error(&diags, path);
		if (d && !strstr(d->message, "nested deeper")) {
			fprintf(stderr, "%s: %s: unexpected message: %s\n", test_current_name, cases[i].name,
				d->message);
			test_current_failed = true;
		}
		CHECK(repo_find_name(&idx, cases[i].name) == NULL);
		free(path);
	}
	CHECK_INT_EQ(idx.files_failed, ARRAY_LEN(cases));
	check_good_loaded(&idx);

	repo_index_release(&idx);
	diag_list_release(&diags);
	drop_repository(repo);
}

/* Long chains built by loops or by recursion other than brackets: the load must finish either way. */
static void test_hostile_long_chains(void)
{
	static const struct {
		const char *name, *head, *open, *middle, *close;
	} cases[] = {
		{ "sections", "", "s {\n", "", "}\n" },     { "negations", "x: ", "!", "a", "" },
		{ "conjunctions", "x: a", " & a", "", "" }, { "disjunctions", "x: a", " | a", "", "" },
		{ "options", "x: a", " {b}", "", "" },
	};
	char *repo = make_repository();
	if (!repo)
		SKIP("cannot create the repository");
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *text = repeated_text(cases[i].head, cases[i].open, cases[i].middle, cases[i].close, DEEP_NESTING);
		bool written = add_opam(repo, cases[i].name, "1", text);
		free(text);
		if (!written) {
			drop_repository(repo);
			SKIP("cannot create the repository");
		}
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	CHECK_INT_EQ(idx.files_read, ARRAY_LEN(cases) + 1);
	/* Each file is either rejected with a located error or indexed. */
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *path = opam_path(repo, cases[i].name, "1");
		if (!repo_find_name(&idx, cases[i].name))
			located_error(&diags, path);
		free(path);
	}
	check_good_loaded(&idx);

	repo_index_release(&idx);
	diag_list_release(&diags);
	drop_repository(repo);
}

static void test_hostile_huge_string(void)
{
	static char chunk[1 << 20];
	memset(chunk, 'a', sizeof(chunk));
	char *repo = make_repository();
	char *dir = repo ? make_version_dir(repo, "huge", "huge.1") : NULL;
	char *path = dir ? xasprintf("%s/opam", dir) : NULL;
	if (!path || !write_repeated(path, "opam-version: \"2.0\"\ndescription: \"", chunk, sizeof(chunk),
				     HUGE_FILE_BYTES, "\"\n")) {
		free(path);
		free(dir);
		drop_repository(repo);
		SKIP("cannot write the 100 MB file");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	double start = now_seconds();
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	printf("ok loaded a 100 MB string in %.2f s\n", now_seconds() - start);
	CHECK_INT_EQ(diags.count, 0);
	CHECK(idx.bytes_read > HUGE_FILE_BYTES);
	const struct package *p = repo_find_package(&idx, "huge", "1");
	CHECK(p != NULL);
	if (p) {
		const struct value *v = field_value(p, "description");
		CHECK(v != NULL);
		if (v)
			CHECK_INT_EQ(v->kind, VALUE_STRING);
		if (v && v->kind == VALUE_STRING) {
			CHECK_INT_EQ(v->len, HUGE_FILE_BYTES);
			CHECK_INT_EQ(v->u.str[0], 'a');
			CHECK_INT_EQ(v->u.str[HUGE_FILE_BYTES - 1], 'a');
			CHECK_INT_EQ(v->u.str[HUGE_FILE_BYTES], '\0');
		}
	}
	check_good_loaded(&idx);

	repo_index_release(&idx);
	diag_list_release(&diags);
	free(path);
	free(dir);
	drop_repository(repo);
}

static void test_hostile_huge_garbage(void)
{
	static unsigned char chunk[1 << 20];
	fill_random(chunk, sizeof(chunk), 0x9e3779b97f4a7c15ULL);
	char *repo = make_repository();
	char *dir = repo ? make_version_dir(repo, "junk", "junk.1") : NULL;
	char *path = dir ? xasprintf("%s/opam", dir) : NULL;
	if (!path || !write_repeated(path, "", chunk, sizeof(chunk), HUGE_FILE_BYTES, "")) {
		free(path);
		free(dir);
		drop_repository(repo);
		SKIP("cannot write the 100 MB file");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	double start = now_seconds();
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	printf("ok loaded 100 MB of garbage in %.2f s\n", now_seconds() - start);
	located_error(&diags, path);
	CHECK(repo_find_name(&idx, "junk") == NULL);
	CHECK_INT_EQ(idx.files_failed, 1);
	check_good_loaded(&idx);

	repo_index_release(&idx);
	diag_list_release(&diags);
	free(path);
	free(dir);
	drop_repository(repo);
}

/* A 100 MB comment on one line, then an invalid byte: the error is located far into a long line. */
static void test_hostile_huge_line(void)
{
	static char chunk[1 << 20];
	memset(chunk, 'c', sizeof(chunk));
	char *repo = make_repository();
	char *dir = repo ? make_version_dir(repo, "long", "long.1") : NULL;
	char *path = dir ? xasprintf("%s/opam", dir) : NULL;
	if (!path || !write_repeated(path, "opam-version: \"2.0\" (*", chunk, sizeof(chunk), HUGE_FILE_BYTES,
				     "*) \x01 x: 1\n")) {
		free(path);
		free(dir);
		drop_repository(repo);
		SKIP("cannot write the 100 MB file");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	const struct diag *d = located_error(&diags, path);
	if (d) {
		CHECK_INT_EQ(d->line, 1);
		CHECK_INT_EQ(d->column, strlen("opam-version: \"2.0\" (*") + HUGE_FILE_BYTES + strlen("*) ") + 1);
		/* The excerpt is cut around the caret, so a long line cannot flood the terminal. */
		if (d->source_line) {
			CHECK(strlen(d->source_line) <= 200);
			CHECK(d->caret < strlen(d->source_line));
			CHECK(d->source_line[d->caret] == '?');
		}
	}
	check_good_loaded(&idx);

	repo_index_release(&idx);
	diag_list_release(&diags);
	free(path);
	free(dir);
	drop_repository(repo);
}

/* opam reads strings as bytes, so invalid UTF-8 inside a string is kept as it is. */
static void test_hostile_utf8_in_string(void)
{
	static const char text[] = "opam-version: \"2.0\"\nsynopsis: \"bad \xff\xfe\xc3( bytes\"\n";
	char *repo = make_repository();
	if (!repo || !add_opam(repo, "utf", "1", text)) {
		drop_repository(repo);
		SKIP("cannot create the repository");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	CHECK_INT_EQ(diags.count, 0);
	const struct package *p = repo_find_package(&idx, "utf", "1");
	CHECK(p != NULL);
	if (p)
		check_synopsis(p, "bad \xff\xfe\xc3( bytes");
	check_good_loaded(&idx);

	repo_index_release(&idx);
	diag_list_release(&diags);
	drop_repository(repo);
}

static void test_hostile_utf8_outside(void)
{
	static const char text[] = "opam-version: \"2.0\"\n\xff\xfe: \"x\"\n";
	char *repo = make_repository();
	if (!repo || !add_opam(repo, "utf", "1", text)) {
		drop_repository(repo);
		SKIP("cannot create the repository");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	char *path = opam_path(repo, "utf", "1");
	const struct diag *d = located_error(&diags, path);
	if (d) {
		CHECK_INT_EQ(d->line, 2);
		CHECK_INT_EQ(d->column, 1);
	}
	CHECK(repo_find_name(&idx, "utf") == NULL);
	check_good_loaded(&idx);

	free(path);
	repo_index_release(&idx);
	diag_list_release(&diags);
	drop_repository(repo);
}

static void test_hostile_missing_opam(void)
{
	char *repo = make_repository();
	char *dir = repo ? make_version_dir(repo, "noopam", "noopam.1") : NULL;
	if (!dir) {
		drop_repository(repo);
		SKIP("cannot create the repository");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	CHECK_INT_EQ(diags.errors, 0);
	const struct diag *d = find_diag(&diags, SEVERITY_WARNING, dir, "no opam file");
	CHECK(d != NULL);
	if (!d)
		dump_diags(&diags);
	CHECK(repo_find_name(&idx, "noopam") == NULL);
	check_good_loaded(&idx);

	repo_index_release(&idx);
	diag_list_release(&diags);
	free(dir);
	drop_repository(repo);
}

static void test_hostile_missing_repository(void)
{
	char *base = scratch_dir("repo");
	if (!base)
		SKIP("cannot create a temporary directory");
	char *missing = xasprintf("%s/does-not-exist", base);

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(missing, &idx, &diags), -1);
	CHECK_INT_EQ(idx.package_count, 0);
	const struct diag *d = find_diag(&diags, SEVERITY_ERROR, NULL, NULL);
	CHECK(d != NULL);
	if (d) {
		CHECK_STR_EQ(d->path, missing);
		CHECK(strstr(d->message, "No such file") != NULL);
	}

	repo_index_release(&idx);
	diag_list_release(&diags);
	free(missing);
	scratch_remove(base);
	free(base);
}

/* A missing repository among good ones fails the load but still names only the missing one. */
static void test_hostile_missing_second(void)
{
	char *repo = make_repository();
	if (!repo)
		SKIP("cannot create the repository");
	char *missing = xasprintf("%s/does-not-exist", repo);
	char *paths[] = { repo, missing };

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(repo_index_load(&idx, paths, 2, TEST_THREADS, &diags), -1);
	CHECK_INT_EQ(diags.errors, 1);
	const struct diag *d = find_diag(&diags, SEVERITY_ERROR, NULL, NULL);
	if (d)
		CHECK_STR_EQ(d->path, missing);

	repo_index_release(&idx);
	diag_list_release(&diags);
	free(missing);
	drop_repository(repo);
}

static void test_hostile_no_packages_dir(void)
{
	char *repo = scratch_dir("repo");
	if (!repo)
		SKIP("cannot create a temporary directory");
	char *readme = xasprintf("%s/README.md", repo);
	scratch_write(readme, "not a repository\n", 17);

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), -1);
	CHECK_INT_EQ(idx.package_count, 0);
	const struct diag *d = find_diag(&diags, SEVERITY_ERROR, NULL, NULL);
	CHECK(d != NULL);
	if (d) {
		CHECK(strstr(d->path, repo) != NULL);
		CHECK(strstr(d->message, "packages") != NULL);
	}

	repo_index_release(&idx);
	diag_list_release(&diags);
	free(readme);
	drop_repository(repo);
}

static void test_hostile_unreadable_file(void)
{
	if (geteuid() == 0)
		SKIP("running as root, where chmod 000 does not stop reads");

	char *repo = make_repository();
	if (!repo || !add_opam(repo, "locked", "1", "opam-version: \"2.0\"\n")) {
		drop_repository(repo);
		SKIP("cannot create the repository");
	}
	char *path = opam_path(repo, "locked", "1");
	CHECK_INT_EQ(chmod(path, 0), 0);

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	const struct diag *d = find_diag(&diags, SEVERITY_ERROR, path, NULL);
	CHECK(d != NULL);
	if (d)
		CHECK(strstr(d->message, "Permission denied") != NULL);
	CHECK(repo_find_name(&idx, "locked") == NULL);
	check_good_loaded(&idx);

	repo_index_release(&idx);
	diag_list_release(&diags);
	chmod(path, 0644);
	free(path);
	drop_repository(repo);
}

static void test_hostile_symlink_loops(void)
{
	char *repo = make_repository();
	char *loop_parent = repo ? xasprintf("%s/packages/loop", repo) : NULL;
	char *loop_dir = repo ? xasprintf("%s/packages/loop/loop.1", repo) : NULL;
	char *self_dir = repo ? make_version_dir(repo, "self", "self.1") : NULL;
	char *self_opam = self_dir ? xasprintf("%s/opam", self_dir) : NULL;
	char *package_loop = repo ? xasprintf("%s/packages/ring", repo) : NULL;
	bool made = self_opam && scratch_make_dirs(loop_parent) && symlink("loop.1", loop_dir) == 0 &&
		    symlink("opam", self_opam) == 0 && symlink("ring", package_loop) == 0;
	if (!made) {
		free(loop_parent);
		free(loop_dir);
		free(self_dir);
		free(self_opam);
		free(package_loop);
		drop_repository(repo);
		SKIP("cannot create the symbolic links");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	CHECK(find_diag(&diags, SEVERITY_ERROR, loop_dir, NULL) != NULL);
	CHECK(find_diag(&diags, SEVERITY_ERROR, self_opam, NULL) != NULL);
	CHECK(find_diag(&diags, SEVERITY_ERROR, package_loop, NULL) != NULL);
	CHECK_INT_EQ(diags.errors, 3);
	if (diags.errors != 3)
		dump_diags(&diags);
	CHECK(repo_find_name(&idx, "loop") == NULL);
	CHECK(repo_find_name(&idx, "self") == NULL);
	CHECK(repo_find_name(&idx, "ring") == NULL);
	check_good_loaded(&idx);

	repo_index_release(&idx);
	diag_list_release(&diags);
	free(loop_parent);
	free(loop_dir);
	free(self_dir);
	free(self_opam);
	free(package_loop);
	drop_repository(repo);
}

/*
 * Load REPO in a child process killed after LOAD_TIMEOUT_SECONDS, so that a load that blocks
 * fails the test instead of hanging it. The child exits with 0 when the load reported exactly
 * COUNT errors, the error for each ERROR_PATHS[i] contains "not a regular file", and the good
 * package was indexed.
 */
static void check_load_in_child(const char *repo, char *const *error_paths, size_t count)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "%s: fork: %s\n", test_current_name, strerror(errno));
		test_current_failed = true;
		return;
	}
	if (pid == 0) {
		alarm(LOAD_TIMEOUT_SECONDS);
		struct repo_index idx;
		struct diag_list diags = { 0 };
		int status = load_repository(repo, &idx, &diags);
		bool found = diags.errors == count;
		for (size_t i = 0; i < count; i++)
			found = found && find_diag(&diags, SEVERITY_ERROR, error_paths[i], "not a regular file");
		bool good = repo_find_package(&idx, "good", "1") != NULL;
		if (!found)
			dump_diags(&diags);
		_exit(status == 0 && found && good ? 0 : 1);
	}

	int wstatus = 0;
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(wstatus))
		fprintf(stderr, "%s: the load was stopped by signal %d (SIGALRM: it hung)\n", test_current_name,
			WTERMSIG(wstatus));
	CHECK(WIFEXITED(wstatus));
	CHECK_INT_EQ(WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1, 0);
}

/*
 * FIFOs named opam, and FIFOs where a package or version directory is expected. Opening a FIFO
 * for reading blocks until a writer opens it, so the load must never wait on one. Only the opam
 * FIFO is an error, because entries that are not directories are skipped where directories are expected.
 */
static void test_hostile_fifo(void)
{
	char *repo = make_repository();
	char *dir = repo ? make_version_dir(repo, "fifo", "fifo.1") : NULL;
	char *path = dir ? xasprintf("%s/opam", dir) : NULL;
	char *package_fifo = repo ? xasprintf("%s/packages/fifodir", repo) : NULL;
	char *version_parent = repo ? xasprintf("%s/packages/fifover", repo) : NULL;
	char *version_fifo = repo ? xasprintf("%s/packages/fifover/fifover.1", repo) : NULL;
	bool made = path && mkfifo(path, 0644) == 0 && mkfifo(package_fifo, 0644) == 0 &&
		    scratch_make_dirs(version_parent) && mkfifo(version_fifo, 0644) == 0;

	if (made)
		check_load_in_child(repo, &path, 1);

	free(path);
	free(dir);
	free(package_fifo);
	free(version_parent);
	free(version_fifo);
	drop_repository(repo);
	if (!made)
		SKIP("cannot create the FIFOs");
}

/* An opam "file" that is a directory, or a symbolic link to a character device. */
static void test_hostile_special_files(void)
{
	char *repo = make_repository();
	char *dir_path = repo ? xasprintf("%s/packages/isdir/isdir.1/opam", repo) : NULL;
	char *device_dir = repo ? make_version_dir(repo, "device", "device.1") : NULL;
	char *device_path = device_dir ? xasprintf("%s/opam", device_dir) : NULL;
	bool made = device_path && scratch_make_dirs(dir_path) && symlink("/dev/zero", device_path) == 0;

	if (made) {
		char *paths[] = { dir_path, device_path };
		check_load_in_child(repo, paths, 2);
	}

	free(dir_path);
	free(device_dir);
	free(device_path);
	drop_repository(repo);
	if (!made)
		SKIP("cannot create the special files");
}

static void test_hostile_bad_dir_name(void)
{
	char *repo = make_repository();
	char *other = repo ? make_version_dir(repo, "pkg", "other.1") : NULL;
	char *no_dot = repo ? make_version_dir(repo, "pkg", "pkg") : NULL;
	char *prefix = repo ? make_version_dir(repo, "pkg", "pkgx.1") : NULL;
	char *bad_name = repo ? make_version_dir(repo, "bad name", "bad name.1") : NULL;
	if (!other || !no_dot || !prefix || !bad_name) {
		free(other);
		free(no_dot);
		free(prefix);
		free(bad_name);
		drop_repository(repo);
		SKIP("cannot create the repository");
	}
	char *opam_files[] = { other, no_dot, prefix, bad_name };
	for (size_t i = 0; i < ARRAY_LEN(opam_files); i++) {
		char *path = xasprintf("%s/opam", opam_files[i]);
		scratch_write(path, "opam-version: \"2.0\"\n", 20);
		free(path);
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	CHECK_INT_EQ(diags.errors, 0);
	CHECK(find_diag(&diags, SEVERITY_WARNING, other, "pkg.VERSION") != NULL);
	CHECK(find_diag(&diags, SEVERITY_WARNING, no_dot, "pkg.VERSION") != NULL);
	CHECK(find_diag(&diags, SEVERITY_WARNING, prefix, "pkg.VERSION") != NULL);
	CHECK(find_diag(&diags, SEVERITY_WARNING, NULL, "'bad name' is not a valid package name") != NULL);
	CHECK(repo_find_name(&idx, "pkg") == NULL);
	CHECK(repo_find_name(&idx, "bad name") == NULL);
	CHECK_INT_EQ(idx.package_count, 1);
	check_good_loaded(&idx);

	repo_index_release(&idx);
	diag_list_release(&diags);
	free(other);
	free(no_dot);
	free(prefix);
	free(bad_name);
	drop_repository(repo);
}

static void test_hostile_bad_version(void)
{
	static const char *const versions[] = { "1 0", "1!", "", "1\xff" };
	char *repo = make_repository();
	if (!repo)
		SKIP("cannot create the repository");
	for (size_t i = 0; i < ARRAY_LEN(versions); i++) {
		if (!add_opam(repo, "pkg", versions[i], "opam-version: \"2.0\"\n")) {
			drop_repository(repo);
			SKIP("cannot create the repository");
		}
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	CHECK_INT_EQ(diags.errors, 0);
	for (size_t i = 0; i < ARRAY_LEN(versions); i++) {
		char *dir = xasprintf("%s/packages/pkg/pkg.%s", repo, versions[i]);
		char *message = xasprintf("'%s' is not a valid version", versions[i]);
		const struct diag *d = find_diag(&diags, SEVERITY_WARNING, dir, message);
		if (!d) {
			fprintf(stderr, "%s: no warning for version \"%s\"\n", test_current_name, versions[i]);
			test_current_failed = true;
		}
		free(message);
		free(dir);
	}
	CHECK(repo_find_name(&idx, "pkg") == NULL);
	check_good_loaded(&idx);

	repo_index_release(&idx);
	diag_list_release(&diags);
	drop_repository(repo);
}

static void test_hostile_wrong_shape(void)
{
	static const char text[] = "opam-version: \"2.0\"\n"
				   "depends: 42\n"
				   "flags: \"light-uninstall\"\n"
				   "available: os = \"linux\"\n"
				   "build: [[\"make\"]]\n"
				   "conflicts: [\"other\"]\n";
	char *repo = make_repository();
	if (!repo || !add_opam(repo, "shape", "1", text)) {
		drop_repository(repo);
		SKIP("cannot create the repository");
	}

	struct repo_index idx;
	struct diag_list diags = { 0 };
	CHECK_INT_EQ(load_repository(repo, &idx, &diags), 0);
	CHECK_INT_EQ(diags.errors, 0);
	char *path = opam_path(repo, "shape", "1");
	const struct diag *depends = find_diag(&diags, SEVERITY_WARNING, path, "'depends'");
	CHECK(depends != NULL);
	if (depends) {
		CHECK_INT_EQ(depends->line, 2);
		CHECK_INT_EQ(depends->column, 1);
	}
	CHECK(find_diag(&diags, SEVERITY_WARNING, path, "'flags'") != NULL);
	CHECK_INT_EQ(diags.warnings, 2);

	const struct package *p = repo_find_package(&idx, "shape", "1");
	CHECK(p != NULL);
	if (p) {
		CHECK(p->depends == NULL);
		CHECK_INT_EQ(p->flags, 0);
		CHECK(p->available != NULL);
		CHECK(p->build != NULL);
		CHECK(p->conflicts != NULL);

		struct variables vars = { 0 };
		struct arena scratch = { 0 };
		options_default_environment(&vars, "5.3.0");
		CHECK(package_is_available(p, &vars, &scratch));
		variables_set_string(&vars, "os", "macos");
		CHECK(!package_is_available(p, &vars, &scratch));
		arena_release(&scratch);
		variables_release(&vars);
	}
	check_good_loaded(&idx);

	free(path);
	repo_index_release(&idx);
	diag_list_release(&diags);
	drop_repository(repo);
}

/* ---- Command line ---- */

/* Run COMMAND through the shell and store its stdout and stderr in *OUTPUT. Returns its exit status, or -1. */
static int run_command(const char *command, char **output)
{
	char *with_stderr = xasprintf("%s 2>&1", command);
	FILE *stream = popen(with_stderr, "r");
	struct strbuf out = { 0 };
	char buffer[4096];
	size_t n;

	free(with_stderr);
	if (!stream) {
		*output = xstrdup("");
		return -1;
	}
	while ((n = fread(buffer, 1, sizeof(buffer), stream)) > 0)
		strbuf_add(&out, buffer, n);
	int status = pclose(stream);
	*output = xstrdup(strbuf_str(&out));
	strbuf_release(&out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char *obake_binary(void)
{
	const char *obake = getenv("OBAKE");

	return obake && *obake ? obake : NULL;
}

static void test_cli_check_clean(void)
{
	const char *obake = obake_binary();
	if (!obake)
		SKIP("OBAKE is not set to the obake binary (make check sets it)");
	char *repo = make_repository();
	if (!repo)
		SKIP("cannot create the repository");

	char *command = xasprintf("'%s' check -r '%s'", obake, repo);
	char *output = NULL;
	CHECK_INT_EQ(run_command(command, &output), 0);
	CHECK(strstr(output, "error") == NULL);
	CHECK(strstr(output, "checked 1 opam files") != NULL);

	free(output);
	free(command);
	drop_repository(repo);
}

/* A file that only draws warnings still passes the check. */
static void test_cli_check_warnings(void)
{
	const char *obake = obake_binary();
	if (!obake)
		SKIP("OBAKE is not set to the obake binary (make check sets it)");
	char *repo = make_repository();
	if (!repo || !add_opam(repo, "shape", "1", "opam-version: \"2.0\"\ndepends: 42\n")) {
		drop_repository(repo);
		SKIP("cannot create the repository");
	}

	char *command = xasprintf("'%s' check -r '%s'", obake, repo);
	char *output = NULL;
	CHECK_INT_EQ(run_command(command, &output), 0);
	CHECK(strstr(output, "warning: field 'depends' ignored") != NULL);

	free(output);
	free(command);
	drop_repository(repo);
}

static void test_cli_check_parse_error(void)
{
	const char *obake = obake_binary();
	if (!obake)
		SKIP("OBAKE is not set to the obake binary (make check sets it)");
	char *repo = make_repository();
	if (!repo || !add_opam(repo, "bad", "1", "opam-version: \"2.0\"\nsynopsis: \"no end\n")) {
		drop_repository(repo);
		SKIP("cannot create the repository");
	}

	char *command = xasprintf("'%s' check -r '%s'", obake, repo);
	char *output = NULL;
	CHECK_INT_EQ(run_command(command, &output), 1);

	/* path:line:col: error: message, then the source line and a caret under column 11. */
	char *path = opam_path(repo, "bad", "1");
	char *expected = xasprintf("%s:2:11: error: unterminated string\n"
				   "  synopsis: \"no end\n"
				   "            ^\n",
				   path);
	if (!strstr(output, expected)) {
		fprintf(stderr, "%s: output lacks\n%s---- output:\n%s\n", test_current_name, expected, output);
		test_current_failed = true;
	}

	free(expected);
	free(path);
	free(output);
	free(command);
	drop_repository(repo);
}

static void test_cli_list_no_repository(void)
{
	const char *obake = obake_binary();
	if (!obake)
		SKIP("OBAKE is not set to the obake binary (make check sets it)");

	char *command = xasprintf("env -u OBAKE_OPAM_REPOSITORY '%s' list", obake);
	char *output = NULL;
	CHECK_INT_EQ(run_command(command, &output), 2);
	CHECK(strstr(output, "-r") != NULL);

	free(output);
	free(command);
}

static void test_cli_missing_repository(void)
{
	const char *obake = obake_binary();
	if (!obake)
		SKIP("OBAKE is not set to the obake binary (make check sets it)");
	char *base = scratch_dir("repo");
	if (!base)
		SKIP("cannot create a temporary directory");

	char *missing = xasprintf("%s/does-not-exist", base);
	char *command = xasprintf("'%s' check -r '%s'", obake, missing);
	char *output = NULL;
	CHECK_INT_EQ(run_command(command, &output), 2);
	CHECK(strstr(output, missing) != NULL);

	free(output);
	free(command);
	free(missing);
	scratch_remove(base);
	free(base);
}

static void test_cli_list_two_repositories(void)
{
	const char *obake = obake_binary();
	if (!obake)
		SKIP("OBAKE is not set to the obake binary (make check sets it)");
	char *dirs[2] = { NULL, NULL };
	if (!make_two_repositories(dirs)) {
		release_two_repositories(dirs);
		SKIP("cannot create the repositories");
	}

	char *command = xasprintf("'%s' list -q --all-versions -r '%s' -r '%s'", obake, dirs[0], dirs[1]);
	char *output = NULL;
	CHECK_INT_EQ(run_command(command, &output), 0);
	CHECK_STR_EQ(output, "bar.1\nfoo.1\nfoo.2\nfoo.3\n");
	free(output);
	free(command);

	command = xasprintf("'%s' list -q -r '%s' -r '%s'", obake, dirs[0], dirs[1]);
	CHECK_INT_EQ(run_command(command, &output), 0);
	CHECK_STR_EQ(output, "bar.1\nfoo.3\n");
	free(output);
	free(command);

	release_two_repositories(dirs);
}

int main(void)
{
	double start = now_seconds();

	RUN_TEST(test_snapshot_2026_counts);
	RUN_TEST(test_snapshot_2026_equal_versions);
	RUN_TEST(test_snapshot_2024_counts);
	RUN_TEST(test_latest_ocaml_5_3_0);
	RUN_TEST(test_latest_ocaml_5_4_1);
	RUN_TEST(test_round_trip_2026);
	RUN_TEST(test_round_trip_2024);
	snapshot_release(&snapshot_2026);
	snapshot_release(&snapshot_2024);

	RUN_TEST(test_repos_first_wins);
	RUN_TEST(test_repos_second_versions);
	RUN_TEST(test_repos_second_only);
	RUN_TEST(test_repos_equal_versions);
	RUN_TEST(test_repos_same_twice);
	RUN_TEST(test_repos_equal_in_one);

	RUN_TEST(test_hostile_empty_file);
	RUN_TEST(test_hostile_empty_packages);
	RUN_TEST(test_hostile_nul_in_string);
	RUN_TEST(test_hostile_over_4_gib);
	RUN_TEST(test_hostile_binary_garbage);
	RUN_TEST(test_hostile_unterminated_string);
	RUN_TEST(test_hostile_unterminated_comment);
	RUN_TEST(test_hostile_deep_nesting);
	RUN_TEST(test_hostile_long_chains);
	RUN_TEST(test_hostile_huge_string);
	RUN_TEST(test_hostile_huge_garbage);
	RUN_TEST(test_hostile_huge_line);
	RUN_TEST(test_hostile_utf8_in_string);
	RUN_TEST(test_hostile_utf8_outside);
	RUN_TEST(test_hostile_missing_opam);
	RUN_TEST(test_hostile_missing_repository);
	RUN_TEST(test_hostile_missing_second);
	RUN_TEST(test_hostile_no_packages_dir);
	RUN_TEST(test_hostile_unreadable_file);
	RUN_TEST(test_hostile_symlink_loops);
	RUN_TEST(test_hostile_fifo);
	RUN_TEST(test_hostile_special_files);
	RUN_TEST(test_hostile_bad_dir_name);
	RUN_TEST(test_hostile_bad_version);
	RUN_TEST(test_hostile_wrong_shape);

	RUN_TEST(test_cli_check_clean);
	RUN_TEST(test_cli_check_warnings);
	RUN_TEST(test_cli_check_parse_error);
	RUN_TEST(test_cli_list_no_repository);
	RUN_TEST(test_cli_missing_repository);
	RUN_TEST(test_cli_list_two_repositories);

	printf("ok all tests in %.1f s\n", now_seconds() - start);
	return test_summary();
}
