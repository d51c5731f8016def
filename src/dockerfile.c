#include "dockerfile.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_context.h"
#include "util.h"

/* Layers the shared setup adds to the base image: apt, the user and helper script, the repository, opam init. */
#define SETUP_LAYERS 4
/* Layers assumed for the base image itself. */
#define BASE_LAYERS 1
/* Where the build log lives in the image, and the helper that appends to it. */
#define BUILD_LOG "/home/opam/build.log"
#define INSTALL_HELPER "/usr/local/bin/obake-install"

/*
 * The helper every install step runs: install one package unless one of its dependencies failed,
 * and append the outcome to the build log. It always exits 0, so a failure never stops the image
 * build and the log reaches the results stage.
 */
static const char *const install_helper[] = {
	"#!/bin/sh",
	"# obake-install PACKAGE [DEPENDENCY...]: install PACKAGE with opam unless a dependency failed,",
	"# then append SUCCESS, FAILED or SKIPPED with the package to the build log. Always exits 0.",
	"log=/home/opam/build.log", /* BUILD_LOG */
	"pkg=$1",
	"shift",
	"for dep in \"$@\"; do",
	"  if grep -qx \"FAILED $dep\" \"$log\" || grep -qx \"SKIPPED $dep\" \"$log\"; then",
	"    echo \"=== $pkg: not built because $dep failed\" >>\"$log\"",
	"    echo \"SKIPPED $pkg\" >>\"$log\"",
	"    exit 0",
	"  fi",
	"done",
	"echo \"=== $pkg\" >>\"$log\"",
	"if opam install -y \"$pkg\" >>\"$log\" 2>&1; then",
	"  echo \"SUCCESS $pkg\" >>\"$log\"",
	"else",
	"  echo \"FAILED $pkg\" >>\"$log\"",
	"fi",
	"exit 0",
};

/* Quote S for sh within single quotes. */
static void add_shell_quoted(struct strbuf *out, const char *s)
{
	strbuf_addc(out, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			strbuf_adds(out, "'\\''");
		else
			strbuf_addc(out, *s);
	}
	strbuf_addc(out, '\'');
}

/* Whether the build context is obake's folder with the archives (--archive-mirror), not the repository. */
static bool has_archives(const struct options *opts)
{
	return opts->archive_mirror_count > 0;
}

/* Layers of the shared setup: SETUP_LAYERS, and one more for the archives' COPY. */
static uint32_t setup_layers(const struct options *opts)
{
	return SETUP_LAYERS + (has_archives(opts) ? 1 : 0);
}

/* The setup every target shares, after the FROM line. */
static void add_setup(struct strbuf *out, const struct options *opts)
{
	strbuf_adds(out, "ENV DEBIAN_FRONTEND=noninteractive\n");
	/* Skipped when the base image already has opam, so a prepared image builds without network. */
	strbuf_adds(out, "RUN command -v opam >/dev/null 2>&1 || { apt-get update && "
			 "apt-get install -y --no-install-recommends build-essential ca-certificates curl git patch "
			 "rsync sudo unzip bzip2 xz-utils");
	if (strcmp(opts->opam_source, "distribution") == 0) {
		strbuf_adds(out, " opam && rm -rf /var/lib/apt/lists/*; }\n");
	} else {
		const char *url =
			opts->opam_url
				? opts->opam_url
				: "https://github.com/ocaml/opam/releases/download/2.4.1/opam-2.4.1-x86_64-linux";
		strbuf_adds(out, " && rm -rf /var/lib/apt/lists/* && curl -fsSL ");
		add_shell_quoted(out, url);
		strbuf_adds(out, " -o /usr/bin/opam && chmod 755 /usr/bin/opam; }\n");
	}

	strbuf_adds(out,
		    "RUN (id -u opam >/dev/null 2>&1 || useradd --create-home --uid 1000 --shell /bin/bash opam) && "
		    "mkdir -p /etc/sudoers.d && echo 'opam ALL=(ALL:ALL) NOPASSWD:ALL' >/etc/sudoers.d/opam && printf "
		    "'%s\\n'");
	for (size_t i = 0; i < ARRAY_LEN(install_helper); i++) {
		strbuf_addc(out, ' ');
		add_shell_quoted(out, install_helper[i]);
	}
	strbuf_adds(out, " >" INSTALL_HELPER " && chmod 755 " INSTALL_HELPER "\n");
	strbuf_adds(out, "USER opam\n"
			 "WORKDIR /home/opam\n"
			 "ENV OPAMYES=1 OPAMCONFIRMLEVEL=unsafe-yes OPAMERRLOGLEN=0 OPAMCOLOR=never OPAMDOWNLOADJOBS=1 "
			 "OPAMPRECISETRACKING=1\n");
	/* With --archive-mirror the context is obake's folder, holding the repository and the archives. */
	if (has_archives(opts))
		strbuf_adds(out, "COPY --chown=1000:1000 " BUILD_CONTEXT_REPOSITORY " /home/opam/opam-repository\n");
	else
		strbuf_adds(out, "COPY --chown=1000:1000 . /home/opam/opam-repository\n");
	strbuf_adds(out, "RUN opam init --bare --disable-sandboxing --no-setup default /home/opam/opam-repository && "
			 "opam switch create default --empty && echo '# obake build log' >" BUILD_LOG "\n");
	/*
	 * opam 2.1 takes a source from ~/.opam/download-cache/<algorithm>/<xx>/<hash> without
	 * network, but rejects archive-mirrors in `opam option --global`, so the archives go there.
	 * The copy follows opam init, so that opam init starts from an empty ~/.opam as it does without
	 * archives, and a change in the archives leaves the init layer cached.
	 */
	if (has_archives(opts))
		strbuf_adds(out, "COPY --chown=1000:1000 " BUILD_CONTEXT_DOWNLOAD_CACHE
				 " /home/opam/.opam/download-cache\n");
}

