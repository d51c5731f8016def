/*
 * Running one build in an OCI runtime container (runc by default, crun as an option): the
 * container is described as data (struct sandbox_spec), written as an OCI config.json, and run
 * with a time limit. The build runs as uid 1000 with no network (a new, empty network namespace),
 * a private /tmp, a memory limit, and only the mounts the spec lists.
 *
 * Two things depend on the root file system: runc 1.1 gives the /tmp tmpfs the mode of the directory
 * below it, so /tmp must be mode 1777 there; and runc creates missing bind-mount destinations inside
 * the root file system, which on an overlay land in the new layer, so they should exist in the base.
 */
#ifndef OBAKE_SANDBOX_H
#define OBAKE_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct sandbox_mount {
	const char *source;      /* host path */
	const char *destination; /* path inside the container */
	bool read_only;
};

struct sandbox_spec {
	const char *runtime;     /* "runc" (default when NULL) or "crun", looked up in PATH */
	const char *rootfs;      /* the assembled root file system (an overlay mount) */
	const char *const *argv; /* command to run, NULL-terminated */
	const char *const *env;  /* "NAME=value" strings, NULL-terminated */
	const char *cwd;         /* working directory inside the container */
	uid_t uid;               /* 1000 for builds */
	gid_t gid;
	const struct sandbox_mount *mounts; /* extra bind mounts, in order */
	size_t mount_count;
	unsigned timeout_seconds;        /* 0: no limit */
	unsigned long long memory_bytes; /* 0: no limit */
	const char *log_path;            /* stdout and stderr of the command are appended here */
	const char *hostname;
};

struct sandbox_result {
	int exit_code;  /* the command's exit status, or -1 */
	bool timed_out; /* killed because the time limit passed */
	bool killed;    /* killed by a signal (SIGKILL from the memory limit, say) */
	int signal;
	double seconds; /* wall time */
};

/*
 * Run SPEC in a new container whose bundle lives in BUNDLE_DIR (created by the caller, removed by
 * it afterwards). Returns 0 when the runtime ran (whatever the command's exit status, see RESULT),
 * or -1 with a message in ERROR (caller frees) when the container could not be started.
 */
int sandbox_run(const struct sandbox_spec *spec, const char *bundle_dir, struct sandbox_result *result, char **error);

/* Write the OCI config.json for SPEC into BUNDLE_DIR (exposed for tests). */
int sandbox_write_config(const struct sandbox_spec *spec, const char *bundle_dir, char **error);

/*
 * Kill and delete the containers that an obake process which no longer exists (killed with
 * SIGKILL, say) left running under RUNTIME: nothing else would stop them, and they hold their
 * layers' overlay mounts.
 */
void sandbox_reap_orphans(const char *runtime);

/* Kill every container this process started (for Ctrl-C); safe to call from a signal-free context. */
void sandbox_kill_all(void);

#endif
