/*
 * Tests of the build sandbox: the OCI config.json written for a spec, and real containers run
 * with runc. Their root file system is a static busybox (Debian package busybox-static) in a
 * temporary directory, never the host's own files. The container tests need root, runc in PATH
 * and a static /bin/busybox, and are skipped without them.
 */
#include "harness.h"
#include "scratch.h"

#include <arpa/inet.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "overlay.h"
#include "sandbox.h"
#include "util.h"

#define BUILD_UID 1000
#define BUILD_GID 1000
#define BUSYBOX "/bin/busybox"

/* Busybox applets the test scripts use, linked in the root file system's /bin. */
static const char *const applets[] = {
	"sh", "cat", "echo", "id", "sleep", "nc", "test", "[", "hostname", "mkdir", "touch", "dd", "head", "ls", "true",
};

/* ---- Files and directories ---- */

/* True if TEXT is not NULL and contains PART. */
static bool contains(const char *text, const char *part)
{
	return text && strstr(text, part);
}

static bool starts_with(const char *text, const char *prefix)
{
	return text && strncmp(text, prefix, strlen(prefix)) == 0;
}

static bool exists_in(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	struct stat st;
	bool found = lstat(path, &st) == 0;

	free(path);
	return found;
}

/* True if PATH is an ELF executable without a program interpreter, so it runs in an empty root. */
static bool is_static_elf(const char *path)
{
	char *data = NULL;
	size_t len;
	if (read_file(path, &data, &len) < 0)
		return false;

	const Elf64_Ehdr *header = (const Elf64_Ehdr *)data;
	bool ok = len >= sizeof(*header) && memcmp(header->e_ident, ELFMAG, SELFMAG) == 0 &&
		  header->e_ident[EI_CLASS] == ELFCLASS64 &&
		  header->e_phoff + (size_t)header->e_phnum * sizeof(Elf64_Phdr) <= len;
	for (size_t i = 0; ok && i < header->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(data + header->e_phoff + i * sizeof(Elf64_Phdr));
		if (ph->p_type == PT_INTERP)
			ok = false;
	}
	free(data);
	return ok;
}

static bool find_in_path(const char *name)
{
	const char *path = getenv("PATH");
	char *copy = xstrdup(path ? path : "/usr/bin:/bin");
	bool found = false;

	for (char *dir = strtok(copy, ":"); dir && !found; dir = strtok(NULL, ":")) {
		char *candidate = xasprintf("%s/%s", dir, name);
		found = access(candidate, X_OK) == 0;
		free(candidate);
	}
	free(copy);
	return found;
}

/* True if this process may set a hard limit of COUNT open files: it has that much, or may raise it. */
static bool host_allows_open_files(rlim_t count)
{
	struct rlimit limit;
	if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_max >= count)
		return true;

	limit.rlim_max = limit.rlim_cur = count;
	return prlimit(0, RLIMIT_NOFILE, &limit, NULL) == 0;
}

/* ---- The root file system ---- */

static char *fixture_dir; /* contains rootfs/ */
static char *rootfs;

static bool copy_busybox(const char *target)
{
	char *data = NULL;
	size_t len;
	if (read_file(BUSYBOX, &data, &len) < 0)
		return false;

	int fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	bool ok = fd >= 0 && write(fd, data, len) == (ssize_t)len;
	if (fd >= 0)
		ok = close(fd) == 0 && ok;
	free(data);
	return ok;
}

static bool make_dirs_in(const char *root, const char *const *names, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		char *path = xasprintf("%s/%s", root, names[i]);
		bool ok = mkdir(path, 0755) == 0;
		free(path);
		if (!ok)
			return false;
	}
	return true;
}

static bool link_applets(const char *root)
{
	for (size_t i = 0; i < ARRAY_LEN(applets); i++) {
		char *path = xasprintf("%s/bin/%s", root, applets[i]);
		bool ok = symlink("busybox", path) == 0;
		free(path);
		if (!ok)
			return false;
	}
	return true;
}