/* FNV-1a over a package's name.version: content-defined chunk boundaries. */
static uint64_t hash_package(const struct package *p)
{
	uint64_t h = 1469598103934665603ULL;

	for (const char *s = p->name; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	h = (h ^ '.') * 1099511628211ULL;
	for (const char *s = p->version; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* A target's installs in order, and where its RUN steps start. */
struct layout {
	uint32_t *order;    /* package indices */
	uint32_t *plan_row; /* row of order[i] in the plan, for its dependencies */
	uint32_t count;
	uint32_t *step_start; /* step k installs order[step_start[k] .. step_start[k + 1]) */
	uint32_t steps;
};

/* A binary heap of plan rows, smallest rank first. */
struct heap {
	uint32_t *items;
	uint32_t count;
	const uint32_t *key; /* rank of each row */
};

static void heap_push(struct heap *h, uint32_t row)
{
	uint32_t i = h->count++;

	h->items[i] = row;
	while (i > 0 && h->key[h->items[(i - 1) / 2]] > h->key[h->items[i]]) {
		uint32_t parent = (i - 1) / 2, tmp = h->items[parent];
		h->items[parent] = h->items[i];
		h->items[i] = tmp;
		i = parent;
	}
}

static uint32_t heap_pop(struct heap *h)
{
	uint32_t top = h->items[0], i = 0;

	h->items[0] = h->items[--h->count];
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->count && h->key[h->items[l]] < h->key[h->items[m]])
			m = l;
		if (r < h->count && h->key[h->items[r]] < h->key[h->items[m]])
			m = r;
		if (m == i)
			break;
		uint32_t tmp = h->items[m];
		h->items[m] = h->items[i];
		h->items[i] = tmp;
		i = m;
	}
	return top;
}

/*
 * Order a target's installs: repeatedly take, among packages whose dependencies are installed,
 * the one most targets share (RANK is lower for more shared packages). Because the ranking is
 * global, targets that share their most common dependencies get the same first steps. ROW_OF is
 * scratch indexed by package, all NO_ROW on entry and on return.
 */
#define NO_ROW UINT32_MAX
static void order_installs(const struct plan *plan, const uint32_t *rank, uint32_t *row_of, struct layout *l)
{
	uint32_t n = plan->count;
	uint32_t *missing = xcalloc(n + 1, sizeof(uint32_t));
	uint32_t *key = xcalloc(n + 1, sizeof(uint32_t));
	uint32_t *user_start = xcalloc(n + 2, sizeof(uint32_t));
	uint32_t *users = xcalloc(plan->dep_start[n] + 1, sizeof(uint32_t));
	struct heap heap = { xcalloc(n + 1, sizeof(uint32_t)), 0, key };

	for (uint32_t i = 0; i < n; i++) {
		row_of[plan->order[i]] = i;
		key[i] = rank[plan->order[i]];
	}
	/* Reverse edges: for each row, the rows that depend on it. */
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t d = plan->dep_start[i]; d < plan->dep_start[i + 1]; d++)
			user_start[row_of[plan->deps[d]] + 1]++;
	for (uint32_t i = 0; i < n; i++)
		user_start[i + 1] += user_start[i];
	uint32_t *fill = xcalloc(n + 1, sizeof(uint32_t));
	for (uint32_t i = 0; i < n; i++) {
		missing[i] = plan->dep_start[i + 1] - plan->dep_start[i];
		for (uint32_t d = plan->dep_start[i]; d < plan->dep_start[i + 1]; d++) {
			uint32_t dep = row_of[plan->deps[d]];
			users[user_start[dep] + fill[dep]++] = i;
		}
		if (missing[i] == 0)
			heap_push(&heap, i);
	}

	l->order = xcalloc(n + 1, sizeof(uint32_t));
	l->plan_row = xcalloc(n + 1, sizeof(uint32_t));
	l->count = 0;
	while (heap.count > 0) {
		uint32_t row = heap_pop(&heap);
		l->plan_row[l->count] = row;
		l->order[l->count++] = plan->order[row];
		for (uint32_t u = user_start[row]; u < user_start[row + 1]; u++)
			if (--missing[users[u]] == 0)
				heap_push(&heap, users[u]);
	}

	for (uint32_t i = 0; i < n; i++)
		row_of[plan->order[i]] = NO_ROW;
	free(missing);
	free(key);
	free(user_start);
	free(users);
	free(fill);
	free(heap.items);
}

