#include "build.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "depexts.h"
#include "fetch.h"
#include "files.h"
#include "intern.h"
#include "overlay.h"
#include "sandbox.h"
#include "util.h"

enum node_state {
	NODE_WAITING,
	NODE_READY,
	NODE_RUNNING,
	NODE_BUILT,
	NODE_CACHED,
	NODE_FAILED,
	NODE_DEPENDENCY_FAILED,
	NODE_CANCELLED,
	NODE_UNAVAILABLE /* its sources could not be fetched: not built, and not recorded as failed */
};

/* One layer to have: a package with one exact dependency closure. */
struct node {
	char key[LAYER_KEY_SIZE];
	uint32_t package;
	uint32_t *deps; /* direct dependency nodes */
	uint32_t dep_count;
	uint32_t *users; /* nodes that depend on this one */
	uint32_t user_count, user_capacity;
	uint32_t missing; /* dependencies not yet published as successes */
	enum node_state state;
	uint32_t failed_dependency; /* the failed node that stopped this one */
	uint32_t outcome;           /* the target whose solution first needed this layer */
};

struct engine {
	const struct options *opts;
	const struct repo_index *idx;
	const struct store *store;
	const struct base *base;
	const char *cache_dir;
	const struct outcome *outcomes;
	struct node *nodes;
	uint32_t node_count, node_capacity;
	struct intern_table keys;  /* key -> node index */
	struct name_set installed; /* the base's system packages */
	bool check_depexts;        /* false when the base has no dpkg to ask */

	pthread_mutex_t lock;
	pthread_cond_t changed;
	uint32_t *ready; /* nodes ready to build */
	uint32_t ready_count;
	unsigned running;
	struct build_counts counts;
};

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
	fetch_request_stop();
}

const char *target_status_name(enum target_status s)
{
	static const char *const names[] = { "success", "failure", "dependency_failed", "no_solution", "cancelled" };
	return names[s];
}

/* The settings every layer key includes: anything that can change what a build does. */
static char *settings_string(const struct options *opts)
{
	static const char *const vars[] = { "arch",
					    "os",
					    "os-family",
					    "os-distribution",
					    "os-version",
					    "opam-version",
					    "sys-ocaml-version",
					    "sys-ocaml-arch",
					    "sys-ocaml-cc",
					    "sys-ocaml-libc" };
	struct strbuf sb = { 0 };

	strbuf_addf(&sb, "ocaml=%s\nwith-test=%d\nwith-doc=%d\n", opts->ocaml_version, opts->with_test, opts->with_doc);
	for (size_t i = 0; i < ARRAY_LEN(vars); i++) {
		struct fvalue v;
		if (variables_get(&opts->globals, vars[i], &v))
			strbuf_addf(&sb, "%s=%s\n", vars[i],
				    v.kind == FVALUE_STRING ? v.string
				    : v.boolean             ? "true"
							    : "false");
	}
	return strbuf_detach(&sb);
}

static uint32_t add_node(struct engine *e, const char *key, uint32_t package, bool *created)
{
	uint32_t id = intern(&e->keys, key);

	*created = id == e->node_count;
	if (!*created)
		return id;
	if (e->node_count == e->node_capacity) {
		e->node_capacity = e->node_capacity ? e->node_capacity * 2 : 256;
		e->nodes = xreallocarray(e->nodes, e->node_capacity, sizeof(*e->nodes));
	}
	struct node *n = &e->nodes[e->node_count++];
	memset(n, 0, sizeof(*n));
	memcpy(n->key, key, LAYER_KEY_SIZE);
	n->package = package;
	n->failed_dependency = UINT32_MAX;
	return id;
}