/*
 * A minimal layout: busybox and its links in /bin, mount points, /etc/passwd and a home for uid
 * 1000. /tmp has mode 1777 as in any distribution, because runc 1.1 gives the tmpfs mounted there
 * the mode of the directory below.
 */
static bool build_rootfs(const char *root)
{
	static const char *const dirs[] = { "bin", "dev", "etc", "home", "home/build", "proc", "sys", "tmp" };
	char *busybox = xasprintf("%s/bin/busybox", root), *passwd = xasprintf("%s/etc/passwd", root);
	char *home = xasprintf("%s/home/build", root), *tmp = xasprintf("%s/tmp", root);

	bool ok = mkdir(root, 0755) == 0 && make_dirs_in(root, dirs, ARRAY_LEN(dirs)) && copy_busybox(busybox) &&
		  link_applets(root) &&
		  scratch_write_text(passwd,
				     "root:x:0:0:root:/:/bin/sh\nbuild:x:1000:1000:build:/home/build:/bin/sh\n") &&
		  chown(home, BUILD_UID, BUILD_GID) == 0 && chmod(tmp, 01777) == 0;
	free(tmp);
	free(busybox);
	free(passwd);
	free(home);
	return ok;
}

/* Build the root file system on the first call. Returns why containers cannot run here, or NULL. */
static const char *sandbox_unavailable(void)
{
	static const char *reason;
	static bool checked;

	if (checked)
		return reason;
	checked = true;
	if (geteuid() != 0)
		return reason = "running containers needs root";
	if (!find_in_path("runc"))
		return reason = "runc not found in PATH";
	if (!is_static_elf(BUSYBOX))
		return reason = "no static " BUSYBOX " (install the Debian package busybox-static)";

	fixture_dir = scratch_dir("sandbox");
	rootfs = fixture_dir ? xasprintf("%s/rootfs", fixture_dir) : NULL;
	if (!rootfs || !build_rootfs(rootfs))
		return reason = "cannot build the test root file system";
	return NULL;
}

/* ---- Running containers ---- */

struct run {
	char *dir; /* per-run directory: bundle/ and log */
	char *bundle;
	char *log_path;
	char *log; /* the log's contents after the run */
	int status;
	char *error;
	struct sandbox_result result;
};

static struct sandbox_spec build_spec(const char *const *argv)
{
	static const char *const env[] = { "PATH=/bin", "HOME=/home/build", NULL };

	return (struct sandbox_spec){
		.rootfs = rootfs,
		.argv = argv,
		.env = env,
		.cwd = "/home/build",
		.uid = BUILD_UID,
		.gid = BUILD_GID,
		.timeout_seconds = 60,
		.hostname = "obake-test",
	};
}

static bool prepare_run(struct run *r)
{
	*r = (struct run){ .dir = scratch_dir("sandbox") };
	if (!r->dir)
		return false;
	r->bundle = xasprintf("%s/bundle", r->dir);
	r->log_path = xasprintf("%s/log", r->dir);
	return mkdir(r->bundle, 0700) == 0;
}

/* Run SPEC (its log_path set here) and keep the result and the log. */
static void execute(struct run *r, struct sandbox_spec *spec)
{
	spec->log_path = r->log_path;
	r->status = sandbox_run(spec, r->bundle, &r->result, &r->error);
	if (r->status < 0)
		fprintf(stderr, "%s: sandbox_run: %s\n", test_current_name, r->error);
	r->log = scratch_read_text(r->log_path);
}

static void free_run(struct run *r)
{
	if (r->dir)
		scratch_remove(r->dir);
	free(r->dir);
	free(r->bundle);
	free(r->log_path);
	free(r->log);
	free(r->error);
}