/*
 * Cut the installs into at most BUDGET steps. One package per step when it fits; otherwise a step
 * ends after each package whose hash is a multiple of K, with K the smallest power of two that
 * fits, so equal prefixes are cut alike in every target.
 */
static void group_steps(const struct repo_index *idx, struct layout *l, uint32_t budget, bool no_group)
{
	l->step_start = xcalloc(l->count + 2, sizeof(uint32_t));
	if (no_group || l->count <= budget) {
		for (uint32_t i = 0; i <= l->count; i++)
			l->step_start[i] = i;
		l->steps = l->count;
		return;
	}
	for (uint64_t k = 2; k <= (1u << 20); k *= 2) {
		uint32_t steps = 0;
		l->step_start[0] = 0;
		for (uint32_t i = 0; i < l->count; i++) {
			bool boundary = hash_package(&idx->packages[l->order[i]]) % k == 0 || i + 1 == l->count;
			if (boundary)
				l->step_start[++steps] = i + 1;
		}
		if (steps <= budget) {
			l->steps = steps;
			return;
		}
	}
	/* Not reached with sane budgets: fall back to even steps. */
	l->steps = budget;
	for (uint32_t k = 0; k <= budget; k++)
		l->step_start[k] = (uint32_t)((uint64_t)l->count * k / budget);
}

static void layout_release(struct layout *l)
{
	free(l->order);
	free(l->plan_row);
	free(l->step_start);
	memset(l, 0, sizeof(*l));
}

/* One RUN line for step K. */
static void add_step(struct strbuf *out, const struct repo_index *idx, const struct plan *plan, const struct layout *l,
		     uint32_t k)
{
	strbuf_adds(out, "RUN ");
	for (uint32_t i = l->step_start[k]; i < l->step_start[k + 1]; i++) {
		const struct package *p = &idx->packages[l->order[i]];
		uint32_t row = l->plan_row[i];
		if (i > l->step_start[k])
			strbuf_adds(out, " && \\\n    ");
		strbuf_addf(out, "obake-install %s.%s", p->name, p->version);
		for (uint32_t d = plan->dep_start[row]; d < plan->dep_start[row + 1]; d++) {
			const struct package *q = &idx->packages[plan->deps[d]];
			strbuf_addf(out, " %s.%s", q->name, q->version);
		}
	}
	strbuf_addc(out, '\n');
}

static void add_install_steps(struct strbuf *out, const struct repo_index *idx, const struct plan *plan,
			      const struct layout *l)
{
	for (uint32_t k = 0; k < l->steps; k++)
		add_step(out, idx, plan, l, k);
}

/* A set of 64-bit fingerprints, to count distinct step chains. */
struct fingerprint_set {
	uint64_t *slots;
	uint64_t count, capacity;
};

static bool fingerprint_add(struct fingerprint_set *s, uint64_t h)
{
	if (h == 0)
		h = 1;
	if ((s->count + 1) * 2 > s->capacity) {
		uint64_t old = s->capacity;
		uint64_t *slots = s->slots;
		s->capacity = old ? old * 2 : 4096;
		s->slots = xcalloc(s->capacity, sizeof(uint64_t));
		s->count = 0;
		for (uint64_t i = 0; i < old; i++)
			if (slots[i])
				fingerprint_add(s, slots[i]);
		free(slots);
	}
	for (uint64_t i = h & (s->capacity - 1);; i = (i + 1) & (s->capacity - 1)) {
		if (s->slots[i] == h)
			return false;
		if (!s->slots[i]) {
			s->slots[i] = h;
			s->count++;
			return true;
		}
	}
}