/* Turn each target's plan into layers; returns the node of each plan row through ROW_NODE. */
static int add_plan(struct engine *e, uint32_t outcome, const char *settings, uint32_t *row_node, char **error)
{
	const struct plan *plan = &e->outcomes[outcome].plan;

	for (uint32_t i = 0; i < plan->count; i++) {
		const struct package *p = &e->idx->packages[plan->order[i]];
		uint32_t ndeps = plan->dep_start[i + 1] - plan->dep_start[i];
		const char **dep_keys = xcalloc(ndeps + 1, sizeof(char *));
		uint32_t *deps = xcalloc(ndeps + 1, sizeof(uint32_t));
		for (uint32_t d = 0; d < ndeps; d++) {
			uint32_t dep_package = plan->deps[plan->dep_start[i] + d];
			/* The plan lists dependencies before their users, so their rows are known already. */
			for (uint32_t j = 0; j < i; j++)
				if (plan->order[j] == dep_package)
					deps[d] = row_node[j];
			dep_keys[d] = e->nodes[deps[d]].key;
		}

		char key[LAYER_KEY_SIZE];
		int status = store_layer_key(p->dir, dep_keys, ndeps, e->base->id, settings, key, error);
		free(dep_keys);
		if (status != 0) {
			free(deps);
			return -1;
		}
		bool created;
		row_node[i] = add_node(e, key, plan->order[i], &created);
		if (!created) {
			free(deps);
			continue;
		}
		struct node *n = &e->nodes[row_node[i]];
		n->outcome = outcome;
		n->deps = deps;
		n->dep_count = ndeps;
		for (uint32_t d = 0; d < ndeps; d++) {
			struct node *dep = &e->nodes[deps[d]];
			if (dep->user_count == dep->user_capacity) {
				dep->user_capacity = dep->user_capacity ? dep->user_capacity * 2 : 4;
				dep->users = xreallocarray(dep->users, dep->user_capacity, sizeof(uint32_t));
			}
			dep->users[dep->user_count++] = row_node[i];
		}
	}
	return 0;
}

/* Every node NODE depends on, directly or not, dependencies before users (an install order). */
static void collect_closure(const struct engine *e, uint32_t node, uint8_t *seen, uint32_t *out, uint32_t *count)
{
	const struct node *n = &e->nodes[node];

	for (uint32_t d = 0; d < n->dep_count; d++) {
		if (seen[n->deps[d]])
			continue;
		seen[n->deps[d]] = 1;
		collect_closure(e, n->deps[d], seen, out, count);
		out[(*count)++] = n->deps[d];
	}
}

static char *package_string(const struct engine *e, uint32_t node)
{
	const struct package *p = &e->idx->packages[e->nodes[node].package];
	return xasprintf("%s.%s", p->name, p->version);
}

/*
 * Copy the opam file and files/ of every package of the solution that needed NODE into a
 * repository holding just them. The whole solution, not only the closure: opam must also find the
 * packages a `post` dependency names (ocaml-system needs ocaml), which the layer's closure leaves out.
 */
static int write_mini_repository(const struct engine *e, uint32_t node, const char *repo, char **error)
{
	const struct solve_result *solution = &e->outcomes[e->nodes[node].outcome].result;
	char *repo_file = xasprintf("%s/repo", repo);
	int status = make_dirs(repo, error);

	if (status == 0) {
		FILE *f = fopen(repo_file, "w");
		if (!f || fputs("opam-version: \"2.0\"\n", f) < 0 || fclose(f) != 0)
			status = set_error(error, "cannot write %s: %s", repo_file, strerror(errno));
	}
	for (uint32_t i = 0; i < solution->package_count && status == 0; i++) {
		const struct package *p = &e->idx->packages[solution->packages[i]];
		const char *base = strrchr(p->dir, '/');
		char *name_dir = xasprintf("%s/packages/%s", repo, p->name);
		char *copy = xasprintf("%s/%s", name_dir, base ? base + 1 : p->dir);

		status = make_dirs(name_dir, error);
		if (status == 0)
			status = copy_tree(p->dir, copy, error);
		free(name_dir);
		free(copy);
	}
	free(repo_file);
	return status;
}

