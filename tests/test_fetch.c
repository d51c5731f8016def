/*
 * Tests of the source cache: downloads from file:// URLs and local paths, cache hits, checksum
 * verification of every kind, archive mirrors and rejected sources. An optional HTTP server
 * (python3 on 127.0.0.1) covers redirects, HTTP errors and the cap on parallel transfers.
 * Nothing here reaches the network.
 */
#include "harness.h"
#include "scratch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fetch.h"
#include "util.h"

/* Digests of "abc", the test vectors of RFC 1321 (md5) and FIPS 180-2 (sha256, sha512). */
#define ABC_MD5 "900150983cd24fb0d6963f7d28e17f72"
#define ABC_SHA256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define ABC_SHA512                                                                                                     \
	"ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643c" \
	"e80e2a9ac94fa54ca49f"
/* The sha256 of "abd", a valid checksum that "abc" does not match. */
#define ABD_SHA256 "a52d159f262b2c6ddb724a61840befc36eb30c88877a4030b65cbe86298449c9"

/* Seconds to wait for the test HTTP server to report its port. */
#define SERVER_START_SECONDS 10

/* Directory of this run's files, removed at the end. */
static char *test_root;

/* ---- Files and directories ---- */

/* Make a new directory under the test root. The caller frees the path. */
static char *new_dir(const char *name)
{
	static unsigned counter;
	char *path = xasprintf("%s/%s-%u", test_root, name, counter++);

	if (mkdir(path, 0755) != 0)
		fprintf(stderr, "%s: cannot create %s: %s\n", test_current_name, path, strerror(errno));
	return path;
}

/* Write DATA to DIR/NAME and return the path. The caller frees it. */
static char *make_file(const char *dir, const char *name, const char *data)
{
	char *path = xasprintf("%s/%s", dir, name);

	scratch_write_text(path, data);
	return path;
}

static bool file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Return the contents of the cache file for CHECKSUM, or NULL. The caller frees it. */
static char *cached_contents(const char *cache, const char *checksum)
{
	char *path = fetch_cache_path(cache, checksum);
	char *data = path ? scratch_read_text(path) : NULL;

	free(path);
	return data;
}

static unsigned regular_file_count;

static int count_regular(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (type == FTW_F && S_ISREG(st->st_mode))
		regular_file_count++;
	return 0;
}

/* Count the regular files below DIR, temporary files included. */
static unsigned count_files(const char *dir)
{
	regular_file_count = 0;
	nftw(dir, count_regular, 16, FTW_PHYS);
	return regular_file_count;
}

static char *file_url(const char *path)
{
	return xasprintf("file://%s", path);
}

/* Compute the hex sha256 of TEXT with OpenSSL directly, as the expected value of a checksum. */
static void sha256_hex(const char *text, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	EVP_Digest(text, strlen(text), md, &len, EVP_sha256(), NULL);
	for (unsigned b = 0; b < len; b++)
		snprintf(hex + 2 * b, 3, "%02x", md[b]);
}

/* ---- Running fetch_all ---- */

/* Standard error of the last captured fetch_all call. */
static char *captured;

/*
 * Run fetch_all with standard error sent to a file, and keep what it printed in `captured`, so
 * that tests can check the messages and a passing run stays quiet.
 */
static unsigned fetch_captured(const char *cache, const struct fetch_item *items, size_t count, char *const *mirrors,
			       size_t mirror_count, unsigned jobs, struct fetch_stats *stats)
{
	char *log_path = xasprintf("%s/stderr.log", test_root);
	int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int saved = dup(STDERR_FILENO);

	fflush(stderr);
	dup2(log_fd, STDERR_FILENO);
	close(log_fd);
	unsigned failed = fetch_all(cache, items, count, mirrors, mirror_count, jobs, stats);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);

	free(captured);
	captured = scratch_read_text(log_path);
	if (!captured)
		captured = xstrdup("");
	free(log_path);
	return failed;
}

/* Fetch the one ITEM into CACHE with no archive mirrors. */
static unsigned fetch_one(const char *cache, const char *package, const struct package_source *source,
			  struct fetch_stats *stats)
{
	struct fetch_item item = { package, source };

	return fetch_captured(cache, &item, 1, NULL, 0, 1, stats);
}

static bool captured_contains(const char *text)
{
	if (!strstr(captured, text)) {
		fprintf(stderr, "%s: standard error lacks \"%s\"; it was:\n%s", test_current_name, text, captured);
		return false;
	}
	return true;
}

/* ---- Downloads and the cache ---- */

static void test_fetch_into_empty_cache(void)
{
	char *src_dir = new_dir("src"), *cache = new_dir("cache");
	char *file = make_file(src_dir, "abc.tar.gz", "abc");
	char *url = file_url(file);
	const char *sums[] = { "sha256=" ABC_SHA256 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 1 };
	struct fetch_stats stats;

	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	CHECK_INT_EQ(stats.cached, 0);
	CHECK_INT_EQ(stats.failed, 0);
	CHECK_INT_EQ(stats.no_checksum, 0);
	char *data = cached_contents(cache, sums[0]);
	CHECK_STR_EQ(data, "abc");
	CHECK_INT_EQ(count_files(cache), 1);
	CHECK_STR_EQ(captured, "");

	free(data);
	free(url);
	free(file);
	free(cache);
	free(src_dir);
}