/* Run `sh -c SCRIPT` as the build user with the default spec. */
static void run_script(struct run *r, const char *script)
{
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct sandbox_spec spec = build_spec(argv);

	if (prepare_run(r))
		execute(r, &spec);
	else
		test_current_failed = true;
}

/* ---- config.json ---- */

static json_t *load_config(const struct sandbox_spec *spec, char **dir)
{
	char *error = NULL;
	*dir = scratch_dir("sandbox");
	if (!*dir)
		return NULL;
	if (sandbox_write_config(spec, *dir, &error) < 0) {
		fprintf(stderr, "%s: sandbox_write_config: %s\n", test_current_name, error);
		free(error);
		return NULL;
	}

	char *path = xasprintf("%s/config.json", *dir);
	json_t *config = json_load_file(path, 0, NULL);
	free(path);
	return config;
}

static bool array_contains(const json_t *array, const char *value)
{
	size_t i;
	json_t *item;

	json_array_foreach(array, i, item)
	{
		if (json_is_string(item) && strcmp(json_string_value(item), value) == 0)
			return true;
	}
	return false;
}

static const json_t *find_mount(const json_t *config, const char *destination)
{
	size_t i;
	json_t *m;

	json_array_foreach(json_object_get(config, "mounts"), i, m)
	{
		const char *d = json_string_value(json_object_get(m, "destination"));
		if (d && strcmp(d, destination) == 0)
			return m;
	}
	return NULL;
}

/* FIELD of the mount at DESTINATION, or NULL if there is no such mount. */
static const char *mount_field(const json_t *config, const char *destination, const char *field)
{
	return json_string_value(json_object_get(find_mount(config, destination), field));
}

static bool mount_has_option(const json_t *config, const char *destination, const char *option)
{
	return array_contains(json_object_get(find_mount(config, destination), "options"), option);
}

static bool has_namespace(const json_t *config, const char *type)
{
	size_t i;
	json_t *ns;

	json_array_foreach(json_object_get(json_object_get(config, "linux"), "namespaces"), i, ns)
	{
		const char *t = json_string_value(json_object_get(ns, "type"));
		if (t && strcmp(t, type) == 0)
			return true;
	}
	return false;
}

static void test_config_describes_spec(void)
{
	const char *argv[] = { "make", "-j2", NULL };
	const struct sandbox_mount mounts[] = {
		{ "/srv/cache", "/cache", true },
		{ "/srv/out", "/out", false },
	};
	struct sandbox_spec spec = build_spec(argv);
	spec.rootfs = "/srv/rootfs";
	spec.mounts = mounts;
	spec.mount_count = 2;
	spec.memory_bytes = 1ull << 30;

	char *dir = NULL;
	json_t *config = load_config(&spec, &dir);
	CHECK(config != NULL);
	if (config) {
		json_t *process = json_object_get(config, "process");
		json_t *linux_obj = json_object_get(config, "linux");
		json_t *rlimit = json_array_get(json_object_get(process, "rlimits"), 0);

		CHECK_STR_EQ(json_string_value(json_object_get(config, "ociVersion")), "1.0.2");
		CHECK_STR_EQ(json_string_value(json_object_get(config, "hostname")), "obake-test");
		CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(process, "user"), "uid")), 1000);
		CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(process, "user"), "gid")), 1000);
		CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(process, "args"), 1)), "-j2");
		CHECK_STR_EQ(json_string_value(json_object_get(process, "cwd")), "/home/build");
		CHECK(json_is_true(json_object_get(process, "noNewPrivileges")));
		CHECK(json_is_false(json_object_get(process, "terminal")));
		CHECK_INT_EQ(json_array_size(json_object_get(json_object_get(process, "capabilities"), "bounding")), 0);
		CHECK_STR_EQ(json_string_value(json_object_get(rlimit, "type")), "RLIMIT_NOFILE");
		json_int_t soft = json_integer_value(json_object_get(rlimit, "soft"));
		CHECK(soft > 0);
		CHECK(soft <= 65536);
		CHECK_INT_EQ(json_integer_value(json_object_get(rlimit, "hard")), soft);
		if (host_allows_open_files(65536))
			CHECK_INT_EQ(soft, 65536);
		CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(config, "root"), "path")),
			     "/srv/rootfs");
		CHECK(json_is_false(json_object_get(json_object_get(config, "root"), "readonly")));
		CHECK_INT_EQ(json_integer_value(json_object_get(
				     json_object_get(json_object_get(linux_obj, "resources"), "memory"), "limit")),
			     1 << 30);
		CHECK(array_contains(json_object_get(linux_obj, "maskedPaths"), "/proc/kcore"));
		CHECK(array_contains(json_object_get(linux_obj, "readonlyPaths"), "/proc/sys"));
	}
	json_decref(config);
	if (dir)
		scratch_remove(dir);
	free(dir);
}