static uint64_t hash_bytes(uint64_t h, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

/* Count each step once per distinct chain of steps before it, as BuildKit's cache keys them. */
static void count_distinct_steps(struct fingerprint_set *set, const char *steps)
{
	uint64_t h = 1469598103934665603ULL;

	for (const char *line = steps; *line;) {
		const char *end = strstr(line, "\nRUN ");
		size_t len = end ? (size_t)(end - line) + 1 : strlen(line);
		h = hash_bytes(h, line, len);
		fingerprint_add(set, h);
		line += len;
	}
}

static char *target_name(const struct repo_index *idx, uint32_t package)
{
	return xasprintf("%s.%s", idx->packages[package].name, idx->packages[package].version);
}

/*
 * Stage and bake target names allow only letters, digits, '-' and '_': '.' becomes '_', '_'
 * doubles, capitals become "_c" with c lowercase, and anything else "_xHH", so names stay unique.
 */
static char *stage_name(const struct repo_index *idx, uint32_t package)
{
	char *name = target_name(idx, package);
	struct strbuf sb = { 0 };

	strbuf_adds(&sb, "t-");
	for (const char *s = name; *s; s++) {
		char c = *s;
		if (c == '.')
			strbuf_addc(&sb, '_');
		else if (c == '_')
			strbuf_adds(&sb, "__");
		else if (c >= 'A' && c <= 'Z')
			strbuf_addf(&sb, "_%c", c - 'A' + 'a');
		else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')
			strbuf_addc(&sb, c);
		else
			strbuf_addf(&sb, "_x%02x", (unsigned char)c);
	}
	free(name);
	return strbuf_detach(&sb);
}

/* Write CONTENT to DIR/NAME through a temporary file and a rename. */
static int write_file(const char *dir, const char *name, const char *content, size_t len, mode_t mode)
{
	char *path = xasprintf("%s/%s", dir, name);
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "w");
	int status = 0;

	if (!f || fwrite(content, 1, len, f) != len || fflush(f) != 0 || fchmod(fileno(f), mode) != 0) {
		fprintf(stderr, "%s: cannot write %s: %s\n", program_name, path, strerror(errno));
		status = -1;
	}
	if (f && fclose(f) != 0 && status == 0) {
		fprintf(stderr, "%s: cannot write %s: %s\n", program_name, path, strerror(errno));
		status = -1;
	}
	if (status == 0 && rename(tmp, path) != 0) {
		fprintf(stderr, "%s: cannot write %s: %s\n", program_name, path, strerror(errno));
		status = -1;
	}
	if (status != 0)
		unlink(tmp);
	free(path);
	free(tmp);
	return status;
}

/* Rank packages by how many targets' plans hold them (most shared first), then in opam's order. */
static uint32_t *rank_packages(const struct repo_index *idx, const struct outcome *outcomes, uint32_t count)
{
	uint32_t *uses = xcalloc(idx->package_count + 1, sizeof(uint32_t));
	uint32_t *order = xcalloc(idx->package_count + 1, sizeof(uint32_t));
	uint32_t *rank = xcalloc(idx->package_count + 1, sizeof(uint32_t));

	for (uint32_t t = 0; t < count; t++)
		for (uint32_t i = 0; outcomes[t].solved && i < outcomes[t].plan.count; i++)
			uses[outcomes[t].plan.order[i]]++;
	for (uint32_t p = 0; p < idx->package_count; p++)
		order[p] = p;

	/* Insertion into buckets by use count keeps this linear; ties stay in the index's name order. */
	uint32_t max_uses = 0;
	for (uint32_t p = 0; p < idx->package_count; p++)
		if (uses[p] > max_uses)
			max_uses = uses[p];
	uint32_t next = 0;
	for (uint32_t u = max_uses + 1; u-- > 0;)
		for (uint32_t p = 0; p < idx->package_count; p++)
			if (uses[p] == u)
				rank[p] = next++;
	free(uses);
	free(order);
	return rank;
}

