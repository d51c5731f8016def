/*
 * Containers for builds, run with an OCI runtime's command line: `RUNTIME run --bundle DIR ID` in
 * the foreground, so the runtime stays the parent of the container's first process and exits
 * with its status. The runtime's own errors go to DIR/runtime.log as JSON lines, which is how a
 * failure to start the container is distinguished from the command failing.
 */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

#define DEFAULT_RUNTIME "runc"
#define DEFAULT_HOSTNAME "obake"
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define OPEN_FILES_LIMIT 65536

/* How often a running container is checked for its end and its time limit, in milliseconds. */
#define POLL_INTERVAL_MS 20
/* After a time limit passes, the kill is repeated this often, in case the container was not yet created. */
#define KILL_RETRY_MS 1000
/* How long after the first kill the runtime itself is killed if it has not exited, in milliseconds. */
#define KILL_GIVE_UP_MS 10000

/* Capabilities of a process running as root: Docker's default set (moby, oci/caps/defaults.go). */
static const char *const root_capabilities[] = {
	"CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
	"CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
	"CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
	"CAP_KILL",    "CAP_AUDIT_WRITE",
};

/* Paths hidden from the container and paths made read-only, as in `runc spec` of runc 1.1. */
static const char *const masked_paths[] = {
	"/proc/acpi",       "/proc/asound",      "/proc/kcore",       "/proc/keys",    "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
};
static const char *const readonly_paths[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static const char *const namespaces[] = { "pid", "ipc", "uts", "mount", "network", "cgroup" };

/* ---- config.json ---- */

/* A JSON array of STRINGS, or NULL if one is not valid UTF-8 (so json_pack fails on it). */
static json_t *string_array(const char *const *strings, size_t count)
{
	json_t *array = json_array();
	for (size_t i = 0; i < count; i++) {
		if (json_array_append_new(array, json_string(strings[i])) < 0) {
			json_decref(array);
			return NULL;
		}
	}
	return array;
}

static size_t null_terminated_length(const char *const *strings)
{
	size_t count = 0;
	while (strings && strings[count])
		count++;
	return count;
}

/* Non-root builds get no capabilities at all, and root gets Docker's default set. */
static json_t *capabilities_json(uid_t uid)
{
	size_t count = uid == 0 ? ARRAY_LEN(root_capabilities) : 0;

	return json_pack("{s:o, s:o, s:o}", "bounding", string_array(root_capabilities, count), "effective",
			 string_array(root_capabilities, count), "permitted", string_array(root_capabilities, count));
}

static bool has_effective_capability(int capability)
{
	char *status = NULL;
	size_t len;
	if (read_file("/proc/self/status", &status, &len) < 0)
		return false;

	const char *line = strstr(status, "\nCapEff:");
	unsigned long long mask = 0;
	bool found = line && sscanf(line, "\nCapEff: %llx", &mask) == 1;
	free(status);
	return found && (mask >> capability & 1);
}

/*
 * OPEN_FILES_LIMIT, unless the runtime cannot grant it: raising a hard limit above the current one
 * needs CAP_SYS_RESOURCE, which root inside another container may lack. Then the current hard
 * limit is used, since asking for more makes the runtime fail to start the container.
 */
static json_int_t open_files_limit(void)
{
	struct rlimit limit;

	if (getrlimit(RLIMIT_NOFILE, &limit) < 0 || limit.rlim_max >= OPEN_FILES_LIMIT ||
	    has_effective_capability(CAP_SYS_RESOURCE))
		return OPEN_FILES_LIMIT;
	return (json_int_t)limit.rlim_max;
}

static json_t *process_json(const struct sandbox_spec *spec)
{
	static const char *const default_env[] = { DEFAULT_PATH };
	json_t *env = spec->env ? string_array(spec->env, null_terminated_length(spec->env))
				: string_array(default_env, ARRAY_LEN(default_env));
	json_int_t open_files = open_files_limit();
	json_t *rlimits = json_pack("[{s:s, s:I, s:I}]", "type", "RLIMIT_NOFILE", "hard", open_files, "soft",
				    open_files);

	return json_pack("{s:b, s:{s:I, s:I}, s:o, s:o, s:s, s:o, s:o, s:b}", "terminal", 0, "user", "uid",
			 (json_int_t)spec->uid, "gid", (json_int_t)spec->gid, "args",
			 string_array(spec->argv, null_terminated_length(spec->argv)), "env", env, "cwd",
			 spec->cwd ? spec->cwd : "/", "capabilities", capabilities_json(spec->uid), "rlimits", rlimits,
			 "noNewPrivileges", 1);
}

static json_t *mount_json(const char *destination, const char *type, const char *source, json_t *options)
{
	return json_pack("{s:s, s:s, s:s, s:o}", "destination", destination, "type", type, "source", source, "options",
			 options);
}

static json_t *options_json(const char *first, ...)
{
	json_t *options = json_array();
	va_list ap;

	va_start(ap, first);
	for (const char *option = first; option; option = va_arg(ap, const char *))
		json_array_append_new(options, json_string(option));
	va_end(ap);
	return options;
}

/*
 * The file systems of `runc spec` (without /sys/fs/cgroup), plus a private /tmp. The tmpfs of
 * /tmp has no size of its own: its pages count against the container's memory limit. runc 1.1
 * gives a tmpfs the mode of the directory it covers, so /tmp is world-writable only if the root
 * file system's /tmp has mode 1777, as in every distribution.
 */
static void add_system_mounts(json_t *mounts)
{
	json_array_append_new(mounts, mount_json("/proc", "proc", "proc", json_array()));
	json_array_append_new(mounts,
			      mount_json("/dev", "tmpfs", "tmpfs",
					 options_json("nosuid", "strictatime", "mode=755", "size=65536k", NULL)));
	json_array_append_new(mounts, mount_json("/dev/pts", "devpts", "devpts",
						 options_json("nosuid", "noexec", "newinstance", "ptmxmode=0666",
							      "mode=0620", "gid=5", NULL)));
	json_array_append_new(mounts,
			      mount_json("/dev/shm", "tmpfs", "shm",
					 options_json("nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL)));
	json_array_append_new(
		mounts, mount_json("/dev/mqueue", "mqueue", "mqueue", options_json("nosuid", "noexec", "nodev", NULL)));
	json_array_append_new(
		mounts, mount_json("/sys", "sysfs", "sysfs", options_json("nosuid", "noexec", "nodev", "ro", NULL)));
	json_array_append_new(mounts,
			      mount_json("/tmp", "tmpfs", "tmpfs", options_json("nosuid", "nodev", "mode=1777", NULL)));
}

/*
 * NOTE: runc 1.1 makes only the top mount of a read-only recursive bind read-only, so mounts below
 * the source stay writable. The recursive "rro" option needs runc 1.2 and Linux 5.12.
 */
static json_t *bind_mount_json(const struct sandbox_mount *m)
{
	json_t *options = options_json("rbind", "nosuid", "nodev", NULL);
	if (m->read_only)
		json_array_append_new(options, json_string("ro"));
	return mount_json(m->destination, "bind", m->source, options);
}

static json_t *mounts_json(const struct sandbox_spec *spec)
{
	json_t *mounts = json_array();

	add_system_mounts(mounts);
	for (size_t i = 0; i < spec->mount_count; i++)
		json_array_append_new(mounts, bind_mount_json(&spec->mounts[i]));
	return mounts;
}

/*
 * With cgroup v1 swap accounting, the swap value (memory plus swap, in v1's terms) equal to the
 * limit keeps the build from swapping past it. runc writes memory.memsw.limit_in_bytes whenever
 * swap is set and fails if that file is missing, so swap is set only when the host has the file.
 * NOTE: elsewhere (cgroup v2, or no swap accounting) swap is not limited.
 */
static bool host_has_swap_accounting(void)
{
	return access("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", F_OK) == 0;
}

static json_t *resources_json(const struct sandbox_spec *spec)
{
	json_t *resources = json_pack("{s:[{s:b, s:s}]}", "devices", "allow", 0, "access", "rwm");

	if (spec->memory_bytes > 0) {
		json_int_t limit = (json_int_t)spec->memory_bytes;
		json_t *memory = json_pack("{s:I}", "limit", limit);
		if (host_has_swap_accounting())
			json_object_set_new(memory, "swap", json_integer(limit));
		json_object_set_new(resources, "memory", memory);
	}
	return resources;
}

static json_t *linux_json(const struct sandbox_spec *spec)
{
	json_t *spaces = json_array();
	for (size_t i = 0; i < ARRAY_LEN(namespaces); i++)
		json_array_append_new(spaces, json_pack("{s:s}", "type", namespaces[i]));

	return json_pack("{s:o, s:o, s:o, s:o}", "namespaces", spaces, "resources", resources_json(spec), "maskedPaths",
			 string_array(masked_paths, ARRAY_LEN(masked_paths)), "readonlyPaths",
			 string_array(readonly_paths, ARRAY_LEN(readonly_paths)));
}

static int check_spec(const struct sandbox_spec *spec, char **error)
{
	if (!spec->rootfs)
		return set_error(error, "invalid sandbox: no root file system");
	if (!spec->argv || !spec->argv[0])
		return set_error(error, "invalid sandbox: no command");
	for (size_t i = 0; i < spec->mount_count; i++) {
		const struct sandbox_mount *m = &spec->mounts[i];
		if (!m->source || !m->destination || m->destination[0] != '/')
			return set_error(error, "invalid sandbox mount %zu: %s -> %s (absolute destination expected)",
					 i, m->source ? m->source : "(none)",
					 m->destination ? m->destination : "(none)");
	}
	return 0;
}

int sandbox_write_config(const struct sandbox_spec *spec, const char *bundle_dir, char **error)
{
	if (check_spec(spec, error) < 0)
		return -1;

	json_t *config = json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o}", "ociVersion", "1.0.2", "process",
				   process_json(spec), "root", "path", spec->rootfs, "readonly", 0, "hostname",
				   spec->hostname ? spec->hostname : DEFAULT_HOSTNAME, "mounts", mounts_json(spec),
				   "linux", linux_json(spec));
	if (!config)
		return set_error(error, "invalid sandbox: a string in the spec is not valid UTF-8");

	char *path = xasprintf("%s/config.json", bundle_dir);
	int status = 0;
	if (json_dump_file(config, path, JSON_INDENT(2)) < 0)
		status = set_error(error, "cannot write %s: %s", path, strerror(errno));
	free(path);
	json_decref(config);
	return status;
}

/* ---- Registry of running containers ---- */

struct running_container {
	char *id;
	char *runtime;
	atomic_bool *stop; /* set by sandbox_kill_all; valid while the container is registered */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct running_container *registry;
static size_t registry_count, registry_capacity;
static atomic_uint container_serial;

static void register_container(const char *id, const char *runtime, atomic_bool *stop)
{
	pthread_mutex_lock(&registry_lock);
	if (registry_count == registry_capacity) {
		registry_capacity = registry_capacity ? 2 * registry_capacity : 8;
		registry = xreallocarray(registry, registry_capacity, sizeof(*registry));
	}
	registry[registry_count++] = (struct running_container){ xstrdup(id), xstrdup(runtime), stop };
	pthread_mutex_unlock(&registry_lock);
}

static void unregister_container(const char *id)
{
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < registry_count; i++) {
		if (strcmp(registry[i].id, id) != 0)
			continue;
		free(registry[i].id);
		free(registry[i].runtime);
		registry[i] = registry[--registry_count];
		break;
	}
	pthread_mutex_unlock(&registry_lock);
}

/* ---- Processes ---- */

/*
 * Start ARGV (looked up in PATH) with IN as standard input and OUT as standard output and error.
 * The child gets default signal handling and an empty signal mask, whatever obake set for itself.
 */
static int spawn(const char *const *argv, int in, int out, pid_t *pid)
{
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	sigset_t none, all;

	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_adddup2(&actions, in, 0);
	posix_spawn_file_actions_adddup2(&actions, out, 1);
	posix_spawn_file_actions_adddup2(&actions, out, 2);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

	int err = posix_spawnp(pid, argv[0], &actions, &attr, (char *const *)argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&actions);
	return err;
}

static int wait_for(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

/* Run a short runtime command (kill, delete) with no input or output, and return its exit status or -1. */
static int run_quietly(const char *const *argv)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		return -1;

	pid_t pid;
	int status = -1;
	if (spawn(argv, null, null, &pid) == 0 && wait_for(pid, &status) == 0)
		status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	close(null);
	return status;
}

static int kill_container(const char *runtime, const char *id)
{
	const char *argv[] = { runtime, "kill", id, "KILL", NULL };
	return run_quietly(argv);
}

static void delete_container(const char *runtime, const char *id)
{
	const char *argv[] = { runtime, "delete", "--force", id, NULL };
	if (run_quietly(argv) != 0)
		warn("cannot delete container %s: `%s delete --force %s` failed, so run it again by hand", id, runtime,
		     id);
}

/*
 * Each container is killed here once and marked, so that the thread waiting for it keeps killing
 * it: a kill fails while the runtime is still creating the container.
 */
void sandbox_reap_orphans(const char *runtime)
{
	/* Where runc and crun keep the state of root's containers, one directory per container id. */
	char *state = xasprintf("/run/%s", strcmp(runtime, "crun") == 0 ? "crun" : "runc");
	DIR *dir = opendir(state);
	struct dirent *entry;

	free(state);
	if (!dir)
		return;
	while ((entry = readdir(dir)) != NULL) {
		long pid;
		unsigned serial;
		char rest;
		if (sscanf(entry->d_name, "obake-%ld-%u%c", &pid, &serial, &rest) != 2 || pid <= 0)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		kill_container(runtime, entry->d_name);
		delete_container(runtime, entry->d_name);
	}
	closedir(dir);
}

void sandbox_kill_all(void)
{
	pthread_mutex_lock(&registry_lock);
	size_t count = registry_count;
	struct running_container *copy = xcalloc(count ? count : 1, sizeof(*copy));
	for (size_t i = 0; i < count; i++) {
		atomic_store(registry[i].stop, true);
		copy[i] = (struct running_container){ xstrdup(registry[i].id), xstrdup(registry[i].runtime), NULL };
	}
	pthread_mutex_unlock(&registry_lock);

	/* The runtimes run outside the lock, so finishing builds can unregister meanwhile. */
	for (size_t i = 0; i < count; i++) {
		kill_container(copy[i].runtime, copy[i].id);
		free(copy[i].id);
		free(copy[i].runtime);
	}
	free(copy);
}

/* ---- Running a container ---- */

struct container {
	const char *runtime;
	char *id;
	char *runtime_log; /* the runtime's own messages, JSON lines */
	pid_t pid;         /* of `RUNTIME run` */
	int wait_status;
	double start;     /* CLOCK_MONOTONIC seconds when the runtime was started */
	atomic_bool stop; /* sandbox_kill_all was called */
};

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Wait for the runtime to exit, killing the container once TIMEOUT seconds (0: none) have passed
 * or sandbox_kill_all asked for it. The kill is repeated until the runtime exits, because a kill
 * sent before the container exists fails. A runtime that still runs KILL_GIVE_UP_MS after the
 * first kill is killed itself, and the forced delete that follows removes what it left.
 */
static int wait_with_timeout(struct container *c, unsigned timeout, bool *timed_out)
{
	double killing_since = 0, next_kill = 0;

	for (;;) {
		pid_t r = waitpid(c->pid, &c->wait_status, WNOHANG);
		if (r == c->pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;

		double now = now_seconds();
		if (killing_since == 0 && timeout > 0 && now >= c->start + timeout)
			*timed_out = true;
		if (killing_since == 0 && (*timed_out || atomic_load(&c->stop)))
			killing_since = next_kill = now;
		if (killing_since > 0 && now >= next_kill) {
			kill_container(c->runtime, c->id);
			next_kill = now_seconds() + KILL_RETRY_MS / 1000.0;
		}
		if (killing_since > 0 && now >= killing_since + KILL_GIVE_UP_MS / 1000.0)
			kill(c->pid, SIGKILL);
		sleep_ms(POLL_INTERVAL_MS);
	}
}

/* The "msg" of each "error" line the runtime wrote to its log, or NULL if there is none. */
static char *runtime_errors(const char *log_path)
{
	char *data = NULL;
	size_t len;
	if (read_file(log_path, &data, &len) < 0)
		return NULL;

	struct strbuf messages = { 0 };
	char *state = NULL;
	for (char *line = strtok_r(data, "\n", &state); line; line = strtok_r(NULL, "\n", &state)) {
		json_t *entry = json_loads(line, 0, NULL);
		const char *level = json_string_value(json_object_get(entry, "level"));
		const char *msg = json_string_value(json_object_get(entry, "msg"));
		if (level && msg && strcmp(level, "error") == 0)
			strbuf_addf(&messages, "%s%s", messages.len ? "; " : "", msg);
		json_decref(entry);
	}
	free(data);
	return messages.len ? strbuf_detach(&messages) : NULL;
}

/*
 * The runtime exits with the status of the container's first process, or 128 plus the signal that
 * killed it, as shells do. NOTE: so a command that itself exits with 129 to 192 counts as killed.
 */
static void decode_status(int wait_status, struct sandbox_result *result)
{
	if (WIFSIGNALED(wait_status)) {
		result->killed = true;
		result->signal = WTERMSIG(wait_status);
		return;
	}

	int code = WEXITSTATUS(wait_status);
	if (code > 128 && code <= 128 + 64) {
		result->killed = true;
		result->signal = code - 128;
	} else {
		result->exit_code = code;
	}
}

static int open_streams(const struct sandbox_spec *spec, int *in, int *out, char **error)
{
	*in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (*in < 0)
		return set_error(error, "cannot open /dev/null: %s", strerror(errno));
	*out = open(spec->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (*out < 0) {
		int err = errno;
		close(*in);
		return set_error(error, "cannot open log file %s: %s", spec->log_path, strerror(err));
	}
	return 0;
}

static int start_container(const struct sandbox_spec *spec, const char *bundle_dir, struct container *c, char **error)
{
	int in = -1, out = -1;
	if (open_streams(spec, &in, &out, error) < 0)
		return -1;

	unlink(c->runtime_log);
	const char *argv[] = { c->runtime, "--log",    c->runtime_log, "--log-format", "json",
			       "run",      "--bundle", bundle_dir,     c->id,          NULL };
	register_container(c->id, c->runtime, &c->stop);
	c->start = now_seconds();
	int err = spawn(argv, in, out, &c->pid);
	close(in);
	close(out);
	if (err != 0) {
		unregister_container(c->id);
		return set_error(error, "cannot run %s: %s", c->runtime, strerror(err));
	}
	return 0;
}

/* Wait for the container, delete it, and fill RESULT; -1 if the runtime reported that it could not start it. */
static int finish_container(struct container *c, const struct sandbox_spec *spec, struct sandbox_result *result,
			    char **error)
{
	int status = 0;

	if (wait_with_timeout(c, spec->timeout_seconds, &result->timed_out) < 0)
		status = set_error(error, "cannot wait for %s (container %s): %s", c->runtime, c->id, strerror(errno));
	result->seconds = now_seconds() - c->start;
	unregister_container(c->id);
	delete_container(c->runtime, c->id);
	if (status < 0)
		return -1;

	decode_status(c->wait_status, result);
	char *messages = runtime_errors(c->runtime_log);
	/* A container killed while the runtime was still creating it makes the runtime report an error. */
	if (messages && !result->timed_out && !atomic_load(&c->stop)) {
		set_error(error, "%s could not run container %s: %s", c->runtime, c->id, messages);
		status = -1;
	}
	free(messages);
	return status;
}

int sandbox_run(const struct sandbox_spec *spec, const char *bundle_dir, struct sandbox_result *result, char **error)
{
	*result = (struct sandbox_result){ .exit_code = -1 };
	if (!spec->log_path)
		return set_error(error, "invalid sandbox: no log file");
	if (sandbox_write_config(spec, bundle_dir, error) < 0)
		return -1;

	struct container c = {
		.runtime = spec->runtime ? spec->runtime : DEFAULT_RUNTIME,
		.id = xasprintf("obake-%ld-%u", (long)getpid(), atomic_fetch_add(&container_serial, 1)),
		.runtime_log = xasprintf("%s/runtime.log", bundle_dir),
	};
	int status = start_container(spec, bundle_dir, &c, error);
	if (status == 0)
		status = finish_container(&c, spec, result, error);
	free(c.id);
	free(c.runtime_log);
	return status;
}