static void test_config_namespaces_and_mounts(void)
{
	const char *argv[] = { "true", NULL };
	const struct sandbox_mount mounts[] = {
		{ "/srv/cache", "/cache", true },
		{ "/srv/out", "/out", false },
	};
	struct sandbox_spec spec = build_spec(argv);
	spec.rootfs = "/srv/rootfs";
	spec.mounts = mounts;
	spec.mount_count = 2;

	char *dir = NULL;
	json_t *config = load_config(&spec, &dir);
	CHECK(config != NULL);
	if (config) {
		const char *const expected[] = { "pid", "ipc", "uts", "mount", "network", "cgroup" };
		for (size_t i = 0; i < ARRAY_LEN(expected); i++)
			CHECK(has_namespace(config, expected[i]));
		CHECK(!has_namespace(config, "user"));

		CHECK_STR_EQ(mount_field(config, "/proc", "type"), "proc");
		CHECK_STR_EQ(mount_field(config, "/dev/pts", "type"), "devpts");
		CHECK_STR_EQ(mount_field(config, "/dev/shm", "type"), "tmpfs");
		CHECK_STR_EQ(mount_field(config, "/tmp", "type"), "tmpfs");
		CHECK(mount_has_option(config, "/sys", "ro"));
		CHECK_STR_EQ(mount_field(config, "/cache", "source"), "/srv/cache");
		CHECK(mount_has_option(config, "/cache", "rbind"));
		CHECK(mount_has_option(config, "/cache", "ro"));
		CHECK(mount_has_option(config, "/out", "rbind"));
		CHECK(!mount_has_option(config, "/out", "ro"));
		CHECK(!json_object_get(json_object_get(json_object_get(config, "linux"), "resources"), "memory"));
	}
	json_decref(config);
	if (dir)
		scratch_remove(dir);
	free(dir);
}

static void test_config_root_capabilities(void)
{
	const char *argv[] = { "true", NULL };
	struct sandbox_spec spec = build_spec(argv);
	spec.rootfs = "/srv/rootfs";
	spec.uid = 0;
	spec.gid = 0;

	char *dir = NULL;
	json_t *config = load_config(&spec, &dir);
	CHECK(config != NULL);
	if (config) {
		json_t *caps = json_object_get(json_object_get(config, "process"), "capabilities");
		CHECK(array_contains(json_object_get(caps, "bounding"), "CAP_CHOWN"));
		CHECK(array_contains(json_object_get(caps, "effective"), "CAP_CHOWN"));
		CHECK(!array_contains(json_object_get(caps, "bounding"), "CAP_SYS_ADMIN"));
	}
	json_decref(config);
	if (dir)
		scratch_remove(dir);
	free(dir);
}