/* Per-target Dockerfiles; fills each target's steps text for the combined parts. */
static int write_target_files(const struct options *opts, const struct repo_index *idx, const char *context,
			      const struct outcome *outcomes, uint32_t count, char **steps,
			      struct dockerfile_report *report)
{
	const char *dir = opts->output_dir ? opts->output_dir : ".";
	uint32_t *rank = rank_packages(idx, outcomes, count);
	uint32_t *row_of = xcalloc(idx->package_count + 1, sizeof(uint32_t));
	uint32_t setup_depth = setup_layers(opts);
	uint32_t budget = opts->max_layers > setup_depth + BASE_LAYERS + 1
				  ? opts->max_layers - setup_depth - BASE_LAYERS - 1
				  : 1;
	struct fingerprint_set chains = { 0 };
	struct strbuf setup = { 0 };
	int status = 0;

	add_setup(&setup, opts);
	for (uint32_t p = 0; p < idx->package_count; p++)
		row_of[p] = NO_ROW;

	for (uint32_t t = 0; t < count && status == 0; t++) {
		const struct outcome *o = &outcomes[t];
		if (!o->solved) {
			report->skipped++;
			continue;
		}

		struct layout l = { 0 };
		order_installs(&o->plan, rank, row_of, &l);
		group_steps(idx, &l, budget, opts->no_group);
		struct strbuf text = { 0 };
		add_install_steps(&text, idx, &o->plan, &l);
		steps[t] = strbuf_detach(&text);

		report->targets++;
		report->grouped += l.steps < l.count;
		report->package_steps += l.count;
		report->emitted_steps += l.steps;
		if (setup_depth + l.steps > report->max_depth)
			report->max_depth = setup_depth + l.steps;
		count_distinct_steps(&chains, steps[t]);

		char *name = target_name(idx, o->target);
		struct strbuf file = { 0 };
		strbuf_addf(&file, "# %s: built by obake's install order, %u packages in %u steps.\n", name, l.count,
			    l.steps);
		if (has_archives(opts))
			strbuf_addf(
				&file,
				"# Build with the context folder obake wrote: docker build -f %s.dockerfile --target "
				"results --output type=local,dest=results %s\n",
				name, context);
		else
			strbuf_addf(&file,
				    "# Build with the repository as context: docker build -f %s.dockerfile --target "
				    "results --output type=local,dest=results REPOSITORY\n",
				    name);
		strbuf_addf(&file, "FROM %s AS build\n%s%s", opts->base_image, strbuf_str(&setup), steps[t]);
		strbuf_addf(&file, "\nFROM scratch AS results\nCOPY --from=build " BUILD_LOG " /%s\n", name);
		char *file_name = xasprintf("%s.dockerfile", name);
		status = write_file(dir, file_name, file.data, file.len, 0644);
		free(file_name);
		free(name);
		strbuf_release(&file);
		layout_release(&l);
	}
	report->distinct_steps = chains.count;

	free(chains.slots);
	strbuf_release(&setup);
	free(rank);
	free(row_of);
	return status;
}

/*
 * Combined Dockerfiles: one stage per target on a shared setup stage, and a results stage copying
 * every target's log. A part ends before it would pass the size limit, or before its results
 * stage would pass the layer limit.
 */
static int write_parts(const struct options *opts, const struct repo_index *idx, const struct outcome *outcomes,
		       uint32_t count, char **steps, uint32_t *part_of, struct dockerfile_report *report)
{
	const char *dir = opts->output_dir ? opts->output_dir : ".";
	struct strbuf header = { 0 }, body = { 0 }, results = { 0 };
	uint32_t in_part = 0, max_targets = opts->max_layers > 2 ? opts->max_layers - 2 : 1;
	int status = 0;

	strbuf_addf(&header, "FROM %s AS setup\n", opts->base_image);
	add_setup(&header, opts);

	for (uint32_t t = 0; t <= count && status == 0; t++) {
		struct strbuf stage = { 0 }, copy = { 0 };
		bool last = t == count;
		if (!last && outcomes[t].solved) {
			char *name = target_name(idx, outcomes[t].target);
			char *stage_id = stage_name(idx, outcomes[t].target);
			strbuf_addf(&stage, "\n# %s\nFROM setup AS %s\n%s", name, stage_id, steps[t]);
			strbuf_addf(&copy, "COPY --from=%s " BUILD_LOG " /results/%s\n", stage_id, name);
			free(name);
			free(stage_id);
		}

		/* What the part would weigh with this target: its comment line, the stages and the results stage. */
		size_t size = 160 + header.len + body.len + results.len + stage.len + copy.len +
			      strlen("\nFROM scratch AS results\n");
		bool full = in_part > 0 && (size > opts->max_file_size || in_part >= max_targets);
		if ((full || last) && in_part > 0) {
			struct strbuf file = { 0 };
			strbuf_addf(&file,
				    "# Part %u of the combined Dockerfile: %u targets. The results stage holds each "
				    "target's build log in /results.\n",
				    report->parts + 1, in_part);
			strbuf_addf(&file, "%s%s\nFROM scratch AS results\n%s", strbuf_str(&header), strbuf_str(&body),
				    strbuf_str(&results));
			char *file_name = xasprintf("Dockerfile.%03u", report->parts + 1);
			if (file.len > opts->max_file_size)
				fprintf(stderr,
					"%s: warning: %s is %zu bytes, over --max-file-size, because one target "
					"with the shared setup is that large\n",
					program_name, file_name, file.len);
			status = write_file(dir, file_name, file.data, file.len, 0644);
			free(file_name);
			strbuf_release(&file);
			report->parts++;
			strbuf_reset(&body);
			strbuf_reset(&results);
			in_part = 0;
		}
		if (stage.len > 0) {
			strbuf_add(&body, stage.data, stage.len);
			strbuf_add(&results, copy.data, copy.len);
			part_of[t] = report->parts + 1;
			in_part++;
		}
		strbuf_release(&stage);
		strbuf_release(&copy);
	}
	strbuf_release(&header);
	strbuf_release(&body);
	strbuf_release(&results);
	return status;
}