/* opam's record of what the switch holds: exactly the closure, so opam has one thing left to do. */
static int write_switch_state(const struct engine *e, const char *merged, const uint32_t *closure, uint32_t count,
			      char **error)
{
	char *dir = xasprintf("%s/home/opam/.opam/default/.opam-switch", merged);
	char *path = xasprintf("%s/switch-state", dir);
	char *mkdir_error = NULL;
	if (make_dirs(dir, &mkdir_error) != 0) {
		warn("%s", mkdir_error);
		free(mkdir_error);
	}
	/* Directories made here for a base without a switch must still belong to the build's user. */
	char *switch_dir = xasprintf("%s/home/opam/.opam/default", merged);
	if (chown(switch_dir, 1000, 1000) != 0 || chown(dir, 1000, 1000) != 0)
		warn("cannot give %s to uid 1000", dir);
	free(switch_dir);
	FILE *f = fopen(path, "w");
	int status = 0;

	if (!f) {
		*error = xasprintf("cannot write %s: %s", path, strerror(errno));
		status = -1;
	} else {
		fputs("opam-version: \"2.0\"\ninstalled: [", f);
		for (uint32_t i = 0; i < count; i++) {
			char *s = package_string(e, closure[i]);
			fprintf(f, "%s\"%s\"", i ? " " : "", s);
			free(s);
		}
		fputs("]\n", f);
		fclose(f);
		if (chown(path, 1000, 1000) != 0) {
			*error = xasprintf("cannot give %s to uid 1000: %s", path, strerror(errno));
			status = -1;
		}
	}
	free(dir);
	free(path);
	return status;
}

/*
 * The system packages NODE's depexts name that the base lacks, comma-separated, or NULL. opam
 * stops on those before it builds anything. The builds run with --no-depexts, because they
 * cannot install anything without a network, so the engine makes the same check itself.
 */
static char *missing_depexts(const struct engine *e, uint32_t node)
{
	struct name_set wanted = { 0 };
	struct strbuf missing = { 0 };

	if (!e->check_depexts)
		return NULL;
	depexts_add(&wanted, &e->idx->packages[e->nodes[node].package], &e->opts->globals);
	for (size_t i = 0; i < name_set_count(&wanted); i++)
		if (!depexts_installed(&e->installed, name_set_at(&wanted, i)))
			strbuf_addf(&missing, "%s%s", missing.len ? ", " : "", name_set_at(&wanted, i));
	name_set_release(&wanted);
	return missing.len ? strbuf_detach(&missing) : NULL;
}

/* Record in LOG why NODE is not built: the base lacks system packages it needs. Returns exit code 1. */
static int record_missing_depexts(const struct engine *e, uint32_t node, const char *log, const char *missing)
{
	char *target = package_string(e, node);
	FILE *f = fopen(log, "a");

	if (f) {
		fprintf(f,
			"# obake: %s needs system packages that the base does not have: %s\n"
			"# obake: opam stops here too; add them to the base with --depexts or --extra-packages\n",
			target, missing);
		fclose(f);
	}
	free(target);
	return 1;
}

/*
 * Remove from a finished build's files what no later build reads. opam keeps the unpacked
 * sources of each installed package (for dune, 19 of its layer's 32 MB), and a cache of the
 * build's own repository that every build deletes first anyway.
 */
static void drop_opam_leftovers(const char *upper)
{
	char *sources = xasprintf("%s/home/opam/.opam/default/.opam-switch/sources", upper);
	char *repo = xasprintf("%s/home/opam/.opam/repo", upper);
	DIR *dir = opendir(repo);
	struct dirent *entry;

	remove_tree_or_warn(sources);
	while (dir && (entry = readdir(dir)) != NULL) {
		if (strncmp(entry->d_name, "state-", 6) != 0)
			continue;
		char *cache = xasprintf("%s/%s", repo, entry->d_name);
		remove_tree_or_warn(cache);
		free(cache);
	}
	if (dir)
		closedir(dir);
	free(sources);
	free(repo);
}