static void test_config_rejects_invalid_spec(void)
{
	const char *no_command[] = { NULL };
	const struct sandbox_mount relative[] = { { "/srv/cache", "cache", false } };
	struct sandbox_spec spec = build_spec(no_command);
	char *error = NULL;

	spec.rootfs = "/srv/rootfs";
	CHECK_INT_EQ(sandbox_write_config(&spec, "/nonexistent", &error), -1);
	CHECK(contains(error, "no command"));
	free(error);

	const char *argv[] = { "true", NULL };
	spec.argv = argv;
	spec.mounts = relative;
	spec.mount_count = 1;
	error = NULL;
	CHECK_INT_EQ(sandbox_write_config(&spec, "/nonexistent", &error), -1);
	CHECK(contains(error, "cache"));
	free(error);

	const char *bad_env[] = { "NAME=\xff\xfe", NULL };
	spec.mount_count = 0;
	spec.env = bad_env;
	error = NULL;
	CHECK_INT_EQ(sandbox_write_config(&spec, "/nonexistent", &error), -1);
	CHECK(contains(error, "UTF-8"));
	free(error);
}

/* ---- Containers ---- */

static void test_runs_as_build_user(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());

	struct run r;
	run_script(&r, "id -u; id -g; pwd; ulimit -n");
	CHECK_INT_EQ(r.status, 0);
	CHECK_INT_EQ(r.result.exit_code, 0);
	CHECK(!r.result.killed);
	CHECK(!r.result.timed_out);

	/* The last line is the open files limit, which must be the one in config.json. */
	char *config_path = xasprintf("%s/config.json", r.bundle);
	json_t *config = json_load_file(config_path, 0, NULL);
	json_t *rlimit = json_array_get(json_object_get(json_object_get(config, "process"), "rlimits"), 0);
	char *expected = xasprintf("1000\n1000\n/home/build\n%lld\n",
				   (long long)json_integer_value(json_object_get(rlimit, "soft")));
	CHECK_STR_EQ(r.log, expected);
	json_decref(config);
	free(expected);
	free(config_path);
	free_run(&r);
}

static void test_exit_code_passes_through(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());

	struct run r;
	run_script(&r, "exit 3");
	CHECK_INT_EQ(r.status, 0);
	CHECK_INT_EQ(r.result.exit_code, 3);
	CHECK(!r.result.killed);
	free_run(&r);
}

static void test_log_gets_output(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());

	struct run r;
	const char *argv[] = { "/bin/sh", "-c", "echo out; echo err >&2", NULL };
	struct sandbox_spec spec = build_spec(argv);
	if (prepare_run(&r) && scratch_write_text(r.log_path, "before\n")) {
		execute(&r, &spec);
		CHECK_INT_EQ(r.result.exit_code, 0);
		/*
		 * Busybox 1.35's sh wrote the built-in echo's output after the later standard error line,
		 * so the order of the two lines is not checked.
		 */
		CHECK(r.log != NULL);
		CHECK(starts_with(r.log, "before\n"));
		CHECK(contains(r.log, "\nout\n"));
		CHECK(contains(r.log, "\nerr\n"));
		CHECK_INT_EQ(r.log ? strlen(r.log) : 0, strlen("before\nout\nerr\n"));
	} else {
		test_current_failed = true;
	}
	free_run(&r);
}

/* Only the loopback interface: the lines of /proc/net/dev after its two header lines. */
static void check_only_loopback(const char *log)
{
	char *copy = xstrdup(log ? log : "");
	int line_number = 0, interfaces = 0;

	for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
		if (++line_number <= 2 || !strchr(line, ':'))
			continue;
		line += strspn(line, " ");
		CHECK(strncmp(line, "lo:", 3) == 0);
		interfaces++;
	}
	CHECK_INT_EQ(interfaces, 1);
	free(copy);
}

/* A listener on the host's loopback, which the container must not reach. */
static int listen_on_loopback(unsigned *port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(addr.sin_port);
	return fd;
}