static void test_fetch_again_uses_cache(void)
{
	char *src_dir = new_dir("src"), *cache = new_dir("cache");
	char *file = make_file(src_dir, "abc.tar.gz", "abc");
	char *url = file_url(file);
	const char *sums[] = { "sha256=" ABC_SHA256 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 1 };
	struct fetch_stats stats;

	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	/* Without the source file, only the cache can satisfy the second run. */
	unlink(file);
	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 0);
	CHECK_INT_EQ(stats.cached, 1);
	CHECK_INT_EQ(stats.downloaded, 0);
	CHECK_INT_EQ(stats.failed, 0);
	CHECK_STR_EQ(captured, "");

	free(url);
	free(file);
	free(cache);
	free(src_dir);
}

static void test_three_checksums_stored(void)
{
	char *src_dir = new_dir("src"), *cache = new_dir("cache");
	char *file = make_file(src_dir, "abc.tar.gz", "abc");
	char *url = file_url(file);
	const char *sums[] = { "md5=" ABC_MD5, "sha512=" ABC_SHA512, "sha256=" ABC_SHA256 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 3 };
	struct fetch_stats stats;
	struct stat first;

	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	char *first_path = fetch_cache_path(cache, sums[0]);
	CHECK(stat(first_path, &first) == 0);
	for (size_t i = 0; i < ARRAY_LEN(sums); i++) {
		char *path = fetch_cache_path(cache, sums[i]);
		char *data = scratch_read_text(path);
		struct stat st;
		CHECK_STR_EQ(data, "abc");
		/* One file under three names: hard links, not copies. */
		CHECK_INT_EQ(stat(path, &st), 0);
		CHECK_INT_EQ(st.st_ino, first.st_ino);
		CHECK_INT_EQ(st.st_mode & 0777, 0644);
		free(data);
		free(path);
	}
	CHECK_INT_EQ(first.st_nlink, 3);

	free(first_path);
	free(url);
	free(file);
	free(cache);
	free(src_dir);
}

static void test_bare_md5_checksum(void)
{
	char *src_dir = new_dir("src"), *cache = new_dir("cache");
	char *file = make_file(src_dir, "abc.tar.gz", "abc");
	char *url = file_url(file);
	const char *sums[] = { ABC_MD5 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 1 };
	struct fetch_stats stats;

	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	char *path = xasprintf("%s/md5/90/" ABC_MD5, cache);
	char *data = scratch_read_text(path);
	CHECK_STR_EQ(data, "abc");

	free(data);
	free(path);
	free(url);
	free(file);
	free(cache);
	free(src_dir);
}

static void test_wrong_checksum_fails(void)
{
	char *src_dir = new_dir("src"), *cache = new_dir("cache");
	char *file = make_file(src_dir, "abc.tar.gz", "abc");
	char *url = file_url(file);
	const char *sums[] = { "sha256=" ABD_SHA256 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 1 };
	struct fetch_stats stats;

	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 1);
	CHECK_INT_EQ(stats.failed, 1);
	CHECK_INT_EQ(stats.downloaded, 0);
	CHECK_INT_EQ(count_files(cache), 0);
	char *expected = xasprintf(
		"abc.1.0: %s: checksum mismatch: expected sha256=" ABD_SHA256 ", got sha256=" ABC_SHA256 "\n", url);
	CHECK(captured_contains(expected));

	free(expected);
	free(url);
	free(file);
	free(cache);
	free(src_dir);
}

static void test_missing_file_fails(void)
{
	char *src_dir = new_dir("src"), *cache = new_dir("cache");
	char *url = xasprintf("file://%s/missing.tar.gz", src_dir);
	const char *sums[] = { "sha256=" ABC_SHA256 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 1 };
	struct fetch_stats stats;

	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 1);
	CHECK_INT_EQ(stats.failed, 1);
	CHECK_INT_EQ(count_files(cache), 0);
	char *expected = xasprintf("abc.1.0: %s: ", url);
	CHECK(captured_contains(expected));

	free(expected);
	free(url);
	free(cache);
	free(src_dir);
}

/* A FIFO behind a file:// URL is refused at once instead of waiting for a writer that never comes. */
static void test_fifo_source_rejected(void)
{
	char *src_dir = new_dir("src"), *cache = new_dir("cache");
	char *path = xasprintf("%s/pipe.tar.gz", src_dir), *url = xasprintf("file://%s", path);
	const char *sums[] = { "sha256=" ABC_SHA256 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 1 };
	struct fetch_stats stats;

	CHECK_INT_EQ(mkfifo(path, 0644), 0);
	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 1);
	CHECK_INT_EQ(stats.failed, 1);
	CHECK(captured_contains("not a regular file"));

	free(path);
	free(url);
	free(cache);
	free(src_dir);
}

static void test_local_path_source(void)
{
	char *src_dir = new_dir("src"), *cache = new_dir("cache");
	char *file = make_file(src_dir, "abc.tar.gz", "abc");
	const char *sums[] = { "sha512=" ABC_SHA512 };
	struct package_source source = { .src = file, .checksums = sums, .checksum_count = 1 };
	struct fetch_stats stats;

	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	char *data = cached_contents(cache, sums[0]);
	CHECK_STR_EQ(data, "abc");

	free(data);
	free(file);
	free(cache);
	free(src_dir);
}