/* Build one layer in TMP (from store_begin); returns the command's exit code, or -1 when the sandbox failed. */
static int build_layer(struct engine *e, uint32_t node, const char *tmp, double *seconds, char **error)
{
	const struct options *opts = e->opts;
	uint32_t *closure = xcalloc(e->node_count + 1, sizeof(uint32_t)), closure_count = 0;
	uint8_t *seen = xcalloc(e->node_count + 1, 1);
	char **lowers = NULL;
	int *held_locks = NULL;
	char *log = xasprintf("%s/build.log", tmp), *repo = xasprintf("%s/repo", tmp);
	char *bundle = xasprintf("%s/bundle", tmp);
	struct overlay o = { 0 };
	int exit_code = -1;

	char *missing = missing_depexts(e, node);
	if (missing) {
		exit_code = record_missing_depexts(e, node, log, missing);
		free(missing);
		goto out;
	}

	collect_closure(e, node, seen, closure, &closure_count);
	/* Every lower layer stays in the store until this build is done with it. */
	held_locks = xcalloc(closure_count + 1, sizeof(int));
	for (uint32_t i = 0; i < closure_count; i++)
		held_locks[i] = store_hold(e->store, e->nodes[closure[i]].key);
	/* Lower layers, topmost first: the last installed dependency, down to the base. */
	lowers = xcalloc(closure_count + 2, sizeof(char *));
	for (uint32_t i = 0; i < closure_count; i++)
		lowers[i] = store_layer_fs(e->store, e->nodes[closure[closure_count - 1 - i]].key);
	lowers[closure_count] = xstrdup(e->base->rootfs);

	if (write_mini_repository(e, node, repo, error) != 0 ||
	    overlay_mount(&o, tmp, lowers, closure_count + 1, error) != 0)
		goto out;
	if (write_switch_state(e, o.merged, closure, closure_count, error) != 0)
		goto unmount;

	char *target = package_string(e, node);
	/*
	 * OBAKE_BUILD_COMMAND replaces opam for benchmarks of the engine itself: a shell command run in
	 * the container, with $OBAKE_PACKAGE set to name.version.
	 */
	const char *replacement = getenv("OBAKE_BUILD_COMMAND");
	char *command = replacement
				? xasprintf("OBAKE_PACKAGE=%s; %s", target, replacement)
				: xasprintf("rm -f \"$HOME\"/.opam/repo/state-*.cache; opam install -y --no-depexts %s",
					    target);
	const char *argv[] = { "/bin/sh", "-c", command, NULL };
	const char *env[] = { "HOME=/home/opam",
			      "USER=opam",
			      "PATH=/usr/local/bin:/usr/bin:/bin",
			      "OPAMYES=1",
			      "OPAMCOLOR=never",
			      "OPAMERRLOGLEN=0",
			      "OPAMDOWNLOADJOBS=1",
			      "OPAMPRECISETRACKING=1",
			      "OPAMCONFIRMLEVEL=unsafe-yes",
			      NULL };
	struct sandbox_mount mounts[] = {
		{ repo, "/home/opam/.opam/repo/default", true },
		{ e->cache_dir, "/home/opam/.opam/download-cache", true },
	};
	struct sandbox_spec spec = { opts->runtime,
				     o.merged,
				     argv,
				     env,
				     "/home/opam",
				     1000,
				     1000,
				     mounts,
				     ARRAY_LEN(mounts),
				     opts->timeout_seconds,
				     opts->memory_bytes,
				     log,
				     "obake" };
	struct sandbox_result result;
	mkdir(bundle, 0755);
	FILE *f = fopen(log, "a");
	if (f) {
		fprintf(f, "# obake: opam install %s on %u dependency layers", target, closure_count);
		if (o.merged_lowers > 0)
			fprintf(f, ", the deepest %u of them merged into one (the limit is %u lower layers)",
				o.merged_lowers, o.max_lower);
		fputs("\n", f);
		fclose(f);
	}
	if (sandbox_run(&spec, bundle, &result, error) == 0) {
		exit_code = result.exit_code;
		*seconds = result.seconds;
		/* A killed build is the package's failure too, recorded with the reason in its log. */
		if ((result.timed_out || result.killed) && !interrupted) {
			exit_code = 128 + (result.signal ? result.signal : 9);
			if ((f = fopen(log, "a"))) {
				if (result.timed_out)
					fprintf(f, "# obake: killed after the %u-second time limit (--timeout)\n",
						opts->timeout_seconds);
				else
					fprintf(f,
						"# obake: killed by signal %d; the memory limit is %llu bytes "
						"(--memory)\n",
						result.signal, opts->memory_bytes);
				fclose(f);
			}
		}
	}
	free(command);
	free(target);

unmount:
	if (overlay_unmount(&o, false, error) != 0) {
		exit_code = -1;
	} else if (o.upper) {
		/* The overlay's upper directory holds exactly what the build added: it becomes the layer. */
		char *fs = xasprintf("%s/fs", tmp);
		drop_opam_leftovers(o.upper);
		if (rename(o.upper, fs) != 0) {
			*error = xasprintf("cannot move %s to %s: %s", o.upper, fs, strerror(errno));
			exit_code = -1;
		}
		free(fs);
		/* What is left of the overlay's scratch directory is not part of the layer. */
		if (o.scratch)
			remove_tree_or_warn(o.scratch);
	}
out:
	for (uint32_t i = 0; held_locks && i < closure_count; i++)
		if (held_locks[i] >= 0)
			close(held_locks[i]);
	free(held_locks);
	for (uint32_t i = 0; lowers && i <= closure_count; i++)
		free(lowers[i]);
	free(lowers);
	free(closure);
	free(seen);
	free(log);
	free(repo);
	free(bundle);
	free(o.merged);
	free(o.upper);
	free(o.work);
	free(o.scratch);
	return exit_code;
}