static void add_hcl_string(struct strbuf *out, const char *s)
{
	strbuf_addc(out, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			strbuf_addc(out, '\\');
		if (*s == '$' && s[1] == '{')
			strbuf_addc(out, '$'); /* $${ is a literal ${ in HCL */
		strbuf_addc(out, *s);
	}
	strbuf_addc(out, '"');
}

/* docker-bake files: one target per package, groups batch0, batch1, ... of --batch-size targets. */
static int write_bake(const struct options *opts, const struct repo_index *idx, const char *context,
		      const char *abs_dir, const struct outcome *outcomes, uint32_t count, uint32_t *batch_of,
		      struct dockerfile_report *report)
{
	const char *dir = opts->output_dir ? opts->output_dir : ".";
	struct strbuf file = { 0 }, batch = { 0 }, members = { 0 };
	uint32_t in_batch = 0, files = 0;
	int status = 0;
	char **file_texts = NULL;

	for (uint32_t t = 0; t <= count && status == 0; t++) {
		bool last = t == count;
		if (!last && outcomes[t].solved) {
			char *name = target_name(idx, outcomes[t].target);
			char *stage_id = stage_name(idx, outcomes[t].target);
			strbuf_addf(&batch, "target \"%s\" {\n  context = ", stage_id);
			add_hcl_string(&batch, context);
			char *dockerfile = xasprintf("%s/%s.dockerfile", abs_dir, name);
			char *dest = xasprintf("type=local,dest=%s/results/%s.d", abs_dir, name);
			strbuf_adds(&batch, "\n  dockerfile = ");
			add_hcl_string(&batch, dockerfile);
			strbuf_adds(&batch, "\n  target = \"results\"\n  output = [");
			add_hcl_string(&batch, dest);
			strbuf_adds(&batch, "]\n}\n");
			strbuf_addf(&members, "%s\"%s\"", in_batch ? ", " : "", stage_id);
			batch_of[t] = report->batches;
			in_batch++;
			free(dockerfile);
			free(dest);
			free(name);
			free(stage_id);
		}
		if ((in_batch == opts->batch_size || last) && in_batch > 0) {
			strbuf_addf(&batch, "group \"batch%u\" {\n  targets = [%s]\n}\n", report->batches,
				    strbuf_str(&members));
			report->batches++;
			/* A bake file holds whole batches; start another before it would pass the size limit. */
			if (file.len > 0 && file.len + batch.len > opts->max_file_size) {
				file_texts = xreallocarray(file_texts, files + 1, sizeof(char *));
				file_texts[files++] = strbuf_detach(&file);
			}
			strbuf_add(&file, batch.data, batch.len);
			strbuf_reset(&batch);
			strbuf_reset(&members);
			in_batch = 0;
		}
	}
	if (file.len > 0) {
		file_texts = xreallocarray(file_texts, files + 1, sizeof(char *));
		file_texts[files++] = strbuf_detach(&file);
	}

