/*
 * Tests of the layer store in temporary directories: layer keys, publishing and reading layers,
 * removal of the leftovers of killed runs, several processes building one key, and pruning.
 */
#include "harness.h"
#include "scratch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "files.h"
#include "store.h"
#include "util.h"

#define PLATFORM "debian-12-x86_64"

#define SECONDS_PER_DAY 86400

/* Time the first of two racing builds holds its lock, so that the second one waits on it. */
#define RACE_BUILD_MICROSECONDS 200000

/* Size of the large file that makes one layer much bigger than the others. */
#define BIG_FILE_BYTES (1u << 20)

/* Check that TEXT (a message that may be NULL) contains NEEDLE. */
#define CHECK_CONTAINS(text, needle) check_contains((text), (needle), #text, __LINE__)

static void check_contains(const char *text, const char *needle, const char *expression, int line)
{
	if (text && strstr(text, needle))
		return;
	fprintf(stderr, "%s:%d: %s: %s is \"%s\", expected it to contain \"%s\"\n", __FILE__, line, test_current_name,
		expression, text ? text : "(null)", needle);
	test_current_failed = true;
}

/* ---- Files and directories ---- */

/*
 * Delete DIR and free the path. Unlike scratch_remove, this first gives every entry u+rwx, so the
 * read-only directories some tests make are removed even when the tests do not run as root.
 */
static void remove_temp_dir(char *dir)
{
	if (!dir)
		return;
	char *command = xasprintf("chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", dir, dir);
	if (system(command) != 0)
		fprintf(stderr, "%s: cannot remove %s\n", test_current_name, dir);
	free(command);
	free(dir);
}

static bool path_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Count the entries of DIR whose name starts with PREFIX. */
static int count_entries(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int count = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			count++;
	closedir(d);
	return count;
}

/* A syntactically valid layer key made from N. */
static void fake_key(char key[LAYER_KEY_SIZE], unsigned n)
{
	snprintf(key, LAYER_KEY_SIZE, "%064x", n);
}

/* ---- Packages and keys ---- */

/* Make DIR/pkg with an opam file, files/a.patch and files/sub/b.patch. The caller frees the path. */
static char *make_package(const char *dir)
{
	char *pkg = xasprintf("%s/pkg", dir);
	char *files = xasprintf("%s/files", pkg), *sub = xasprintf("%s/files/sub", pkg);
	char *opam = xasprintf("%s/opam", pkg), *a = xasprintf("%s/a.patch", files);
	char *b = xasprintf("%s/b.patch", sub);

	bool ok = mkdir(pkg, 0755) == 0 && mkdir(files, 0755) == 0 && mkdir(sub, 0755) == 0 &&
		  scratch_write_text(opam, "opam-version: \"2.0\"\nbuild: [make]\n") &&
		  scratch_write_text(a, "--- a\n+++ b\n") && scratch_write_text(b, "patch b\n");
	free(files);
	free(sub);
	free(opam);
	free(a);
	free(b);
	if (!ok) {
		free(pkg);
		return NULL;
	}
	return pkg;
}

static const char base_key[] = "base-1";
static const char base_settings[] = "ocaml=5.2.0\nwith-test=0\n";

/* Compute the key of PKG with no dependencies and the default base and settings. KEY is "" on error. */
static void default_key(const char *pkg, char key[LAYER_KEY_SIZE])
{
	char *error = NULL;

	if (store_layer_key(pkg, NULL, 0, base_key, base_settings, key, &error) != 0) {
		fprintf(stderr, "%s: store_layer_key: %s\n", test_current_name, error);
		free(error);
		key[0] = '\0';
	}
}

/* Write TEXT to PKG/RELATIVE, then compute the key into KEY. */
static void key_after_write(const char *pkg, const char *relative, const char *text, char key[LAYER_KEY_SIZE])
{
	char *path = xasprintf("%s/%s", pkg, relative);

	if (!scratch_write_text(path, text))
		key[0] = '\0';
	else
		default_key(pkg, key);
	free(path);
}

/* ---- Layers ---- */

/* Open a store at DIR/store. Prints the error and returns false on failure. */
static bool open_store(struct store *s, const char *dir)
{
	char *root = xasprintf("%s/store", dir), *error = NULL;
	int status = store_open(s, root, PLATFORM, &error);

	if (status != 0) {
		fprintf(stderr, "%s: store_open: %s\n", test_current_name, error);
		free(error);
	}
	free(root);
	return status == 0;
}

/* A layer to publish: its fs/ gets one file "data" of DATA_BYTES bytes. */
struct test_layer {
	const char *package;
	enum layer_status status;
	const char *const *dependencies;
	size_t dependency_count;
	size_t data_bytes;
};

static bool publish(const struct store *s, const char *key, const struct test_layer *layer)
{
	char *tmp = NULL, *error = NULL;
	int lock = store_begin(s, key, &tmp, &error);

	if (lock < 0) {
		fprintf(stderr, "%s: store_begin: %s\n", test_current_name, error);
		free(error);
		return false;
	}
	char *fs = xasprintf("%s/fs", tmp), *data_path = xasprintf("%s/fs/data", tmp);
	char *data = xmalloc(layer->data_bytes + 1);
	memset(data, 'x', layer->data_bytes);
	bool ok = mkdir(fs, 0755) == 0 && scratch_write(data_path, data, layer->data_bytes);
	free(data);
	free(fs);
	free(data_path);

	struct layer_info info = { layer->status,
				   (char *)layer->package,
				   layer->status == LAYER_SUCCESS ? 0 : 2,
				   (char **)layer->dependencies,
				   layer->dependency_count,
				   1.5,
				   NULL };
	if (!ok) {
		store_abandon(s, tmp, lock);
	} else if (store_publish(s, key, tmp, &info, lock, &error) != 0) {
		fprintf(stderr, "%s: store_publish: %s\n", test_current_name, error);
		free(error);
		ok = false;
	}
	free(tmp);
	return ok;
}

static bool publish_simple(const struct store *s, const char *key, const char *package)
{
	struct test_layer layer = { package, LAYER_SUCCESS, NULL, 0, 10 };

	return publish(s, key, &layer);
}

/* Set KEY's last use (its layer.json's modification time) to DAYS days ago. */
static bool set_last_use_days_ago(const struct store *s, const char *key, double days)
{
	char *path = xasprintf("%s/%s/layer.json", s->dir, key);
	struct timespec times[2];

	times[0].tv_sec = times[1].tv_sec = time(NULL) - (time_t)(days * SECONDS_PER_DAY);
	times[0].tv_nsec = times[1].tv_nsec = 0;
	int status = utimensat(AT_FDCWD, path, times, 0);
	free(path);
	return status == 0;
}