/* Mark every layer that depends on FAILED (directly or not) as failed because of it. */
static void propagate_failure(struct engine *e, uint32_t failed, uint32_t root_cause)
{
	struct node *n = &e->nodes[failed];

	for (uint32_t u = 0; u < n->user_count; u++) {
		struct node *user = &e->nodes[n->users[u]];
		if (user->state != NODE_WAITING && user->state != NODE_READY)
			continue;
		user->state = NODE_DEPENDENCY_FAILED;
		user->failed_dependency = root_cause;
		e->counts.dependency_failed++;
		propagate_failure(e, n->users[u], root_cause);
	}
}

/* A node is done (under the lock): release its users or fail them. */
static void finish_node(struct engine *e, uint32_t node, bool success)
{
	struct node *n = &e->nodes[node];

	if (!success) {
		propagate_failure(e, node, node);
		return;
	}
	for (uint32_t u = 0; u < n->user_count; u++) {
		struct node *user = &e->nodes[n->users[u]];
		if (user->state == NODE_WAITING && --user->missing == 0) {
			user->state = NODE_READY;
			e->ready[e->ready_count++] = n->users[u];
		}
	}
}

/* Take the layer's lock, check again whether another process published it, and build it if not. */
static bool produce_layer(struct engine *e, uint32_t node, bool *built)
{
	struct node *n = &e->nodes[node];
	char *error = NULL, *tmp = NULL;
	struct layer_info info = { 0 };
	bool success = false;

	*built = false;
	int lock = store_begin(e->store, n->key, &tmp, &error);
	if (lock < 0) {
		warn("%s", error);
		free(error);
		return false;
	}
	if (store_read_layer(e->store, n->key, &info, &error) == 0 && info.status != LAYER_MISSING) {
		success = info.status == LAYER_SUCCESS;
		store_abandon(e->store, tmp, lock);
		layer_info_release(&info);
		free(tmp);
		return success;
	}
	free(error);
	error = NULL;

	double seconds = 0;
	int exit_code = build_layer(e, node, tmp, &seconds, &error);
	if (exit_code < 0 || interrupted) {
		if (error)
			warn("%s", error);
		store_abandon(e->store, tmp, lock);
		free(error);
		free(tmp);
		return false;
	}

	/* Only fs/ and build.log make the layer; the build's repository and bundle go. */
	char *repo = xasprintf("%s/repo", tmp), *bundle = xasprintf("%s/bundle", tmp);
	remove_tree_or_warn(repo);
	remove_tree_or_warn(bundle);
	free(repo);
	free(bundle);

	info.status = exit_code == 0 ? LAYER_SUCCESS : LAYER_FAILURE;
	info.package = package_string(e, node);
	info.exit_code = exit_code;
	info.build_seconds = seconds;
	info.dependency_count = n->dep_count;
	info.dependencies = xcalloc(n->dep_count + 1, sizeof(char *));
	for (uint32_t d = 0; d < n->dep_count; d++)
		info.dependencies[d] = xstrdup(e->nodes[n->deps[d]].key);
	if (store_publish(e->store, n->key, tmp, &info, lock, &error) != 0) {
		warn("%s", error);
		free(error);
	} else {
		success = info.status == LAYER_SUCCESS;
		*built = true;
	}
	layer_info_release(&info);
	free(tmp);
	return success;
}