static void test_network_is_absent(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());

	unsigned port;
	int listener = listen_on_loopback(&port);
	CHECK(listener >= 0);
	if (listener < 0)
		return;

	char *script = xasprintf(
		"cat /proc/net/dev; if nc -w 2 127.0.0.1 %u </dev/null 2>/dev/null; then echo CONNECTED; fi", port);
	struct run r;
	run_script(&r, script);
	CHECK_INT_EQ(r.result.exit_code, 0);
	CHECK(r.log != NULL);
	CHECK(!contains(r.log, "CONNECTED"));
	check_only_loopback(r.log);

	/* Nothing reached the host's listener. */
	int accepted = accept(listener, NULL, NULL);
	CHECK(accepted < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	if (accepted >= 0)
		close(accepted);
	close(listener);
	free(script);
	free_run(&r);
}

static void test_writes_outside_fail(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());

	struct run r;
	run_script(&r, "echo x > /evil && exit 10; mkdir /bin/evil && exit 11; touch /etc/evil && exit 12;"
		       "echo ok > /tmp/private || exit 13; exit 0");
	CHECK_INT_EQ(r.result.exit_code, 0);
	CHECK(!exists_in(rootfs, "evil"));
	CHECK(!exists_in(rootfs, "bin/evil"));
	CHECK(!exists_in(rootfs, "etc/evil"));
	CHECK(!exists_in(rootfs, "tmp/private"));
	free_run(&r);
}

/* Paths that exist on the host (the working directory, this test's files, /usr) are absent inside. */
static void test_host_files_hidden(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());

	char cwd[4096];
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	char *script = xasprintf("[ -e '%s' ] && exit 10; [ -e '%s' ] && exit 11; [ -e /usr ] && exit 12;"
				 "[ \"$$\" = 1 ] || exit 13; [ \"$(hostname)\" = obake-test ] || exit 14; exit 0",
				 cwd, fixture_dir);
	struct run r;
	run_script(&r, script);
	CHECK_INT_EQ(r.result.exit_code, 0);
	free(script);
	free_run(&r);
}

static bool make_shared_dir(const char *path)
{
	return mkdir(path, 0777) == 0 && chown(path, BUILD_UID, BUILD_GID) == 0 && chmod(path, 0777) == 0;
}

/* The directories are the build user's, so only the read-only mount keeps it from writing. */
static void test_readonly_bind_mount(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());

	struct run r;
	const char *argv[] = { "/bin/sh", "-c",
			       "cat /mnt/ro/data; echo x > /mnt/ro/new && exit 10; echo y > /mnt/rw/new || exit 11",
			       NULL };
	struct sandbox_spec spec = build_spec(argv);
	if (!prepare_run(&r)) {
		test_current_failed = true;
		free_run(&r);
		return;
	}
	char *ro = xasprintf("%s/ro", r.dir), *rw = xasprintf("%s/rw", r.dir), *data = xasprintf("%s/ro/data", r.dir);
	CHECK(make_shared_dir(ro));
	CHECK(make_shared_dir(rw));
	CHECK(scratch_write_text(data, "ro-data\n"));
	const struct sandbox_mount mounts[] = { { ro, "/mnt/ro", true }, { rw, "/mnt/rw", false } };
	spec.mounts = mounts;
	spec.mount_count = 2;

	execute(&r, &spec);
	CHECK_INT_EQ(r.result.exit_code, 0);
	CHECK(contains(r.log, "ro-data\n"));
	CHECK(!exists_in(ro, "new"));
	CHECK(exists_in(rw, "new"));
	free(ro);
	free(rw);
	free(data);
	free_run(&r);
}

static void test_timeout_kills_sleep(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());

	struct run r;
	const char *argv[] = { "/bin/sleep", "100", NULL };
	struct sandbox_spec spec = build_spec(argv);
	spec.timeout_seconds = 1;
	if (prepare_run(&r))
		execute(&r, &spec);
	CHECK_INT_EQ(r.status, 0);
	CHECK(r.result.timed_out);
	CHECK(r.result.killed);
	CHECK_INT_EQ(r.result.signal, 9);
	CHECK_INT_EQ(r.result.exit_code, -1);
	CHECK(r.result.seconds >= 1.0);
	CHECK(r.result.seconds < 10.0);
	free_run(&r);
}