static bool layer_exists(const struct store *s, const char *key)
{
	char *path = store_layer_path(s, key);
	bool exists = path_exists(path);

	free(path);
	return exists;
}

/* The result of a prune, with what it printed on stdout. */
struct prune_run {
	long removed;
	unsigned long long freed;
	char *output;
};

static struct prune_run run_prune(const struct store *s, double days, unsigned long long max_bytes, bool dry_run)
{
	struct prune_options opts = { days, max_bytes, dry_run };
	struct prune_run run = { -1, 0, NULL };
	char *error = NULL, *out_path = xasprintf("%s/prune-output", s->root);

	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (saved < 0 || out < 0 || dup2(out, STDOUT_FILENO) < 0) {
		fprintf(stderr, "%s: cannot redirect stdout: %s\n", test_current_name, strerror(errno));
	} else {
		run.removed = store_prune(s, &opts, &run.freed, &error);
		fflush(stdout);
		dup2(saved, STDOUT_FILENO);
	}
	if (out >= 0)
		close(out);
	if (saved >= 0)
		close(saved);
	if (run.removed < 0 && error)
		fprintf(stderr, "%s: store_prune: %s\n", test_current_name, error);
	free(error);
	run.output = scratch_read_text(out_path);
	if (!run.output)
		run.output = xstrdup("");
	unlink(out_path);
	free(out_path);
	return run;
}

/* ---- Child processes ---- */

static bool wait_for_child(pid_t pid)
{
	int wstatus;

	while (waitpid(pid, &wstatus, 0) < 0)
		if (errno != EINTR)
			return false;
	return WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
}

/* A child process that holds a key's lock until released. */
struct lock_holder {
	pid_t pid;
	int release_fd; /* closing it lets the child exit */
};