static void *worker(void *arg)
{
	struct engine *e = arg;

	pthread_mutex_lock(&e->lock);
	for (;;) {
		while (e->ready_count == 0 && e->running > 0 && !interrupted)
			pthread_cond_wait(&e->changed, &e->lock);
		if (interrupted || e->ready_count == 0)
			break;
		uint32_t node = e->ready[--e->ready_count];
		e->nodes[node].state = NODE_RUNNING;
		e->running++;
		pthread_mutex_unlock(&e->lock);

		bool built;
		bool success = produce_layer(e, node, &built);

		pthread_mutex_lock(&e->lock);
		e->running--;
		struct node *n = &e->nodes[node];
		if (interrupted && !built) {
			n->state = NODE_CANCELLED;
		} else {
			n->state = success ? (built ? NODE_BUILT : NODE_CACHED) : NODE_FAILED;
			if (success)
				built ? e->counts.built++ : e->counts.cached++;
			else
				e->counts.failed++;
			finish_node(e, node, success);
		}
		pthread_cond_broadcast(&e->changed);
	}
	pthread_cond_broadcast(&e->changed);
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

static void print_progress(struct engine *e, double started, bool final)
{
	if (e->opts->verbosity < 0 || (!final && !isatty(STDERR_FILENO)))
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	const struct build_counts *c = &e->counts;
	unsigned done = c->built + c->cached + c->failed + c->dependency_failed;
	fprintf(stderr, "%s[built %u, cached %u, failed %u, dependency failed %u, running %u, remaining %u, %.0f s]%s",
		isatty(STDERR_FILENO) ? "\r" : "", c->built, c->cached, c->failed, c->dependency_failed, e->running,
		c->total - done - e->running, (double)now.tv_sec - started, final ? "\n" : "");
}

/* Find layers already published; with --retry-failed, drop the failed ones first. */
static void check_store(struct engine *e)
{
	for (uint32_t i = 0; i < e->node_count; i++) {
		struct node *n = &e->nodes[i];
		struct layer_info info;
		char *error = NULL;
		if (store_read_layer(e->store, n->key, &info, &error) != 0) {
			free(error);
			continue;
		}
		if (info.status == LAYER_FAILURE && e->opts->retry_failed && !e->opts->dry_run) {
			if (store_remove_layer(e->store, n->key, &error) != 0) {
				warn("%s", error);
				free(error);
			}
		} else if (info.status == LAYER_SUCCESS) {
			n->state = NODE_CACHED;
			store_touch(e->store, n->key);
		} else if (info.status == LAYER_FAILURE) {
			n->state = NODE_FAILED;
		}
		layer_info_release(&info);
	}
}

/*
 * Tell PREPARE which packages have a layer to build, so that only their sources are fetched, and
 * set aside the layers whose sources it could not fetch.
 */
static void prepare_layers(struct engine *e, build_prepare_fn *prepare, void *context)
{
	uint8_t *needed = xcalloc(e->idx->package_count + 1, 1);
	uint8_t *unavailable = xcalloc(e->idx->package_count + 1, 1);

	for (uint32_t i = 0; i < e->node_count; i++)
		if (e->nodes[i].state != NODE_CACHED && e->nodes[i].state != NODE_FAILED)
			needed[e->nodes[i].package] = 1;
	prepare(needed, unavailable, context);

	/* After Ctrl-C the fetch stopped on purpose: those layers are cancelled, not unavailable. */
	for (uint32_t i = 0; i < e->node_count && !interrupted; i++)
		if (unavailable[e->nodes[i].package] && e->nodes[i].state == NODE_WAITING)
			e->nodes[i].state = NODE_UNAVAILABLE;
	free(needed);
	free(unavailable);
}

/*
 * A layer found in the store is usable only if every layer below it is too: its builds need them
 * all as lower layers. When one was removed by hand (or lost), the layers above it wait for its
 * rebuild. Their keys still match, so they are then taken from the store, not rebuilt.
 */
static void demote_incomplete(struct engine *e)
{
	bool changed = true;

	while (changed) {
		changed = false;
		for (uint32_t i = 0; i < e->node_count; i++) {
			struct node *n = &e->nodes[i];
			if (n->state != NODE_CACHED)
				continue;
			for (uint32_t d = 0; d < n->dep_count; d++) {
				if (e->nodes[n->deps[d]].state != NODE_CACHED) {
					n->state = NODE_WAITING;
					changed = true;
					break;
				}
			}
		}
	}
}

static void schedule(struct engine *e)
{
	e->ready = xcalloc(e->node_count + 1, sizeof(uint32_t));
	e->counts.total = e->node_count;
	demote_incomplete(e);
	for (uint32_t i = 0; i < e->node_count; i++) {
		struct node *n = &e->nodes[i];
		if (n->state == NODE_CACHED) {
			e->counts.cached++;
			continue;
		}
		if (n->state == NODE_FAILED || n->state == NODE_UNAVAILABLE) {
			e->counts.failed++;
			continue;
		}
		n->missing = 0;
		for (uint32_t d = 0; d < n->dep_count; d++)
			n->missing += e->nodes[n->deps[d]].state != NODE_CACHED;
	}
	/* Failures found in the store propagate before anything runs. */
	for (uint32_t i = 0; i < e->node_count; i++)
		if (e->nodes[i].state == NODE_FAILED || e->nodes[i].state == NODE_UNAVAILABLE)
			propagate_failure(e, i, i);
	for (uint32_t i = 0; i < e->node_count; i++) {
		struct node *n = &e->nodes[i];
		if (n->state == NODE_WAITING && n->missing == 0) {
			n->state = NODE_READY;
			e->ready[e->ready_count++] = i;
		}
	}
}

/* Run the builds of the schedule with -j workers while the main thread reports progress. */
static void run_schedule(struct engine *e)
{
	const struct options *opts = e->opts;

	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->changed, NULL);
	unsigned jobs = opts->jobs ? opts->jobs : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	pthread_t *threads = xcalloc(jobs, sizeof(pthread_t));
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (unsigned j = 0; j < jobs; j++)
		pthread_create(&threads[j], NULL, worker, e);

	/* Ctrl-C stops new builds and kills running ones. */
	pthread_mutex_lock(&e->lock);
	while (e->ready_count > 0 || e->running > 0) {
		struct timespec deadline;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_nsec += 500000000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&e->changed, &e->lock, &deadline);
		if (interrupted) {
			sandbox_kill_all();
			pthread_cond_broadcast(&e->changed);
			break;
		}
		print_progress(e, (double)start.tv_sec, false);
	}
	pthread_mutex_unlock(&e->lock);
	for (unsigned j = 0; j < jobs; j++)
		pthread_join(threads[j], NULL);
	print_progress(e, (double)start.tv_sec, true);
	free(threads);
}