	for (uint32_t f = 0; f < files && status == 0; f++) {
		char *name = files == 1 ? xstrdup("docker-bake.hcl") : xasprintf("docker-bake.%03u.hcl", f + 1);
		status = write_file(dir, name, file_texts[f], strlen(file_texts[f]), 0644);
		free(name);
	}
	for (uint32_t f = 0; f < files; f++)
		free(file_texts[f]);
	free(file_texts);
	report->bake_files = files;
	strbuf_release(&file);
	strbuf_release(&batch);
	strbuf_release(&members);
	return status;
}

/* The driver script: bake batches (or Dockerfile parts without buildx), resumable, then a summary. */
static const char *const build_all_script =
	"#!/bin/sh\n"
	"# Build every target obake generated, with BuildKit: one bake batch after another, or, where\n"
	"# 'docker buildx' is missing, one combined Dockerfile part after another. A failed batch does not\n"
	"# stop the run; batches and parts finished by an earlier run are skipped. Each target's build log\n"
	"# ends up in results/NAME.VERSION, and results/summary.txt gives each target's status.\n"
	"#\n"
	"#   DOCKER              the docker client to run (default: docker)\n"
	"#   OBAKE_BUILD_MODE    bake or parts (default: bake when 'docker buildx version' works)\n"
	"#   OBAKE_BUILD_FLAGS   flags for 'docker build' in parts mode (default: --network=none)\n"
	"set -u\n"
	"here=$(cd \"$(dirname \"$0\")\" && pwd)\n"
	"context=@CONTEXT@\n"
	"docker=${DOCKER:-docker}\n"
	"results=$here/results\n"
	"mkdir -p \"$results\"\n"
	"mode=${OBAKE_BUILD_MODE:-}\n"
	"if [ -z \"$mode\" ]; then\n"
	"\tif $docker buildx version >/dev/null 2>&1; then mode=bake; else mode=parts; fi\n"
	"fi\n"
	"broken=0\n"
	"if [ \"$mode\" = bake ]; then\n"
	"\tfor file in \"$here\"/docker-bake*.hcl; do\n"
	"\t\tfor batch in $(sed -n 's/^group \"\\(batch[0-9]*\\)\".*/\\1/p' \"$file\"); do\n"
	"\t\t\tif [ -e \"$results/.done-$batch\" ]; then echo \"$batch: built by an earlier run\"; continue; fi\n"
	"\t\t\techo \"$batch: building\"\n"
	"\t\t\tif $docker buildx bake -f \"$file\" \"$batch\"; then\n"
	"\t\t\t\ttouch \"$results/.done-$batch\"\n"
	"\t\t\telse\n"
	"\t\t\t\techo \"$batch: bake failed; going on with the next batch\" >&2\n"
	"\t\t\t\tbroken=$((broken + 1))\n"
	"\t\t\tfi\n"
	"\t\tdone\n"
	"\tdone\n"
	"\tfor dir in \"$results\"/*.d; do\n"
	"\t\t[ -d \"$dir\" ] || continue\n"
	"\t\tmv \"$dir\"/* \"$results\"/ 2>/dev/null\n"
	"\t\trmdir \"$dir\" 2>/dev/null\n"
	"\tdone\n"
	"else\n"
	"\tfor part in \"$here\"/Dockerfile.[0-9]*; do\n"
	"\t\tname=$(basename \"$part\")\n"
	"\t\tif [ -e \"$results/.done-$name\" ]; then echo \"$name: built by an earlier run\"; continue; fi\n"
	"\t\techo \"$name: building\"\n"
	"\t\tout=$results/.out-$name\n"
	"\t\t# shellcheck disable=SC2086\n"
	"\t\tif DOCKER_BUILDKIT=1 $docker build ${OBAKE_BUILD_FLAGS---network=none} -f \"$part\" --target results \\\n"
	"\t\t\t--output \"type=local,dest=$out\" \"$context\"; then\n"
	"\t\t\tmv \"$out\"/results/* \"$results\"/ 2>/dev/null\n"
	"\t\t\trm -rf \"$out\"\n"
	"\t\t\ttouch \"$results/.done-$name\"\n"
	"\t\telse\n"
	"\t\t\techo \"$name: build failed; going on with the next part\" >&2\n"
	"\t\t\tbroken=$((broken + 1))\n"
	"\t\tfi\n"
	"\tdone\n"
	"fi\n"
	"\n"
	"success=0 failure=0 dependency_failed=0 missing=0\n"
	": >\"$results/summary.txt\"\n"
	"while read -r target; do\n"
	"\tlog=$results/$target\n"
	"\tif [ ! -f \"$log\" ]; then status=missing\n"
	"\telif grep -qx \"SUCCESS $target\" \"$log\"; then status=success\n"
	"\telif grep -qx \"FAILED $target\" \"$log\"; then status=failure\n"
	"\telif grep -qx \"SKIPPED $target\" \"$log\"; then status=dependency_failed\n"
	"\telse status=missing\n"
	"\tfi\n"
	"\techo \"$target $status\" >>\"$results/summary.txt\"\n"
	"\teval \"$status=\\$(($status + 1))\"\n"
	"done <\"$here/targets.txt\"\n"
	"echo \"$success success, $failure failure, $dependency_failed dependency_failed, $missing without a log; "
	"\"\\\n"
	"\t\"$broken batches or parts failed to build; details in $results/summary.txt\"\n"
	"[ \"$broken\" -eq 0 ] && [ \"$missing\" -eq 0 ]\n";