/* Fork a child that takes the lock file at LOCK_PATH; returns once the child holds it. */
static bool start_lock_holder(const char *lock_path, struct lock_holder *holder)
{
	int ready[2], release[2];
	char byte;

	if (pipe(ready) != 0 || pipe(release) != 0)
		return false;
	holder->pid = fork();
	if (holder->pid < 0)
		return false;
	if (holder->pid == 0) {
		close(ready[0]);
		close(release[1]);
		int fd = open(lock_path, O_RDWR | O_CREAT, 0644);
		if (fd < 0 || flock(fd, LOCK_EX) != 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		while (read(release[0], &byte, 1) > 0)
			;
		_exit(0);
	}
	close(ready[1]);
	close(release[0]);
	holder->release_fd = release[1];
	bool ok = read(ready[0], &byte, 1) == 1;
	close(ready[0]);
	return ok;
}

static bool stop_lock_holder(struct lock_holder *holder)
{
	close(holder->release_fd);
	return wait_for_child(holder->pid);
}

/* ---- Layer keys ---- */

static void test_key_is_stable_hex(void)
{
	char *dir = scratch_dir("store");
	char *pkg = dir ? make_package(dir) : NULL;
	char first[LAYER_KEY_SIZE], second[LAYER_KEY_SIZE];

	if (!pkg) {
		CHECK(pkg != NULL);
		remove_temp_dir(dir);
		return;
	}
	default_key(pkg, first);
	default_key(pkg, second);
	CHECK_INT_EQ(strlen(first), 64);
	CHECK_INT_EQ(strspn(first, "0123456789abcdef"), 64);
	CHECK_STR_EQ(second, first);
	free(pkg);
	remove_temp_dir(dir);
}

static void test_key_changes_with_inputs(void)
{
	char *dir = scratch_dir("store");
	char *pkg = dir ? make_package(dir) : NULL;
	char original[LAYER_KEY_SIZE], changed[LAYER_KEY_SIZE];

	if (!pkg) {
		CHECK(pkg != NULL);
		remove_temp_dir(dir);
		return;
	}
	default_key(pkg, original);
	CHECK(original[0] != '\0');

	key_after_write(pkg, "opam", "opam-version: \"2.0\"\nbuild: [make \"-j\"]\n", changed);
	CHECK(strcmp(changed, original) != 0);
	key_after_write(pkg, "opam", "opam-version: \"2.0\"\nbuild: [make]\n", changed);
	CHECK_STR_EQ(changed, original);

	key_after_write(pkg, "files/sub/b.patch", "patch b, changed\n", changed);
	CHECK(strcmp(changed, original) != 0);
	key_after_write(pkg, "files/sub/b.patch", "patch b\n", changed);
	CHECK_STR_EQ(changed, original);

	key_after_write(pkg, "files/new.patch", "", changed);
	CHECK(strcmp(changed, original) != 0);
	char *added = xasprintf("%s/files/new.patch", pkg);
	unlink(added);
	free(added);

	/* The same bytes under another name make another key. */
	char *from = xasprintf("%s/files/a.patch", pkg), *to = xasprintf("%s/files/c.patch", pkg);
	CHECK(rename(from, to) == 0);
	default_key(pkg, changed);
	CHECK(strcmp(changed, original) != 0);
	CHECK(rename(to, from) == 0);
	default_key(pkg, changed);
	CHECK_STR_EQ(changed, original);
	free(from);
	free(to);

	free(pkg);
	remove_temp_dir(dir);
}

/* Make DIR/NAME with an opam file and FILE_COUNT files, created in the order ORDER gives. */
static char *make_package_in_order(const char *dir, const char *name, const char *const *order, size_t file_count)
{
	char *pkg = xasprintf("%s/%s", dir, name), *files = xasprintf("%s/files", pkg);
	char *opam = xasprintf("%s/opam", pkg);
	bool ok = mkdir(pkg, 0755) == 0 && mkdir(files, 0755) == 0 &&
		  scratch_write_text(opam, "opam-version: \"2.0\"\n");

	for (size_t i = 0; ok && i < file_count; i++) {
		char *path = xasprintf("%s/%s", files, order[i]);
		ok = scratch_write_text(path, order[i]);
		free(path);
	}
	free(files);
	free(opam);
	if (!ok) {
		free(pkg);
		return NULL;
	}
	return pkg;
}

/* Files are hashed in sorted order, whatever order the directory lists them in. */
static void test_key_ignores_creation_order(void)
{
	static const char *const forward[] = { "a.patch", "b.patch", "c.patch", "d.patch", "e.patch" };
	static const char *const backward[] = { "e.patch", "d.patch", "c.patch", "b.patch", "a.patch" };
	char *dir = scratch_dir("store");
	/* The same package name in two places: the name is part of the key. */
	char *one = dir ? xasprintf("%s/one", dir) : NULL, *two = dir ? xasprintf("%s/two", dir) : NULL;
	bool made = one && two && mkdir(one, 0755) == 0 && mkdir(two, 0755) == 0;
	char *first = made ? make_package_in_order(one, "pkg.1", forward, ARRAY_LEN(forward)) : NULL;
	char *second = made ? make_package_in_order(two, "pkg.1", backward, ARRAY_LEN(backward)) : NULL;
	char first_key[LAYER_KEY_SIZE], second_key[LAYER_KEY_SIZE];

	free(one);
	free(two);

	if (!first || !second) {
		CHECK(!"cannot make the packages");
	} else {
		default_key(first, first_key);
		default_key(second, second_key);
		CHECK(first_key[0] != '\0');
		CHECK_STR_EQ(second_key, first_key);
	}
	free(first);
	free(second);
	remove_temp_dir(dir);
}

static void test_key_dependencies_base_settings(void)
{
	char *dir = scratch_dir("store");
	char *pkg = dir ? make_package(dir) : NULL;
	char a[LAYER_KEY_SIZE], b[LAYER_KEY_SIZE], c[LAYER_KEY_SIZE];
	char with_ab[LAYER_KEY_SIZE], with_ba[LAYER_KEY_SIZE], with_ac[LAYER_KEY_SIZE], other[LAYER_KEY_SIZE];
	char *error = NULL;

	if (!pkg) {
		CHECK(pkg != NULL);
		remove_temp_dir(dir);
		return;
	}
	fake_key(a, 1);
	fake_key(b, 2);
	fake_key(c, 3);
	const char *ab[] = { a, b }, *ba[] = { b, a }, *ac[] = { a, c };

	CHECK_INT_EQ(store_layer_key(pkg, ab, 2, base_key, base_settings, with_ab, &error), 0);
	CHECK_INT_EQ(store_layer_key(pkg, ba, 2, base_key, base_settings, with_ba, &error), 0);
	CHECK_INT_EQ(store_layer_key(pkg, ac, 2, base_key, base_settings, with_ac, &error), 0);
	CHECK_STR_EQ(with_ba, with_ab);
	CHECK(strcmp(with_ac, with_ab) != 0);

	default_key(pkg, other);
	CHECK(strcmp(other, with_ab) != 0);

	CHECK_INT_EQ(store_layer_key(pkg, ab, 2, "base-2", base_settings, other, &error), 0);
	CHECK(strcmp(other, with_ab) != 0);

	/* The same opam file and dependencies under another package's name is another layer. */
	char *twin = xasprintf("%s/twin", dir), *twin_opam = xasprintf("%s/twin/opam", dir);
	CHECK_INT_EQ(mkdir(twin, 0755), 0);
	scratch_write_text(twin_opam, "opam-version: \"2.0\"\nbuild: [make]\n");
	char *pkg_files = xasprintf("%s/files", pkg), *twin_files = xasprintf("%s/files", twin);
	char *copy_error = NULL;
	CHECK_INT_EQ(copy_tree(pkg_files, twin_files, &copy_error), 0);
	free(copy_error);
	CHECK_INT_EQ(store_layer_key(twin, ab, 2, base_key, base_settings, other, &error), 0);
	CHECK(strcmp(other, with_ab) != 0);
	free(twin);
	free(twin_opam);
	free(pkg_files);
	free(twin_files);
	CHECK_INT_EQ(store_layer_key(pkg, ab, 2, base_key, "ocaml=5.1.0\nwith-test=0\n", other, &error), 0);
	CHECK(strcmp(other, with_ab) != 0);
	free(error);
	free(pkg);
	remove_temp_dir(dir);
}

static void test_key_length_prefixes(void)
{
	char *dir = scratch_dir("store");
	char *pkg = dir ? make_package(dir) : NULL;
	char first[LAYER_KEY_SIZE], second[LAYER_KEY_SIZE];
	char *error = NULL;

	if (!pkg) {
		CHECK(pkg != NULL);
		remove_temp_dir(dir);
		return;
	}
	CHECK_INT_EQ(store_layer_key(pkg, NULL, 0, "ab", "c", first, &error), 0);
	CHECK_INT_EQ(store_layer_key(pkg, NULL, 0, "a", "bc", second, &error), 0);
	CHECK(strcmp(first, second) != 0);

	/* The boundary between a file's path and its contents. */
	char *ab = xasprintf("%s/files/ab", pkg), *a = xasprintf("%s/files/a", pkg);
	CHECK(scratch_write_text(ab, "c"));
	default_key(pkg, first);
	unlink(ab);
	CHECK(scratch_write_text(a, "bc"));
	default_key(pkg, second);
	unlink(a);
	CHECK(strcmp(first, second) != 0);
	free(ab);
	free(a);
	free(error);
	free(pkg);
	remove_temp_dir(dir);
}

static void test_key_without_files_dir(void)
{
	char *dir = scratch_dir("store");
	char *pkg = dir ? xasprintf("%s/pkg", dir) : NULL;
	char *opam = pkg ? xasprintf("%s/opam", pkg) : NULL;
	char key[LAYER_KEY_SIZE], *error = NULL;

	if (!opam || mkdir(pkg, 0755) != 0 || !scratch_write_text(opam, "opam-version: \"2.0\"\n")) {
		CHECK(!"cannot make the package");
	} else {
		CHECK_INT_EQ(store_layer_key(pkg, NULL, 0, base_key, base_settings, key, &error), 0);
		CHECK_INT_EQ(strlen(key), 64);
	}
	free(error);
	free(opam);
	free(pkg);
	remove_temp_dir(dir);
}

static void test_key_unreadable_file_error(void)
{
	char *dir = scratch_dir("store");
	char *pkg = dir ? make_package(dir) : NULL;
	char key[LAYER_KEY_SIZE], *error = NULL;

	if (!pkg) {
		CHECK(pkg != NULL);
		remove_temp_dir(dir);
		return;
	}
	/* A dangling link cannot be read even by root. */
	char *link = xasprintf("%s/files/sub/gone.patch", pkg);
	CHECK(symlink("nowhere", link) == 0);
	CHECK_INT_EQ(store_layer_key(pkg, NULL, 0, base_key, base_settings, key, &error), -1);
	CHECK_CONTAINS(error, "files/sub/gone.patch");
	CHECK_CONTAINS(error, strerror(ENOENT));
	free(error);
	error = NULL;
	unlink(link);
	free(link);

	if (geteuid() != 0) {
		char *secret = xasprintf("%s/files/a.patch", pkg);
		CHECK(chmod(secret, 0) == 0);
		CHECK_INT_EQ(store_layer_key(pkg, NULL, 0, base_key, base_settings, key, &error), -1);
		CHECK_CONTAINS(error, "files/a.patch");
		CHECK_CONTAINS(error, strerror(EACCES));
		free(error);
		error = NULL;
		free(secret);
	}

	char *opam = xasprintf("%s/opam", pkg);
	CHECK(unlink(opam) == 0);
	CHECK_INT_EQ(store_layer_key(pkg, NULL, 0, base_key, base_settings, key, &error), -1);
	CHECK_CONTAINS(error, opam);
	free(error);
	free(opam);
	free(pkg);
	remove_temp_dir(dir);
}

static void test_key_rejects_invalid_dependency(void)
{
	char *dir = scratch_dir("store");
	char *pkg = dir ? make_package(dir) : NULL;
	char key[LAYER_KEY_SIZE], *error = NULL;
	const char *deps[] = { "not-a-key" };

	if (!pkg) {
		CHECK(pkg != NULL);
		remove_temp_dir(dir);
		return;
	}
	CHECK_INT_EQ(store_layer_key(pkg, deps, 1, base_key, base_settings, key, &error), -1);
	CHECK_CONTAINS(error, "not-a-key");
	free(error);
	free(pkg);
	remove_temp_dir(dir);
}

/* ---- Publishing and reading ---- */

/* A layer whose layer.json is damaged is replaced by the next build of its key, not kept for ever. */
static void test_publish_replaces_damaged_layer(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE], *error = NULL;
	struct layer_info info;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 12);
	struct test_layer first = { "foo.1.0", LAYER_FAILURE, NULL, 0, 100 };
	CHECK(publish(&s, key, &first));
	char *layer = store_layer_path(&s, key), *json = xasprintf("%s/layer.json", layer);
	CHECK(scratch_write_text(json, "{\"package\": "));
	CHECK(store_read_layer(&s, key, &info, &error) != 0);
	free(error);
	error = NULL;

	struct test_layer second = { "foo.1.0", LAYER_SUCCESS, NULL, 0, 100 };
	CHECK(publish(&s, key, &second));
	CHECK_INT_EQ(store_read_layer(&s, key, &info, &error), 0);
	CHECK_INT_EQ(info.status, LAYER_SUCCESS);
	layer_info_release(&info);

	free(error);
	free(layer);
	free(json);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_publish_read_success(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE], dep[LAYER_KEY_SIZE], *error = NULL;
	struct layer_info info;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 10);
	fake_key(dep, 11);
	const char *deps[] = { dep };
	struct test_layer layer = { "foo.1.0", LAYER_SUCCESS, deps, 1, 100 };
	CHECK(publish(&s, key, &layer));

	CHECK_INT_EQ(store_read_layer(&s, key, &info, &error), 0);
	CHECK_INT_EQ(info.status, LAYER_SUCCESS);
	CHECK_STR_EQ(info.package, "foo.1.0");
	CHECK_INT_EQ(info.exit_code, 0);
	CHECK_INT_EQ(info.dependency_count, 1);
	if (info.dependency_count == 1)
		CHECK_STR_EQ(info.dependencies[0], dep);
	CHECK(info.build_seconds == 1.5);
	/* RFC 3339 in UTC, as "2024-05-01T12:34:56Z". */
	CHECK(info.created != NULL);
	if (info.created) {
		CHECK_INT_EQ(strlen(info.created), 20);
		CHECK_INT_EQ(info.created[10], 'T');
		CHECK_INT_EQ(info.created[19], 'Z');
	}
	layer_info_release(&info);

	char *fs = store_layer_fs(&s, key), *data = xasprintf("%s/data", fs);
	CHECK(path_exists(data));
	CHECK_INT_EQ(count_entries(s.dir, "tmp-"), 0);
	free(fs);
	free(data);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_publish_read_failure(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE], *error = NULL;
	struct layer_info info;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 20);
	struct test_layer layer = { "bar.2.0", LAYER_FAILURE, NULL, 0, 0 };
	CHECK(publish(&s, key, &layer));
	CHECK_INT_EQ(store_read_layer(&s, key, &info, &error), 0);
	CHECK_INT_EQ(info.status, LAYER_FAILURE);
	CHECK_STR_EQ(info.package, "bar.2.0");
	CHECK_INT_EQ(info.exit_code, 2);
	CHECK_INT_EQ(info.dependency_count, 0);
	layer_info_release(&info);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_read_missing_layer(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE], *error = NULL;
	struct layer_info info;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 30);
	CHECK_INT_EQ(store_read_layer(&s, key, &info, &error), 0);
	CHECK_INT_EQ(info.status, LAYER_MISSING);
	CHECK(info.package == NULL);
	CHECK_INT_EQ(store_read_layer(&s, "../etc", &info, &error), -1);
	CHECK_CONTAINS(error, "invalid layer key");
	free(error);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_read_invalid_layer_json(void)
{
	static const char *const bad[] = {
		"{",
		"{\"package\": \"a.1\", \"status\": \"maybe\", \"exit_code\": 0, \"dependencies\": [], "
		"\"build_seconds\": 1, \"created\": \"x\"}",
		"{\"package\": \"a.1\", \"status\": \"success\", \"exit_code\": 0, \"dependencies\": [\"zz\"], "
		"\"build_seconds\": 1, \"created\": \"x\"}",
		"{\"status\": \"success\", \"exit_code\": 0, \"dependencies\": [], \"build_seconds\": 1, "
		"\"created\": \"x\"}",
	};
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE];
	struct layer_info info;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 40);
	char *layer = store_layer_path(&s, key), *json = xasprintf("%s/layer.json", layer);
	CHECK(mkdir(layer, 0755) == 0);

	/* A layer directory without layer.json is an error, not a missing layer. */
	char *error = NULL;
	CHECK_INT_EQ(store_read_layer(&s, key, &info, &error), -1);
	CHECK_CONTAINS(error, json);
	free(error);

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		error = NULL;
		CHECK(scratch_write_text(json, bad[i]));
		CHECK_INT_EQ(store_read_layer(&s, key, &info, &error), -1);
		CHECK_CONTAINS(error, json);
		CHECK_INT_EQ(info.status, LAYER_MISSING);
		CHECK(info.package == NULL);
		free(error);
	}
	free(layer);
	free(json);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_publish_existing_keeps_first(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE], *error = NULL;
	struct layer_info info;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 50);
	CHECK(publish_simple(&s, key, "first.1"));
	/* A second build that skipped the re-check loses the rename, and its directory goes. */
	CHECK(publish_simple(&s, key, "second.1"));
	CHECK_INT_EQ(store_read_layer(&s, key, &info, &error), 0);
	CHECK_STR_EQ(info.package, "first.1");
	layer_info_release(&info);
	CHECK_INT_EQ(count_entries(s.dir, "tmp-"), 0);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_publish_invalid_releases_lock(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE], *error = NULL, *tmp = NULL;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 60);
	int lock = store_begin(&s, key, &tmp, &error);
	CHECK(lock >= 0);
	struct layer_info info = { LAYER_MISSING, (char *)"baz.1", 0, NULL, 0, 0, NULL };
	CHECK_INT_EQ(store_publish(&s, key, tmp, &info, lock, &error), -1);
	CHECK(error != NULL);
	CHECK(!layer_exists(&s, key));
	CHECK_INT_EQ(count_entries(s.dir, "tmp-"), 0);
	free(error);
	free(tmp);

	/* The lock was released, so a new build of KEY starts at once. */
	error = NULL;
	tmp = NULL;
	lock = store_begin(&s, key, &tmp, &error);
	CHECK(lock >= 0);
	store_abandon(&s, tmp, lock);
	CHECK_INT_EQ(count_entries(s.dir, "tmp-"), 0);
	free(tmp);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_begin_rejects_invalid_key(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char *error = NULL, *tmp = NULL;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	CHECK_INT_EQ(store_begin(&s, "../../x", &tmp, &error), -1);
	CHECK(tmp == NULL);
	CHECK_CONTAINS(error, "../../x");
	free(error);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_open_rejects_invalid_platform(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char *error = NULL;

	CHECK_INT_EQ(store_open(&s, dir, "../escape", &error), -1);
	CHECK_CONTAINS(error, "../escape");
	free(error);
	error = NULL;
	CHECK_INT_EQ(store_open(&s, dir, "", &error), -1);
	free(error);
	remove_temp_dir(dir);
}

static void test_open_creates_nested_root(void)
{
	char *dir = scratch_dir("store");
	char *root = xasprintf("%s/a/b/store", dir), *error = NULL;
	struct store s;

	CHECK_INT_EQ(store_open(&s, root, PLATFORM, &error), 0);
	char *locks = xasprintf("%s/%s/locks", root, PLATFORM);
	CHECK(path_exists(locks));
	CHECK_STR_EQ(s.root, root);
	free(locks);
	store_close(&s);
	free(root);
	free(error);
	remove_temp_dir(dir);
}

/* ---- Leftovers of killed runs ---- */

/* Make a read-only tree under PATH: a 0555 directory holding a 0444 file, and a 0000 directory. */
static bool make_read_only_tree(const char *path)
{
	char *ro = xasprintf("%s/ro", path), *file = xasprintf("%s/ro/file", path);
	char *closed = xasprintf("%s/closed", path), *inner = xasprintf("%s/closed/inner", path);
	bool ok = mkdir(path, 0755) == 0 && mkdir(ro, 0755) == 0 && scratch_write_text(file, "data") &&
		  chmod(file, 0444) == 0 && chmod(ro, 0555) == 0 && mkdir(closed, 0755) == 0 &&
		  scratch_write_text(inner, "data") && chmod(closed, 0) == 0;

	free(ro);
	free(file);
	free(closed);
	free(inner);
	return ok;
}

static void test_open_removes_killed_build(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE], other[LAYER_KEY_SIZE];

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 70);
	fake_key(other, 71);
	/* KEY's lock file was never made. OTHER's exists, but no process has it locked. */
	char *tmp = xasprintf("%s/tmp-%s-99999-abcdef", s.dir, key);
	char *tmp_fs = xasprintf("%s/fs", tmp);
	char *prune_tmp = xasprintf("%s/tmp-prune-%s-99999-ghijkl", s.dir, other);
	char *lock = xasprintf("%s/locks/%s.lock", s.dir, other);
	char *unrelated = xasprintf("%s/tmp-notes", s.dir);
	CHECK(mkdir(tmp, 0755) == 0);
	CHECK(make_read_only_tree(tmp_fs));
	CHECK(mkdir(prune_tmp, 0755) == 0);
	CHECK(scratch_write_text(lock, ""));
	CHECK(mkdir(unrelated, 0755) == 0);
	store_close(&s);

	CHECK(open_store(&s, dir));
	CHECK(!path_exists(tmp));
	CHECK(!path_exists(prune_tmp));
	/* A name that does not follow the tmp-<key>-<pid>-<random> pattern is not obake's. */
	CHECK(path_exists(unrelated));
	free(tmp);
	free(tmp_fs);
	free(prune_tmp);
	free(lock);
	free(unrelated);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_open_keeps_locked_tmp_dir(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE];
	struct lock_holder holder;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 80);
	char *tmp = xasprintf("%s/tmp-%s-12345-abcdef", s.dir, key);
	char *lock = xasprintf("%s/locks/%s.lock", s.dir, key);
	CHECK(mkdir(tmp, 0755) == 0);
	if (!start_lock_holder(lock, &holder)) {
		CHECK(!"cannot start the lock holder");
	} else {
		store_close(&s);
		CHECK(open_store(&s, dir));
		CHECK(path_exists(tmp));
		CHECK(stop_lock_holder(&holder));
	}
	store_close(&s);
	CHECK(open_store(&s, dir));
	CHECK(!path_exists(tmp));
	free(tmp);
	free(lock);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_open_unmounts_leftover_mount(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE];

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 90);
	char *tmp = xasprintf("%s/tmp-%s-99999-abcdef", s.dir, key);
	char *merged = xasprintf("%s/merged", tmp), *inside = xasprintf("%s/merged/file", tmp);
	CHECK(mkdir(tmp, 0755) == 0);
	CHECK(mkdir(merged, 0755) == 0);
	if (mount("tmpfs", merged, "tmpfs", 0, NULL) != 0) {
		char *reason = xasprintf("cannot mount a tmpfs: %s", strerror(errno));
		free(tmp);
		free(merged);
		free(inside);
		store_close(&s);
		remove_temp_dir(dir);
		fprintf(stderr, "%s: skipped: %s\n", test_current_name, reason);
		free(reason);
		test_current_skipped = true;
		return;
	}
	CHECK(scratch_write_text(inside, "data"));
	store_close(&s);
	CHECK(open_store(&s, dir));
	CHECK(!path_exists(tmp));
	if (path_exists(merged))
		umount2(merged, MNT_DETACH);
	free(tmp);
	free(merged);
	free(inside);
	store_close(&s);
	remove_temp_dir(dir);
}