static enum target_status target_status_of(const struct node *n)
{
	switch (n->state) {
	case NODE_BUILT:
	case NODE_CACHED: return TARGET_SUCCESS;
	case NODE_FAILED:
	case NODE_UNAVAILABLE: return TARGET_FAILURE;
	case NODE_DEPENDENCY_FAILED: return TARGET_DEPENDENCY_FAILED;
	default: return TARGET_CANCELLED;
	}
}

int build_run(const struct options *opts, const struct repo_index *idx, const struct store *store,
	      const struct base *base, const char *cache_dir, const struct outcome *outcomes, uint32_t count,
	      build_prepare_fn *prepare, void *context, struct target_result *results, struct build_counts *counts)
{
	struct engine e = {
		.opts = opts, .idx = idx, .store = store, .base = base, .cache_dir = cache_dir, .outcomes = outcomes
	};
	char *settings = settings_string(opts);
	uint32_t *target_node = xcalloc(count + 1, sizeof(uint32_t));
	int status = 0;

	e.check_depexts = depexts_load_installed(&e.installed, base->rootfs);
	/* Each build holds a lock file per lower layer, up to 500 of them, and -j builds run at once. */
	struct rlimit files;
	if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
		files.rlim_cur = files.rlim_max;
		setrlimit(RLIMIT_NOFILE, &files);
	}

	/* Step 1: the layers of every target, shared by key. */
	char **target_error = xcalloc(count + 1, sizeof(char *));
	for (uint32_t t = 0; t < count; t++) {
		target_node[t] = UINT32_MAX;
		if (!outcomes[t].solved)
			continue;
		uint32_t *row_node = xcalloc(outcomes[t].plan.count + 1, sizeof(uint32_t));
		/* A package whose files cannot be read stops its targets only; the others go on. */
		if (add_plan(&e, t, settings, row_node, &target_error[t]) != 0) {
			warn("%s; this target is not built", target_error[t]);
			free(row_node);
			continue;
		}
		for (uint32_t i = 0; i < outcomes[t].plan.count; i++)
			if (outcomes[t].plan.order[i] == outcomes[t].target)
				target_node[t] = row_node[i];
		free(row_node);
	}

	/* Step 2: what the store has, the sources, then the builds, up to -j at once. */
	struct sigaction sa = { 0 }, old_int, old_term;
	sa.sa_handler = on_interrupt;
	if (!opts->dry_run) {
		/* From here on Ctrl-C stops the fetch, then the builds, and the run ends cleanly. */
		sigaction(SIGINT, &sa, &old_int);
		sigaction(SIGTERM, &sa, &old_term);
	}
	if (status == 0) {
		check_store(&e);
		if (!opts->dry_run && prepare)
			prepare_layers(&e, prepare, context);
		schedule(&e);
	}
	if (status == 0 && !opts->dry_run && !interrupted)
		run_schedule(&e);
	if (!opts->dry_run) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
	}
	if (interrupted) {
		fprintf(stderr, "%s: interrupted; published layers are kept and the next run goes on from them\n",
			program_name);
		status = 1;
	}

	/* Step 3: each target's outcome. */
	for (uint32_t t = 0; t < count; t++) {
		struct target_result *r = &results[t];
		memset(r, 0, sizeof(*r));
		if (target_error[t]) {
			r->status = TARGET_FAILURE;
			r->error = target_error[t];
			continue;
		}
		if (!outcomes[t].solved || target_node[t] == UINT32_MAX) {
			r->status = TARGET_NO_SOLUTION;
			continue;
		}
		const struct node *n = &e.nodes[target_node[t]];
		memcpy(r->key, n->key, LAYER_KEY_SIZE);
		r->status = opts->dry_run ? (n->state == NODE_CACHED              ? TARGET_SUCCESS
					     : n->state == NODE_FAILED            ? TARGET_FAILURE
					     : n->state == NODE_DEPENDENCY_FAILED ? TARGET_DEPENDENCY_FAILED
										  : TARGET_CANCELLED)
					  : target_status_of(n);
		char *layer = store_layer_path(store, n->key);
		r->log = xasprintf("%s/build.log", layer);
		free(layer);
		if (r->status == TARGET_DEPENDENCY_FAILED && n->failed_dependency != UINT32_MAX)
			r->failed_dependency = package_string(&e, n->failed_dependency);
		if (n->state == NODE_UNAVAILABLE) {
			free(r->log);
			r->log = NULL;
		}
		if (n->state == NODE_UNAVAILABLE)
			r->error = xstrdup(
				"its sources could not be fetched (the reason is printed above); nothing was "
				"recorded, so the next run tries again");
	}

	*counts = e.counts;
	for (uint32_t i = 0; i < e.node_count; i++) {
		free(e.nodes[i].deps);
		free(e.nodes[i].users);
	}
	free(e.nodes);
	free(e.ready);
	intern_release(&e.keys);
	name_set_release(&e.installed);
	free(target_node);
	free(target_error);
	free(settings);
	return status;
}