static bool memory_cgroup_available(void)
{
	if (access("/sys/fs/cgroup/memory/memory.limit_in_bytes", F_OK) == 0)
		return true;

	char *controllers = scratch_read_text("/sys/fs/cgroup/cgroup.controllers");
	bool found = controllers && strstr(controllers, "memory");
	free(controllers);
	return found;
}

/* dd's 256 MiB buffer, filled from /dev/zero, cannot fit in 32 MiB: the kernel's OOM killer ends it. */
static void test_memory_limit_kills(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());
	if (!memory_cgroup_available())
		SKIP("no memory cgroup controller (neither cgroup v1 memory nor v2 with memory)");

	struct run r;
	const char *argv[] = { "/bin/sh", "-c", "exec dd if=/dev/zero of=/dev/null bs=256M count=1", NULL };
	struct sandbox_spec spec = build_spec(argv);
	spec.memory_bytes = 32ull << 20;
	if (prepare_run(&r))
		execute(&r, &spec);
	CHECK_INT_EQ(r.status, 0);
	CHECK(!r.result.timed_out);
	CHECK(r.result.killed);
	CHECK_INT_EQ(r.result.signal, 9);
	free_run(&r);
}

static void test_runtime_failure_reported(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());

	struct run r;
	const char *argv[] = { "/no/such/command", NULL };
	struct sandbox_spec spec = build_spec(argv);
	if (prepare_run(&r)) {
		spec.log_path = r.log_path;
		r.status = sandbox_run(&spec, r.bundle, &r.result, &r.error);
	}
	CHECK_INT_EQ(r.status, -1);
	CHECK(contains(r.error, "/no/such/command"));
	free_run(&r);
}

static void test_missing_runtime_reported(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());

	struct run r;
	const char *argv[] = { "/bin/true", NULL };
	struct sandbox_spec spec = build_spec(argv);
	spec.runtime = "obake-no-such-runtime";
	if (prepare_run(&r)) {
		spec.log_path = r.log_path;
		r.status = sandbox_run(&spec, r.bundle, &r.result, &r.error);
	}
	CHECK_INT_EQ(r.status, -1);
	CHECK(contains(r.error, "obake-no-such-runtime"));
	free_run(&r);
}

static void *run_in_thread(void *arg)
{
	struct run *r = arg;
	const char *argv[] = { "/bin/sh", "-c", "echo started; exec sleep 100", NULL };
	struct sandbox_spec spec = build_spec(argv);
	spec.timeout_seconds = 0;
	execute(r, &spec);
	return NULL;
}

static bool wait_for_log_text(const char *path, const char *text, int seconds)
{
	for (int i = 0; i < seconds * 20; i++) {
		char *log = scratch_read_text(path);
		bool found = log && strstr(log, text);
		free(log);
		if (found)
			return true;
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return false;
}

static void test_kill_all_stops_containers(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());

	struct run r;
	pthread_t thread;
	if (!prepare_run(&r) || pthread_create(&thread, NULL, run_in_thread, &r) != 0) {
		test_current_failed = true;
		free_run(&r);
		return;
	}
	CHECK(wait_for_log_text(r.log_path, "started", 30));
	sandbox_kill_all();
	pthread_join(thread, NULL);

	CHECK_INT_EQ(r.status, 0);
	CHECK(r.result.killed);
	CHECK(!r.result.timed_out);
	CHECK(r.result.seconds < 30.0);
	free_run(&r);
}

struct parallel_run {
	struct run run;
	char expected[32];
	pthread_t thread;
};