static void test_truncated_cache_file_refetched(void)
{
	char *src_dir = new_dir("src"), *cache = new_dir("cache");
	char *file = make_file(src_dir, "abc.tar.gz", "abc");
	char *url = file_url(file);
	const char *sums[] = { "sha256=" ABC_SHA256 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 1 };
	struct fetch_stats stats;
	char *path = fetch_cache_path(cache, sums[0]);

	scratch_write_text_with_parents(path, "ab");
	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 0);
	CHECK_INT_EQ(stats.cached, 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	char *data = scratch_read_text(path);
	CHECK_STR_EQ(data, "abc");
	char *expected = xasprintf("abc.1.0: removing %s from the cache because of a checksum mismatch", path);
	CHECK(captured_contains(expected));
	free(expected);

	free(data);
	free(path);
	free(url);
	free(file);
	free(cache);
	free(src_dir);
}

static void test_truncated_cache_file_without_source(void)
{
	char *cache = new_dir("cache");
	char *url = xasprintf("file://%s/missing.tar.gz", cache);
	const char *sums[] = { "sha256=" ABC_SHA256 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 1 };
	struct fetch_stats stats;
	char *path = fetch_cache_path(cache, sums[0]);

	scratch_write_text_with_parents(path, "ab");
	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 1);
	CHECK_INT_EQ(stats.cached, 0);
	CHECK_INT_EQ(stats.failed, 1);
	/* The corrupt copy is removed, so that opam cannot pick it up either. */
	CHECK(!file_exists(path));

	free(path);
	free(url);
	free(cache);
}

static void test_cached_file_gains_missing_paths(void)
{
	char *cache = new_dir("cache");
	char *url = xasprintf("file://%s/missing.tar.gz", cache);
	const char *sums[] = { "md5=" ABC_MD5, "sha256=" ABC_SHA256 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 2 };
	struct fetch_stats stats;
	char *sha256_path = fetch_cache_path(cache, sums[1]);

	scratch_write_text_with_parents(sha256_path, "abc");
	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 0);
	CHECK_INT_EQ(stats.cached, 1);
	char *data = cached_contents(cache, sums[0]);
	CHECK_STR_EQ(data, "abc");

	free(data);
	free(sha256_path);
	free(url);
	free(cache);
}

static void test_cached_file_checked_against_all(void)
{
	char *cache = new_dir("cache");
	char *url = xasprintf("file://%s/missing.tar.gz", cache);
	const char *sums[] = { "md5=00000000000000000000000000000000", "sha256=" ABC_SHA256 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 2 };
	struct fetch_stats stats;
	char *sha256_path = fetch_cache_path(cache, sums[1]);
	char *md5_path = fetch_cache_path(cache, sums[0]);

	/* The cached file matches the sha256 but not the md5, so it is not the item's file. */
	scratch_write_text_with_parents(sha256_path, "abc");
	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 1);
	CHECK_INT_EQ(stats.cached, 0);
	CHECK_INT_EQ(stats.failed, 1);
	CHECK(!file_exists(md5_path));
	/* It is still a valid entry for its own checksum, so it stays. */
	CHECK(file_exists(sha256_path));

	free(md5_path);
	free(sha256_path);
	free(url);
	free(cache);
}