/* A bind mount of a directory on the same file system keeps st_dev, so only its mount ID shows it. */
static void test_open_keeps_bind_mounted_files(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE];

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 91);
	char *precious = xasprintf("%s/precious", dir), *kept = xasprintf("%s/precious/kept", dir);
	char *tmp = xasprintf("%s/tmp-%s-99999-abcdef", s.dir, key), *bound = xasprintf("%s/bound", tmp);
	CHECK(mkdir(precious, 0755) == 0);
	CHECK(scratch_write_text(kept, "data"));
	CHECK(mkdir(tmp, 0755) == 0);
	CHECK(mkdir(bound, 0755) == 0);
	if (mount(precious, bound, NULL, MS_BIND, NULL) != 0) {
		fprintf(stderr, "%s: skipped: cannot bind-mount %s: %s\n", test_current_name, precious,
			strerror(errno));
		test_current_skipped = true;
	} else {
		store_close(&s);
		CHECK(open_store(&s, dir));
		CHECK(!path_exists(tmp));
		CHECK(path_exists(kept));
		if (path_exists(bound))
			umount2(bound, MNT_DETACH);
	}
	free(precious);
	free(kept);
	free(tmp);
	free(bound);
	store_close(&s);
	remove_temp_dir(dir);
}

/* ---- Several processes ---- */