static void *run_echo(void *arg)
{
	struct parallel_run *p = arg;
	char *script = xasprintf("echo %s", p->expected);
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct sandbox_spec spec = build_spec(argv);

	execute(&p->run, &spec);
	free(script);
	return NULL;
}

static void test_parallel_runs(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());

	struct parallel_run runs[4];
	for (size_t i = 0; i < ARRAY_LEN(runs); i++) {
		snprintf(runs[i].expected, sizeof(runs[i].expected), "run-%zu", i);
		CHECK(prepare_run(&runs[i].run));
		CHECK_INT_EQ(pthread_create(&runs[i].thread, NULL, run_echo, &runs[i]), 0);
	}
	for (size_t i = 0; i < ARRAY_LEN(runs); i++) {
		pthread_join(runs[i].thread, NULL);
		char *expected = xasprintf("%s\n", runs[i].expected);
		CHECK_INT_EQ(runs[i].run.status, 0);
		CHECK_INT_EQ(runs[i].run.result.exit_code, 0);
		CHECK_STR_EQ(runs[i].run.log, expected);
		free(expected);
		free_run(&runs[i].run);
	}
}

/* The way builds use it: an overlay of the root file system, written by the build user. */
static void test_overlay_rootfs(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());

	struct run r;
	struct overlay o;
	char *error = NULL;
	char *lowers[] = { rootfs };
	if (!prepare_run(&r) || overlay_mount(&o, r.dir, lowers, 1, &error) < 0) {
		fprintf(stderr, "%s: %s\n", test_current_name, error ? error : "cannot prepare the run");
		free(error);
		test_current_failed = true;
		free_run(&r);
		return;
	}

	const char *argv[] = { "/bin/sh", "-c", "echo built > /home/build/out", NULL };
	struct sandbox_spec spec = build_spec(argv);
	spec.rootfs = o.merged;
	execute(&r, &spec);
	CHECK_INT_EQ(r.result.exit_code, 0);
	CHECK(exists_in(o.upper, "home/build/out"));
	CHECK(!exists_in(rootfs, "home/build/out"));

	CHECK_INT_EQ(overlay_unmount(&o, true, &error), 0);
	free(error);
	free_run(&r);
}

/* Every container this process started was deleted. */
static void test_no_containers_left(void)
{
	if (sandbox_unavailable())
		SKIP(sandbox_unavailable());

	FILE *list = popen("runc list -q", "r");
	char *prefix = xasprintf("obake-%ld-", (long)getpid());
	char line[256];

	CHECK(list != NULL);
	while (list && fgets(line, sizeof(line), list))
		CHECK(strncmp(line, prefix, strlen(prefix)) != 0);
	if (list)
		CHECK_INT_EQ(pclose(list), 0);
	free(prefix);
}

int main(void)
{
	RUN_TEST(test_config_describes_spec);
	RUN_TEST(test_config_namespaces_and_mounts);
	RUN_TEST(test_config_root_capabilities);
	RUN_TEST(test_config_rejects_invalid_spec);
	RUN_TEST(test_runs_as_build_user);
	RUN_TEST(test_exit_code_passes_through);
	RUN_TEST(test_log_gets_output);
	RUN_TEST(test_network_is_absent);
	RUN_TEST(test_writes_outside_fail);
	RUN_TEST(test_host_files_hidden);
	RUN_TEST(test_readonly_bind_mount);
	RUN_TEST(test_timeout_kills_sleep);
	RUN_TEST(test_memory_limit_kills);
	RUN_TEST(test_runtime_failure_reported);
	RUN_TEST(test_missing_runtime_reported);
	RUN_TEST(test_kill_all_stops_containers);
	RUN_TEST(test_parallel_runs);
	RUN_TEST(test_overlay_rootfs);
	RUN_TEST(test_no_containers_left);

	if (fixture_dir)
		scratch_remove(fixture_dir);
	free(fixture_dir);
	free(rootfs);
	return test_summary();
}