static void test_shared_archive_fetched_once(void)
{
	char *src_dir = new_dir("src"), *cache = new_dir("cache");
	char *file = make_file(src_dir, "abc.tar.gz", "abc");
	char *url = file_url(file);
	char *missing = xasprintf("file://%s/missing.tar.gz", src_dir);
	const char *sums[] = { "sha256=" ABC_SHA256 };
	const char *both[] = { "md5=" ABC_MD5, "sha256=" ABC_SHA256 };
	struct package_source first = { .src = url, .checksums = sums, .checksum_count = 1 };
	struct package_source second = { .src = missing, .checksums = both, .checksum_count = 2 };
	struct fetch_item items[] = { { "a.1", &first }, { "b.1", &second } };
	struct fetch_stats stats;

	/* The second item's URL is missing, so it can only succeed through the first one's download. */
	CHECK_INT_EQ(fetch_captured(cache, items, 2, NULL, 0, 4, &stats), 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	CHECK_INT_EQ(stats.cached, 1);
	char *data = cached_contents(cache, both[0]);
	CHECK_STR_EQ(data, "abc");

	free(data);
	free(missing);
	free(url);
	free(file);
	free(cache);
	free(src_dir);
}

static void test_item_without_checksum(void)
{
	char *src_dir = new_dir("src"), *cache = new_dir("cache");
	char *file = make_file(src_dir, "abc.tar.gz", "abc");
	char *url = file_url(file);
	struct package_source source = { .src = url };
	struct fetch_stats stats;

	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	CHECK_INT_EQ(stats.no_checksum, 1);
	CHECK_INT_EQ(stats.failed, 0);
	char *data = cached_contents(cache, "sha256=" ABC_SHA256);
	CHECK_STR_EQ(data, "abc");
	CHECK_INT_EQ(count_files(cache), 1);

	free(data);
	free(url);
	free(file);
	free(cache);
	free(src_dir);
}

static void test_fifty_items_four_jobs(void)
{
	enum { ITEMS = 50 };
	char *src_dir = new_dir("src"), *cache = new_dir("cache");
	char *urls[ITEMS], *sums[ITEMS], *packages[ITEMS], *contents[ITEMS];
	struct package_source sources[ITEMS];
	struct fetch_item items[ITEMS];
	struct fetch_stats stats;

	for (int i = 0; i < ITEMS; i++) {
		char hex[65];
		contents[i] = xasprintf("archive %d", i);
		sha256_hex(contents[i], hex);
		char *name = xasprintf("p%d.tar.gz", i);
		char *file = make_file(src_dir, name, contents[i]);
		urls[i] = file_url(file);
		sums[i] = xasprintf("sha256=%s", hex);
		packages[i] = xasprintf("p%d.1.0", i);
		sources[i] = (struct package_source){ .src = urls[i],
						      .checksums = (const char **)&sums[i],
						      .checksum_count = 1 };
		items[i] = (struct fetch_item){ packages[i], &sources[i] };
		free(file);
		free(name);
	}

	CHECK_INT_EQ(fetch_captured(cache, items, ITEMS, NULL, 0, 4, &stats), 0);
	CHECK_INT_EQ(stats.downloaded, ITEMS);
	CHECK_INT_EQ(stats.failed, 0);
	CHECK_INT_EQ(count_files(cache), ITEMS);
	for (int i = 0; i < ITEMS; i++) {
		char *data = cached_contents(cache, sums[i]);
		CHECK_STR_EQ(data, contents[i]);
		free(data);
	}
	CHECK_INT_EQ(fetch_captured(cache, items, ITEMS, NULL, 0, 4, &stats), 0);
	CHECK_INT_EQ(stats.cached, ITEMS);
	CHECK_INT_EQ(stats.downloaded, 0);

	for (int i = 0; i < ITEMS; i++) {
		free(urls[i]);
		free(sums[i]);
		free(packages[i]);
		free(contents[i]);
	}
	free(cache);
	free(src_dir);
}

/* ---- Mirrors ---- */

static void test_mirror_dir_used_first(void)
{
	char *mirror = new_dir("mirror"), *cache = new_dir("cache");
	char *url = xasprintf("file://%s/missing.tar.gz", mirror);
	char *mirror_file = xasprintf("%s/sha256/ba/" ABC_SHA256, mirror);
	const char *sums[] = { "md5=" ABC_MD5, "sha256=" ABC_SHA256 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 2 };
	struct fetch_item item = { "abc.1.0", &source };
	char *mirrors[] = { mirror };
	struct fetch_stats stats;

	/* The mirror has the file only under its sha256, the URL not at all. */
	scratch_write_text_with_parents(mirror_file, "abc");
	CHECK_INT_EQ(fetch_captured(cache, &item, 1, mirrors, 1, 1, &stats), 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	CHECK_INT_EQ(stats.failed, 0);
	char *data = cached_contents(cache, sums[0]);
	CHECK_STR_EQ(data, "abc");
	CHECK_STR_EQ(captured, "");

	free(data);
	free(mirror_file);
	free(url);
	free(cache);
	free(mirror);
}

static void test_mirror_url_used_first(void)
{
	char *mirror = new_dir("mirror"), *cache = new_dir("cache");
	char *url = xasprintf("file://%s/missing.tar.gz", mirror);
	char *mirror_file = xasprintf("%s/md5/90/" ABC_MD5, mirror);
	char *mirror_url = xasprintf("file://%s/", mirror);
	char *empty_mirror = new_dir("empty-mirror");
	const char *sums[] = { "md5=" ABC_MD5 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 1 };
	struct fetch_item item = { "abc.1.0", &source };
	char *mirrors[] = { empty_mirror, mirror_url };
	struct fetch_stats stats;

	/* The first mirror lacks the file, so the second, a file:// URL with a trailing slash, serves it. */
	scratch_write_text_with_parents(mirror_file, "abc");
	CHECK_INT_EQ(fetch_captured(cache, &item, 1, mirrors, 2, 1, &stats), 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	char *data = cached_contents(cache, sums[0]);
	CHECK_STR_EQ(data, "abc");

	free(data);
	free(empty_mirror);
	free(mirror_url);
	free(mirror_file);
	free(url);
	free(cache);
	free(mirror);
}

static void test_mirror_missing_falls_back(void)
{
	char *src_dir = new_dir("src"), *mirror = new_dir("mirror"), *cache = new_dir("cache");
	char *file = make_file(src_dir, "abc.tar.gz", "abc");
	char *url = file_url(file);
	const char *sums[] = { "sha256=" ABC_SHA256 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 1 };
	struct fetch_item item = { "abc.1.0", &source };
	char *mirrors[] = { mirror };
	struct fetch_stats stats;

	CHECK_INT_EQ(fetch_captured(cache, &item, 1, mirrors, 1, 1, &stats), 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	/* A mirror without the file is normal and not worth a message. */
	CHECK_STR_EQ(captured, "");

	free(url);
	free(file);
	free(cache);
	free(mirror);
	free(src_dir);
}

static void test_bad_mirror_copy_skipped(void)
{
	char *src_dir = new_dir("src"), *mirror = new_dir("mirror"), *cache = new_dir("cache");
	char *file = make_file(src_dir, "abc.tar.gz", "abc");
	char *url = file_url(file);
	char *mirror_file = xasprintf("%s/sha256/ba/" ABC_SHA256, mirror);
	const char *sums[] = { "sha256=" ABC_SHA256 };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 1 };
	struct fetch_item item = { "abc.1.0", &source };
	char *mirrors[] = { mirror };
	struct fetch_stats stats;

	/* A tampered mirror copy is rejected with a warning, and the source URL serves the file. */
	scratch_write_text_with_parents(mirror_file, "abd");
	CHECK_INT_EQ(fetch_captured(cache, &item, 1, mirrors, 1, 1, &stats), 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	char *data = cached_contents(cache, sums[0]);
	CHECK_STR_EQ(data, "abc");
	char *expected = xasprintf("warning: abc.1.0: %s: checksum mismatch", mirror_file);
	CHECK(captured_contains(expected));

	free(expected);
	free(data);
	free(mirror_file);
	free(url);
	free(file);
	free(cache);
	free(mirror);
	free(src_dir);
}

static void test_source_mirror_fallback(void)
{
	char *src_dir = new_dir("src"), *cache = new_dir("cache");
	char *file = make_file(src_dir, "abc.tar.gz", "abc");
	char *good = file_url(file);
	char *missing = xasprintf("file://%s/missing.tar.gz", src_dir);
	const char *sums[] = { "sha256=" ABC_SHA256 };
	const char *source_mirrors[] = { good };
	struct package_source source = {
		.src = missing, .checksums = sums, .checksum_count = 1, .mirrors = source_mirrors, .mirror_count = 1
	};
	struct fetch_stats stats;

	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	CHECK_STR_EQ(captured, "");

	free(missing);
	free(good);
	free(file);
	free(cache);
	free(src_dir);
}

/* ---- Sources that cannot be fetched ---- */

static void test_version_control_rejected(void)
{
	/* file:// and scheme-only forms, so that a wrong classification fails locally, never on the network. */
	static const char *const urls[] = {
		"git+file:///nonexistent/repo",           "git://nonexistent.invalid/repo",
		"git+ssh://git@nonexistent.invalid/repo", "hg+file:///nonexistent/repo",
		"darcs+file:///nonexistent/repo",         "file:///nonexistent/repo.git",
		"file:///nonexistent/repo.git#main",      "/nonexistent/repo.git",
		"git@nonexistent.invalid:owner/repo",
	};
	char *cache = new_dir("cache");

	for (size_t i = 0; i < ARRAY_LEN(urls); i++) {
		struct package_source source = { .src = urls[i] };
		struct fetch_stats stats;
		CHECK_INT_EQ(fetch_one(cache, "vcs.dev", &source, &stats), 1);
		CHECK_INT_EQ(stats.failed, 1);
		CHECK_INT_EQ(stats.no_checksum, 0);
		char *expected = xasprintf("vcs.dev: %s: version-control sources are not supported; the package "
					   "needs a release archive\n",
					   urls[i]);
		CHECK(captured_contains(expected));
		free(expected);
	}
	CHECK_INT_EQ(count_files(cache), 0);
	free(cache);
}

static void test_unsupported_scheme_rejected(void)
{
	char *cache = new_dir("cache");
	const char *sums[] = { "sha256=" ABC_SHA256 };
	struct package_source source = { .src = "rsync://nonexistent.invalid/abc.tar.gz",
					 .checksums = sums,
					 .checksum_count = 1 };
	struct fetch_stats stats;

	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 1);
	CHECK(captured_contains("abc.1.0: rsync://nonexistent.invalid/abc.tar.gz: unsupported URL scheme 'rsync'"));
	free(cache);
}

static void test_invalid_checksum_rejected(void)
{
	char *src_dir = new_dir("src"), *cache = new_dir("cache");
	char *file = make_file(src_dir, "abc.tar.gz", "abc");
	char *url = file_url(file);
	const char *sums[] = { "sha256=" ABC_SHA256, "sha1=a9993e364706816aba3e25717850c26c9cd0d89d" };
	struct package_source source = { .src = url, .checksums = sums, .checksum_count = 2 };
	struct fetch_stats stats;

	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 1);
	CHECK_INT_EQ(stats.failed, 1);
	CHECK(captured_contains("invalid checksum 'sha1=a9993e364706816aba3e25717850c26c9cd0d89d'"));
	CHECK_INT_EQ(count_files(cache), 0);

	free(url);
	free(file);
	free(cache);
	free(src_dir);
}

static void test_cache_dir_created(void)
{
	char *src_dir = new_dir("src");
	char *file = make_file(src_dir, "abc.tar.gz", "abc");
	char *cache = xasprintf("%s/nested/cache", src_dir);
	const char *sums[] = { "sha256=" ABC_SHA256 };
	struct package_source source = { .src = file, .checksums = sums, .checksum_count = 1 };
	struct fetch_stats stats;

	CHECK_INT_EQ(fetch_one(cache, "abc.1.0", &source, &stats), 0);
	char *data = cached_contents(cache, sums[0]);
	CHECK_STR_EQ(data, "abc");

	free(data);
	free(cache);
	free(file);
	free(src_dir);
}

/* NOTE: the removal of stale temporary files is not tested, because their age is their status
 * change time, which only a clock step could make old. */
static void test_fresh_temp_kept(void)
{
	char *cache = new_dir("cache");
	char *fresh = make_file(cache, ".download-fresh1", "partial");
	struct fetch_stats stats;

	CHECK_INT_EQ(fetch_captured(cache, NULL, 0, NULL, 0, 1, &stats), 0);
	CHECK(file_exists(fresh));
	CHECK_INT_EQ(stats.failed, 0);
	CHECK_INT_EQ(stats.cached + stats.downloaded, 0);

	free(fresh);
	free(cache);
}

/* A temporary download named after a process that is gone is removed at once; one of a live process stays. */
static void test_orphan_temp_removed(void)
{
	char *cache = new_dir("cache");
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	waitpid(child, NULL, 0);
	char *dead_name = xasprintf(".download-%ld-abcdef", (long)child);
	char *live_name = xasprintf(".download-%ld-abcdef", (long)getpid());
	char *dead = make_file(cache, dead_name, "partial");
	char *live = make_file(cache, live_name, "partial");
	struct fetch_stats stats;

	CHECK_INT_EQ(fetch_captured(cache, NULL, 0, NULL, 0, 1, &stats), 0);
	CHECK(!file_exists(dead));
	CHECK(file_exists(live));

	free(dead_name);
	free(live_name);
	free(dead);
	free(live);
	free(cache);
}

/* ---- fetch_verify and fetch_cache_path ---- */

static void test_verify_good_checksums(void)
{
	char *dir = new_dir("verify");
	char *file = make_file(dir, "abc", "abc");
	static const char *const good[] = {
		"md5=" ABC_MD5,
		ABC_MD5,
		"sha256=" ABC_SHA256,
		"sha512=" ABC_SHA512,
		"sha256=BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
		"SHA256=" ABC_SHA256,
	};

	for (size_t i = 0; i < ARRAY_LEN(good); i++) {
		char *error = (char *)"unset";
		CHECK(fetch_verify(file, good[i], &error));
		CHECK(error == NULL);
	}
	CHECK(fetch_verify(file, good[0], NULL));

	free(file);
	free(dir);
}

static void test_verify_mismatch(void)
{
	char *dir = new_dir("verify");
	char *file = make_file(dir, "abc", "abc");
	char *error = NULL;

	CHECK(!fetch_verify(file, "sha256=" ABD_SHA256, &error));
	CHECK_STR_EQ(error, "checksum mismatch: expected sha256=" ABD_SHA256 ", got sha256=" ABC_SHA256);
	free(error);
	CHECK(!fetch_verify(file, "md5=00000000000000000000000000000000", NULL));

	free(file);
	free(dir);
}

static void test_verify_malformed_checksums(void)
{
	char *dir = new_dir("verify");
	char *file = make_file(dir, "abc", "abc");
	static const char *const malformed[] = {
		"sha256=xyz",
		"sha1=a9993e364706816aba3e25717850c26c9cd0d89d",
		"",
		"=",
		"sha256=",
		"sha256=" ABC_MD5,
		"md5=" ABC_SHA256,
		"md5:" ABC_MD5,
		"sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
		"sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015adf",
		"sha256=ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"sha256= ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
	};

	for (size_t i = 0; i < ARRAY_LEN(malformed); i++) {
		char *error = NULL;
		CHECK(!fetch_verify(file, malformed[i], &error));
		CHECK(strstr(error ? error : "", "invalid checksum") != NULL);
		free(error);
	}

	free(file);
	free(dir);
}

static void test_verify_missing_file(void)
{
	char *error = NULL;

	CHECK(!fetch_verify("/nonexistent/obake-test-file", "sha256=" ABC_SHA256, &error));
	CHECK(strstr(error ? error : "", "/nonexistent/obake-test-file") != NULL);
	free(error);
}

static void test_cache_path_good(void)
{
	char *path = fetch_cache_path("/cache", "sha256=" ABC_SHA256);
	CHECK_STR_EQ(path, "/cache/sha256/ba/" ABC_SHA256);
	free(path);

	path = fetch_cache_path("/cache", ABC_MD5);
	CHECK_STR_EQ(path, "/cache/md5/90/" ABC_MD5);
	free(path);

	path = fetch_cache_path("/cache", "sha512=" ABC_SHA512);
	CHECK_STR_EQ(path, "/cache/sha512/dd/" ABC_SHA512);
	free(path);

	/* opam lowercases the hex digits, so the cache path is the same for both spellings. */
	path = fetch_cache_path("/cache", "md5=900150983CD24FB0D6963F7D28E17F72");
	CHECK_STR_EQ(path, "/cache/md5/90/" ABC_MD5);
	free(path);
}

static void test_cache_path_malformed(void)
{
	static const char *const malformed[] = {
		"sha256=xyz", "sha1=a9993e364706816aba3e25717850c26c9cd0d89d", "", "md5=", ("sha256=" ABC_MD5), "abc",
	};

	for (size_t i = 0; i < ARRAY_LEN(malformed); i++)
		CHECK(fetch_cache_path("/cache", malformed[i]) == NULL);
}

/* ---- HTTP, on a server started here on 127.0.0.1 ---- */

/*
 * A python3 HTTP server on 127.0.0.1 and a port the system picks, which it writes to argv[1].
 * It serves argv[2] and adds /to-file (a redirect to a file:// URL), /to-http (a redirect to
 * /abc), /unavailable (HTTP 503) and /slow/N. /slow/N returns "slow N" after 0.3 seconds and
 * writes the highest number of requests served at once to argv[2]/peak. The server stops by
 * itself after 60 seconds, in case the test dies.
 */
static const char server_script[] = "import http.server, os, signal, sys, threading, time\n"
				    "signal.alarm(60)\n"
				    "port_file, root = sys.argv[1], sys.argv[2]\n"
				    "lock = threading.Lock()\n"
				    "active = peak = 0\n"
				    "class Handler(http.server.SimpleHTTPRequestHandler):\n"
				    "    def __init__(self, *args, **kwargs):\n"
				    "        super().__init__(*args, directory=root, **kwargs)\n"
				    "    def log_message(self, *args):\n"
				    "        pass\n"
				    "    def redirect(self, location):\n"
				    "        self.send_response(302)\n"
				    "        self.send_header('Location', location)\n"
				    "        self.send_header('Content-Length', '0')\n"
				    "        self.end_headers()\n"
				    "    def slow(self):\n"
				    "        global active, peak\n"
				    "        with lock:\n"
				    "            active += 1\n"
				    "            peak = max(peak, active)\n"
				    "            with open(os.path.join(root, 'peak'), 'w') as f:\n"
				    "                f.write(str(peak))\n"
				    "        time.sleep(0.3)\n"
				    "        with lock:\n"
				    "            active -= 1\n"
				    "        body = ('slow ' + self.path[6:]).encode()\n"
				    "        self.send_response(200)\n"
				    "        self.send_header('Content-Length', str(len(body)))\n"
				    "        self.end_headers()\n"
				    "        self.wfile.write(body)\n"
				    "    def do_GET(self):\n"
				    "        if self.path.startswith('/slow/'):\n"
				    "            return self.slow()\n"
				    "        if self.path == '/to-file':\n"
				    "            return self.redirect('file://' + os.path.join(root, 'abc'))\n"
				    "        if self.path == '/to-http':\n"
				    "            return self.redirect('/abc')\n"
				    "        if self.path == '/unavailable':\n"
				    "            return self.send_error(503)\n"
				    "        return super().do_GET()\n"
				    "server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)\n"
				    "with open(port_file + '.tmp', 'w') as f:\n"
				    "    f.write(str(server.server_address[1]))\n"
				    "os.rename(port_file + '.tmp', port_file)\n"
				    "server.serve_forever()\n";

struct http_server {
	pid_t pid;
	int port;
};

/* Start the server on ROOT. Return false if python3 is missing or the server did not start. */
static bool start_server(const char *root, struct http_server *server)
{
	char *port_file = xasprintf("%s/port", root);
	char *port = NULL;

	server->pid = fork();
	if (server->pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execlp("python3", "python3", "-c", server_script, port_file, root, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; server->pid > 0 && i < SERVER_START_SECONDS * 10 && !port; i++) {
		int status;
		if (waitpid(server->pid, &status, WNOHANG) == server->pid) {
			server->pid = -1;
			break;
		}
		usleep(100000);
		port = scratch_read_text(port_file);
	}
	server->port = port ? atoi(port) : 0;
	free(port);
	free(port_file);
	return server->pid > 0 && server->port > 0;
}

static void stop_server(struct http_server *server)
{
	if (server->pid <= 0)
		return;
	kill(server->pid, SIGTERM);
	waitpid(server->pid, NULL, 0);
	server->pid = -1;
}

/* Fetch PATH from the server with the checksums of "abc", and return the number of failures. */
static unsigned fetch_http(const char *cache, const struct http_server *server, const char *path,
			   struct fetch_stats *stats, char **url)
{
	static const char *sums[] = { "sha256=" ABC_SHA256 };

	*url = xasprintf("http://127.0.0.1:%d%s", server->port, path);
	struct package_source source = { .src = *url, .checksums = sums, .checksum_count = 1 };
	return fetch_one(cache, "abc.1.0", &source, stats);
}

/* Fetch eight slow downloads with JOBS 3 and check that the server never saw more than three at once. */
static void check_parallel_cap(const char *root, const struct http_server *server)
{
	enum { ITEMS = 8, JOBS = 3 };
	char *cache = new_dir("cache");
	char *urls[ITEMS], *sums[ITEMS], *packages[ITEMS];
	struct package_source sources[ITEMS];
	struct fetch_item items[ITEMS];
	struct fetch_stats stats;

	for (int i = 0; i < ITEMS; i++) {
		char hex[65], *content = xasprintf("slow %d", i);
		sha256_hex(content, hex);
		urls[i] = xasprintf("http://127.0.0.1:%d/slow/%d", server->port, i);
		sums[i] = xasprintf("sha256=%s", hex);
		packages[i] = xasprintf("slow%d.1.0", i);
		sources[i] = (struct package_source){ .src = urls[i],
						      .checksums = (const char **)&sums[i],
						      .checksum_count = 1 };
		items[i] = (struct fetch_item){ packages[i], &sources[i] };
		free(content);
	}

	CHECK_INT_EQ(fetch_captured(cache, items, ITEMS, NULL, 0, JOBS, &stats), 0);
	CHECK_INT_EQ(stats.downloaded, ITEMS);
	char *peak_path = xasprintf("%s/peak", root);
	char *peak = scratch_read_text(peak_path);
	CHECK(peak != NULL);
	/* At least two at once shows that the transfers run in parallel. The exact peak depends on timing. */
	int peak_count = peak ? atoi(peak) : 0;
	CHECK(peak_count <= JOBS);
	CHECK(peak_count >= 2);

	free(peak);
	free(peak_path);
	for (int i = 0; i < ITEMS; i++) {
		free(urls[i]);
		free(sums[i]);
		free(packages[i]);
	}
	free(cache);
}

static void test_http_server(void)
{
	char *root = new_dir("http");
	char *file = make_file(root, "abc", "abc");
	struct http_server server;
	struct fetch_stats stats;
	char *url = NULL, *expected;

	/* Proxy settings from the environment must not send the requests for 127.0.0.1 anywhere else. */
	setenv("no_proxy", "*", 1);
	setenv("NO_PROXY", "*", 1);
	if (!start_server(root, &server)) {
		stop_server(&server);
		free(file);
		free(root);
		SKIP("python3 is missing or its HTTP server did not start");
	}

	char *cache = new_dir("cache");
	CHECK_INT_EQ(fetch_http(cache, &server, "/abc", &stats, &url), 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	free(url);

	char *cache2 = new_dir("cache");
	CHECK_INT_EQ(fetch_http(cache2, &server, "/to-http", &stats, &url), 0);
	CHECK_INT_EQ(stats.downloaded, 1);
	free(url);

	char *cache3 = new_dir("cache");
	CHECK_INT_EQ(fetch_http(cache3, &server, "/missing", &stats, &url), 1);
	expected = xasprintf("abc.1.0: %s: The requested URL returned error: 404", url);
	CHECK(captured_contains(expected));
	free(expected);
	free(url);

	/* Following the redirect would succeed, because the file has the right checksum. */
	CHECK_INT_EQ(fetch_http(cache3, &server, "/to-file", &stats, &url), 1);
	expected = xasprintf("abc.1.0: %s: redirect not followed", url);
	CHECK(captured_contains(expected));
	CHECK_INT_EQ(count_files(cache3), 0);
	free(expected);
	free(url);

	/* Two retries, one and two seconds apart. */
	CHECK_INT_EQ(fetch_http(cache3, &server, "/unavailable", &stats, &url), 1);
	CHECK(captured_contains("503 (failed 3 times)"));
	CHECK(captured_contains("retrying in 1 s"));
	free(url);

	check_parallel_cap(root, &server);

	stop_server(&server);
	free(cache3);
	free(cache2);
	free(cache);
	free(file);
	free(root);
}

int main(void)
{
	const char *base = getenv("OBAKE_TEST_TMP");

	test_root = xasprintf("%s/fetch.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(test_root)) {
		fprintf(stderr, "cannot create %s: %s\n", test_root, strerror(errno));
		return 1;
	}

	RUN_TEST(test_fetch_into_empty_cache);
	RUN_TEST(test_fetch_again_uses_cache);
	RUN_TEST(test_three_checksums_stored);
	RUN_TEST(test_bare_md5_checksum);
	RUN_TEST(test_wrong_checksum_fails);
	RUN_TEST(test_missing_file_fails);
	RUN_TEST(test_fifo_source_rejected);
	RUN_TEST(test_local_path_source);
	RUN_TEST(test_truncated_cache_file_refetched);
	RUN_TEST(test_truncated_cache_file_without_source);
	RUN_TEST(test_cached_file_gains_missing_paths);
	RUN_TEST(test_cached_file_checked_against_all);
	RUN_TEST(test_shared_archive_fetched_once);
	RUN_TEST(test_item_without_checksum);
	RUN_TEST(test_fifty_items_four_jobs);

	RUN_TEST(test_mirror_dir_used_first);
	RUN_TEST(test_mirror_url_used_first);
	RUN_TEST(test_mirror_missing_falls_back);
	RUN_TEST(test_bad_mirror_copy_skipped);
	RUN_TEST(test_source_mirror_fallback);

	RUN_TEST(test_version_control_rejected);
	RUN_TEST(test_unsupported_scheme_rejected);
	RUN_TEST(test_invalid_checksum_rejected);
	RUN_TEST(test_cache_dir_created);
	RUN_TEST(test_fresh_temp_kept);
	RUN_TEST(test_orphan_temp_removed);

	RUN_TEST(test_verify_good_checksums);
	RUN_TEST(test_verify_mismatch);
	RUN_TEST(test_verify_malformed_checksums);
	RUN_TEST(test_verify_missing_file);
	RUN_TEST(test_cache_path_good);
	RUN_TEST(test_cache_path_malformed);

	RUN_TEST(test_http_server);

	free(captured);
	scratch_remove(test_root);
	free(test_root);
	return test_summary();
}