/*
 * One racing build in a child process: wait for START to close, then take KEY's lock and, unless
 * RECHECK finds the layer published, build and publish it. Appends "built" or "cached" to RESULTS.
 */
static void race_child(const char *dir, const char *key, int start_fd, const char *results, bool recheck)
{
	struct store s;
	char *error = NULL, *tmp = NULL, byte;
	struct layer_info info;
	const char *line = "built\n";

	if (read(start_fd, &byte, 1) != 0 || !open_store(&s, dir))
		_exit(1);
	int lock = store_begin(&s, key, &tmp, &error);
	if (lock < 0)
		_exit(1);
	if (recheck && store_read_layer(&s, key, &info, &error) == 0 && info.status != LAYER_MISSING) {
		store_abandon(&s, tmp, lock);
		line = "cached\n";
	} else {
		char *fs = xasprintf("%s/fs", tmp);
		if (mkdir(fs, 0755) != 0)
			_exit(1);
		usleep(RACE_BUILD_MICROSECONDS);
		struct layer_info built = { LAYER_SUCCESS, (char *)"race.1", 0, NULL, 0, 0.2, NULL };
		if (store_publish(&s, key, tmp, &built, lock, &error) != 0)
			_exit(1);
	}
	int fd = open(results, O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd < 0 || write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		_exit(1);
	_exit(0);
}

static int count_substrings(const char *text, const char *needle)
{
	int count = 0;

	for (const char *p = text; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		count++;
	return count;
}

/* Run two race_child processes on one key; returns the number that exited successfully. */
static int run_race(const char *dir, const char *key, const char *results, bool recheck)
{
	int start[2];
	pid_t pids[2];
	int succeeded = 0;

	if (pipe(start) != 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			close(start[1]);
			race_child(dir, key, start[0], results, recheck);
		}
	}
	close(start[0]);
	close(start[1]);
	for (int i = 0; i < 2; i++)
		if (pids[i] > 0 && wait_for_child(pids[i]))
			succeeded++;
	return succeeded;
}

static void test_racing_builds_publish_once(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE], *error = NULL;
	struct layer_info info;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 100);
	char *results = xasprintf("%s/results", dir);
	CHECK_INT_EQ(run_race(dir, key, results, true), 2);
	CHECK_INT_EQ(store_read_layer(&s, key, &info, &error), 0);
	CHECK_INT_EQ(info.status, LAYER_SUCCESS);
	layer_info_release(&info);
	/* The second process waited for the lock, then found the layer published. */
	char *text = scratch_read_text(results);
	CHECK_INT_EQ(count_substrings(text, "built\n"), 1);
	CHECK_INT_EQ(count_substrings(text, "cached\n"), 1);
	CHECK_INT_EQ(count_entries(s.dir, "tmp-"), 0);
	free(text);
	free(results);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_racing_publishes_without_recheck(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE], *error = NULL;
	struct layer_info info;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 110);
	char *results = xasprintf("%s/results", dir);
	/* Both builds run, the first rename publishes, and the second build's directory goes. */
	CHECK_INT_EQ(run_race(dir, key, results, false), 2);
	char *text = scratch_read_text(results);
	CHECK_INT_EQ(count_substrings(text, "built\n"), 2);
	free(text);
	CHECK_INT_EQ(store_read_layer(&s, key, &info, &error), 0);
	CHECK_INT_EQ(info.status, LAYER_SUCCESS);
	layer_info_release(&info);
	CHECK_INT_EQ(count_entries(s.dir, "tmp-"), 0);
	free(results);
	store_close(&s);
	remove_temp_dir(dir);
}