static int write_driver(const char *dir, const char *context, const struct repo_index *idx,
			const struct outcome *outcomes, uint32_t count)
{
	struct strbuf script = { 0 }, quoted = { 0 }, targets = { 0 };

	add_shell_quoted(&quoted, context);
	const char *at = strstr(build_all_script, "@CONTEXT@");
	strbuf_add(&script, build_all_script, (size_t)(at - build_all_script));
	strbuf_adds(&script, strbuf_str(&quoted));
	strbuf_adds(&script, at + strlen("@CONTEXT@"));
	for (uint32_t t = 0; t < count; t++) {
		if (!outcomes[t].solved)
			continue;
		char *name = target_name(idx, outcomes[t].target);
		strbuf_addf(&targets, "%s\n", name);
		free(name);
	}

	int status = write_file(dir, "build-all.sh", script.data, script.len, 0755);
	if (status == 0)
		status = write_file(dir, "targets.txt", strbuf_str(&targets), targets.len, 0644);
	strbuf_release(&script);
	strbuf_release(&quoted);
	strbuf_release(&targets);
	return status;
}

/* index.json: every target, with its status and where it went. */
static int write_index(const char *dir, const struct repo_index *idx, const struct outcome *outcomes, uint32_t count,
		       const uint32_t *part_of, const uint32_t *batch_of)
{
	json_t *list = json_array();

	for (uint32_t t = 0; t < count; t++) {
		char *name = target_name(idx, outcomes[t].target);
		json_t *o = json_pack("{s:s, s:s}", "package", name, "status",
				      outcomes[t].solved ? "solution" : "no_solution");
		if (outcomes[t].solved) {
			char *file = xasprintf("%s.dockerfile", name);
			char *part = xasprintf("Dockerfile.%03u", part_of[t]);
			json_object_set_new(o, "dockerfile", json_string(file));
			json_object_set_new(o, "part", json_string(part));
			json_object_set_new(o, "batch", json_sprintf("batch%u", batch_of[t]));
			free(file);
			free(part);
		}
		/* Explanations stay out: they would make this file outgrow the size limit; `obake solve` prints them. */
		json_array_append_new(list, o);
		free(name);
	}
	char *text = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	int status = write_file(dir, "index.json", text, strlen(text), 0644);
	free(text);
	json_decref(list);
	return status;
}

int dockerfile_write_all(const struct options *opts, const struct repo_index *idx, const char *context,
			 const struct outcome *outcomes, uint32_t count, struct dockerfile_report *report)
{
	const char *dir = opts->output_dir ? opts->output_dir : ".";
	char **steps = xcalloc(count + 1, sizeof(char *));
	uint32_t *part_of = xcalloc(count + 1, sizeof(uint32_t));
	uint32_t *batch_of = xcalloc(count + 1, sizeof(uint32_t));
	char *abs_dir = realpath(dir, NULL);
	int status = -1;

	memset(report, 0, sizeof(*report));
	if (!abs_dir) {
		fprintf(stderr, "%s: cannot resolve output folder %s: %s\n", program_name, dir, strerror(errno));
		goto out;
	}
	if (write_target_files(opts, idx, context, outcomes, count, steps, report) == 0 &&
	    write_parts(opts, idx, outcomes, count, steps, part_of, report) == 0 &&
	    write_bake(opts, idx, context, abs_dir, outcomes, count, batch_of, report) == 0 &&
	    write_driver(dir, context, idx, outcomes, count) == 0 &&
	    write_index(dir, idx, outcomes, count, part_of, batch_of) == 0)
		status = 0;

out:
	for (uint32_t t = 0; t < count; t++)
		free(steps[t]);
	free(steps);
	free(part_of);
	free(batch_of);
	free(abs_dir);
	return status;
}