/* ---- Removing layers ---- */

static void test_remove_layer(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE], *error = NULL;
	struct layer_info info;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 120);
	struct test_layer layer = { "failed.1", LAYER_FAILURE, NULL, 0, 10 };
	CHECK(publish(&s, key, &layer));
	CHECK_INT_EQ(store_remove_layer(&s, key, &error), 0);
	CHECK(!layer_exists(&s, key));
	CHECK_INT_EQ(store_read_layer(&s, key, &info, &error), 0);
	CHECK_INT_EQ(info.status, LAYER_MISSING);
	CHECK_INT_EQ(count_entries(s.dir, "tmp-"), 0);
	/* Removing a layer that is not there succeeds. */
	CHECK_INT_EQ(store_remove_layer(&s, key, &error), 0);
	CHECK_INT_EQ(count_entries(s.dir, "tmp-"), 0);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_remove_read_only_layer(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE], *error = NULL, *tmp = NULL;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 130);
	int lock = store_begin(&s, key, &tmp, &error);
	CHECK(lock >= 0);
	char *fs = xasprintf("%s/fs", tmp), *whiteout = xasprintf("%s/fs/deleted", tmp);
	CHECK(make_read_only_tree(fs));
	/* An overlay whiteout is a 0/0 character device, and making one needs CAP_MKNOD. */
	bool has_whiteout = mknod(whiteout, S_IFCHR | 0, makedev(0, 0)) == 0;
	if (!has_whiteout)
		fprintf(stderr, "%s: no whiteout in the layer: mknod: %s\n", test_current_name, strerror(errno));
	CHECK(chmod(fs, 0555) == 0);
	struct layer_info info = { LAYER_SUCCESS, (char *)"ro.1", 0, NULL, 0, 1, NULL };
	CHECK_INT_EQ(store_publish(&s, key, tmp, &info, lock, &error), 0);
	CHECK(layer_exists(&s, key));

	CHECK_INT_EQ(store_remove_layer(&s, key, &error), 0);
	CHECK(!layer_exists(&s, key));
	CHECK_INT_EQ(count_entries(s.dir, "tmp-"), 0);
	free(fs);
	free(whiteout);
	free(tmp);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_abandon_removes_tmp_dir(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE], *error = NULL, *tmp = NULL;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 140);
	int lock = store_begin(&s, key, &tmp, &error);
	CHECK(lock >= 0);
	char *fs = xasprintf("%s/fs", tmp);
	CHECK(make_read_only_tree(fs));
	store_abandon(&s, tmp, lock);
	CHECK(!path_exists(tmp));
	CHECK(!layer_exists(&s, key));
	free(fs);
	free(tmp);
	store_close(&s);
	remove_temp_dir(dir);
}

/* ---- Pruning ---- */

static void test_prune_by_age(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char old[LAYER_KEY_SIZE], recent[LAYER_KEY_SIZE];

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(old, 150);
	fake_key(recent, 151);
	CHECK(publish_simple(&s, old, "old.1"));
	CHECK(publish_simple(&s, recent, "recent.1"));
	CHECK(set_last_use_days_ago(&s, old, 10));

	struct prune_run run = run_prune(&s, 5, 0, false);
	CHECK_INT_EQ(run.removed, 1);
	CHECK(run.freed > 0);
	CHECK(!layer_exists(&s, old));
	CHECK(layer_exists(&s, recent));
	char *expected = xasprintf("removed %s (old.1, ", old);
	CHECK(strncmp(run.output, expected, strlen(expected)) == 0);
	CHECK_CONTAINS(run.output, " MB, last used ");
	CHECK_INT_EQ(count_entries(s.dir, "tmp-"), 0);
	free(expected);
	free(run.output);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_prune_dry_run(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char old[LAYER_KEY_SIZE];

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(old, 160);
	CHECK(publish_simple(&s, old, "old.1"));
	CHECK(set_last_use_days_ago(&s, old, 10));

	struct prune_run run = run_prune(&s, 5, 1, true);
	CHECK_INT_EQ(run.removed, 1);
	CHECK(run.freed > 0);
	CHECK(layer_exists(&s, old));
	char *expected = xasprintf("would remove %s (old.1, ", old);
	CHECK(strncmp(run.output, expected, strlen(expected)) == 0);
	CHECK_INT_EQ(count_entries(s.dir, "tmp-"), 0);
	free(expected);
	free(run.output);
	store_close(&s);
	remove_temp_dir(dir);
}

/*
 * A <- B <- C (C depends on B, B on A), with A used 30 days ago, B 20 and C now, and an unrelated
 * D used 10 days ago that contains a large file.
 */
struct chain {
	char a[LAYER_KEY_SIZE], b[LAYER_KEY_SIZE], c[LAYER_KEY_SIZE], d[LAYER_KEY_SIZE];
};

static bool publish_chain(const struct store *s, struct chain *chain)
{
	fake_key(chain->a, 170);
	fake_key(chain->b, 171);
	fake_key(chain->c, 172);
	fake_key(chain->d, 173);
	const char *b_deps[] = { chain->a }, *c_deps[] = { chain->b, chain->a };
	struct test_layer a = { "a.1", LAYER_SUCCESS, NULL, 0, 10 };
	struct test_layer b = { "b.1", LAYER_SUCCESS, b_deps, 1, 10 };
	struct test_layer c = { "c.1", LAYER_SUCCESS, c_deps, 2, 10 };
	struct test_layer d = { "d.1", LAYER_SUCCESS, NULL, 0, BIG_FILE_BYTES };

	return publish(s, chain->a, &a) && publish(s, chain->b, &b) && publish(s, chain->c, &c) &&
	       publish(s, chain->d, &d) && set_last_use_days_ago(s, chain->a, 30) &&
	       set_last_use_days_ago(s, chain->b, 20) && set_last_use_days_ago(s, chain->d, 10);
}

static void test_prune_by_size_keeps_dependencies(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	struct chain chain;

	if (!dir || !open_store(&s, dir) || !publish_chain(&s, &chain)) {
		CHECK(!"cannot make the layers");
		remove_temp_dir(dir);
		return;
	}
	/* A and B are used less recently than D, but C needs them, so D goes. */
	struct prune_run run = run_prune(&s, 0, BIG_FILE_BYTES / 2, false);
	CHECK_INT_EQ(run.removed, 1);
	CHECK(run.freed >= BIG_FILE_BYTES);
	CHECK(layer_exists(&s, chain.a));
	CHECK(layer_exists(&s, chain.b));
	CHECK(layer_exists(&s, chain.c));
	CHECK(!layer_exists(&s, chain.d));
	free(run.output);

	/* With no room at all, the layers go in dependents-first order. */
	run = run_prune(&s, 0, 1, false);
	CHECK_INT_EQ(run.removed, 3);
	char *expected = xasprintf("removed %s (c.1, ", chain.c);
	CHECK(strncmp(run.output, expected, strlen(expected)) == 0);
	char *b_line = strstr(run.output, "(b.1, "), *a_line = strstr(run.output, "(a.1, ");
	CHECK(b_line != NULL);
	CHECK(a_line != NULL);
	if (b_line && a_line)
		CHECK(b_line < a_line);
	CHECK(!layer_exists(&s, chain.a));
	CHECK_INT_EQ(count_entries(s.dir, "tmp-"), 0);
	free(expected);
	free(run.output);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_prune_by_age_keeps_dependencies(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	struct chain chain;

	if (!dir || !open_store(&s, dir) || !publish_chain(&s, &chain)) {
		CHECK(!"cannot make the layers");
		remove_temp_dir(dir);
		return;
	}
	struct prune_run run = run_prune(&s, 15, 0, false);
	CHECK_INT_EQ(run.removed, 0);
	CHECK(layer_exists(&s, chain.a));
	CHECK(layer_exists(&s, chain.b));
	free(run.output);

	/* Once C is old too, the whole chain goes. */
	CHECK(set_last_use_days_ago(&s, chain.c, 25));
	run = run_prune(&s, 15, 0, false);
	CHECK_INT_EQ(run.removed, 3);
	CHECK(!layer_exists(&s, chain.a));
	CHECK(!layer_exists(&s, chain.b));
	CHECK(!layer_exists(&s, chain.c));
	CHECK(layer_exists(&s, chain.d));
	free(run.output);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_prune_counts_hard_links_once(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char first[LAYER_KEY_SIZE], second[LAYER_KEY_SIZE], *error = NULL, *tmp = NULL;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(first, 180);
	fake_key(second, 181);
	struct test_layer big = { "big.1", LAYER_SUCCESS, NULL, 0, BIG_FILE_BYTES };
	CHECK(publish(&s, first, &big));

	int lock = store_begin(&s, second, &tmp, &error);
	char *fs = xasprintf("%s/fs", tmp), *link_path = xasprintf("%s/fs/data", tmp);
	char *first_fs = store_layer_fs(&s, first), *target = xasprintf("%s/data", first_fs);
	CHECK(mkdir(fs, 0755) == 0);
	CHECK(link(target, link_path) == 0);
	struct layer_info info = { LAYER_SUCCESS, (char *)"linked.1", 0, NULL, 0, 1, NULL };
	CHECK_INT_EQ(store_publish(&s, second, tmp, &info, lock, &error), 0);

	struct prune_run run = run_prune(&s, 0, 1, true);
	CHECK_INT_EQ(run.removed, 2);
	CHECK(run.freed >= BIG_FILE_BYTES);
	CHECK(run.freed < BIG_FILE_BYTES + BIG_FILE_BYTES / 2);
	free(run.output);
	free(fs);
	free(link_path);
	free(first_fs);
	free(target);
	free(tmp);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_prune_skips_locked_layer(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char old[LAYER_KEY_SIZE];
	struct lock_holder holder;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(old, 190);
	CHECK(publish_simple(&s, old, "old.1"));
	CHECK(set_last_use_days_ago(&s, old, 10));
	char *lock = xasprintf("%s/locks/%s.lock", s.dir, old);
	if (!start_lock_holder(lock, &holder)) {
		CHECK(!"cannot start the lock holder");
	} else {
		struct prune_run run = run_prune(&s, 5, 0, false);
		CHECK_INT_EQ(run.removed, 0);
		CHECK(layer_exists(&s, old));
		free(run.output);
		CHECK(stop_lock_holder(&holder));
	}
	free(lock);
	store_close(&s);
	remove_temp_dir(dir);
}

static void test_touch_updates_last_use(void)
{
	char *dir = scratch_dir("store");
	struct store s;
	char key[LAYER_KEY_SIZE];
	struct stat st;

	if (!dir || !open_store(&s, dir)) {
		CHECK(!"cannot open the store");
		remove_temp_dir(dir);
		return;
	}
	fake_key(key, 200);
	CHECK(publish_simple(&s, key, "used.1"));
	CHECK(set_last_use_days_ago(&s, key, 10));
	store_touch(&s, key);
	char *layer = store_layer_path(&s, key), *json = xasprintf("%s/layer.json", layer);
	CHECK(stat(json, &st) == 0);
	CHECK(time(NULL) - st.st_mtime < 60);

	struct prune_run run = run_prune(&s, 5, 0, false);
	CHECK_INT_EQ(run.removed, 0);
	CHECK(layer_exists(&s, key));
	free(run.output);
	free(layer);
	free(json);
	store_close(&s);
	remove_temp_dir(dir);
}

int main(void)
{
	/* A lock holder that dies early must not kill the tests through a closed pipe. */
	signal(SIGPIPE, SIG_IGN);

	RUN_TEST(test_key_is_stable_hex);
	RUN_TEST(test_key_changes_with_inputs);
	RUN_TEST(test_key_ignores_creation_order);
	RUN_TEST(test_key_dependencies_base_settings);
	RUN_TEST(test_key_length_prefixes);
	RUN_TEST(test_key_without_files_dir);
	RUN_TEST(test_key_unreadable_file_error);
	RUN_TEST(test_key_rejects_invalid_dependency);
	RUN_TEST(test_publish_read_success);
	RUN_TEST(test_publish_replaces_damaged_layer);
	RUN_TEST(test_publish_read_failure);
	RUN_TEST(test_read_missing_layer);
	RUN_TEST(test_read_invalid_layer_json);
	RUN_TEST(test_publish_existing_keeps_first);
	RUN_TEST(test_publish_invalid_releases_lock);
	RUN_TEST(test_begin_rejects_invalid_key);
	RUN_TEST(test_open_rejects_invalid_platform);
	RUN_TEST(test_open_creates_nested_root);
	RUN_TEST(test_open_removes_killed_build);
	RUN_TEST(test_open_keeps_locked_tmp_dir);
	RUN_TEST(test_open_unmounts_leftover_mount);
	RUN_TEST(test_open_keeps_bind_mounted_files);
	RUN_TEST(test_racing_builds_publish_once);
	RUN_TEST(test_racing_publishes_without_recheck);
	RUN_TEST(test_remove_layer);
	RUN_TEST(test_remove_read_only_layer);
	RUN_TEST(test_abandon_removes_tmp_dir);
	RUN_TEST(test_prune_by_age);
	RUN_TEST(test_prune_dry_run);
	RUN_TEST(test_prune_by_size_keeps_dependencies);
	RUN_TEST(test_prune_by_age_keeps_dependencies);
	RUN_TEST(test_prune_counts_hard_links_once);
	RUN_TEST(test_prune_skips_locked_layer);
	RUN_TEST(test_touch_updates_last_use);
	return test_summary();
}
