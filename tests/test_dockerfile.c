/*
 * `obake dockerfile` on the real 2026 snapshot: every generated file within the size limit, every
 * image within the layer limit, and every solvable package covered exactly once by the combined
 * parts and by the bake files. Runs the obake binary named by $OBAKE.
 */
#include "harness.h"

#include <dirent.h>
#include <jansson.h>
#include <sys/stat.h>

#include "fixtures.h"

static char *snapshot;
static const char *obake;

/* Names of solvable targets, from `obake solve --all`. */
static char **solvable;
static size_t solvable_count;

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_solvable(void)
{
	char command[8192];
	snprintf(command, sizeof(command), "'%s' solve -q -r '%s' --all", obake, snapshot);
	FILE *p = popen(command, "r");
	char *line = NULL;
	size_t capacity = 0;

	while (p && getline(&line, &capacity, p) > 0) {
		json_t *o = json_loads(line, 0, NULL);
		const char *status = json_string_value(json_object_get(o, "status"));
		if (status && strcmp(status, "solution") == 0) {
			solvable = realloc(solvable, (solvable_count + 1) * sizeof(*solvable));
			solvable[solvable_count++] = strdup(json_string_value(json_object_get(o, "package")));
		}
		json_decref(o);
	}
	free(line);
	if (p)
		pclose(p);
	qsort(solvable, solvable_count, sizeof(*solvable), compare_strings);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	struct stat st;

	if (!f || fstat(fileno(f), &st) != 0) {
		if (f)
			fclose(f);
		return NULL;
	}
	char *text = malloc((size_t)st.st_size + 1);
	size_t n = fread(text, 1, (size_t)st.st_size, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

/* Count how often each solvable target is named by lines starting with PREFIX across FILES matching PATTERN. */
struct coverage {
	unsigned *counts;
	unsigned unknown;
};

static void count_target(struct coverage *c, const char *name, size_t len)
{
	char buf[1024];

	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	memcpy(buf, name, len);
	buf[len] = '\0';
	char *key = buf;
	char **found = bsearch(&key, solvable, solvable_count, sizeof(*solvable), compare_strings);
	if (found)
		c->counts[found - solvable]++;
	else
		c->unknown++;
}

/* Layers of one stage: RUN, COPY and ADD each add one. */
static unsigned stage_layers(const char *stage, const char *end)
{
	unsigned layers = 0;

	for (const char *line = stage; line && line < end; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (!strncmp(line, "RUN ", 4) || !strncmp(line, "COPY ", 5) || !strncmp(line, "ADD ", 4))
			layers++;
		if (!*line)
			break;
	}
	return layers;
}

/* The deepest stage of a Dockerfile, counting a stage built FROM another stage on top of it. */
static unsigned deepest_stage(const char *text)
{
	unsigned deepest = 0, setup = 0;

	for (const char *from = strstr(text, "FROM "); from; from = strstr(from + 1, "\nFROM ")) {
		const char *start = *from == '\n' ? from + 1 : from;
		const char *next = strstr(start + 1, "\nFROM ");
		const char *end = next ? next : start + strlen(start);
		unsigned layers = stage_layers(start, end);
		if (!strncmp(start, "FROM setup ", 11))
			layers += setup;
		if (strstr(start, " AS setup\n") && strstr(start, " AS setup\n") < end)
			setup = layers;
		if (layers > deepest)
			deepest = layers;
	}
	return deepest;
}

/* Generate into a fresh folder with the given extra options and check every limit. */
static void check_generation(const char *options, unsigned long max_size, unsigned max_layers)
{
	if (!snapshot || !obake)
		SKIP("needs the 2026 snapshot and $OBAKE");
	if (!solvable)
		load_solvable();
	CHECK(solvable_count > 3000);

	char dir[4096], command[16384];
	snprintf(dir, sizeof(dir), "%s/dockerfile-%u", getenv("OBAKE_TEST_TMP"), max_layers);
	snprintf(command, sizeof(command), "rm -rf '%s' && '%s' dockerfile -q -r '%s' --all -o '%s' %s", dir, obake,
		 snapshot, dir, options);
	CHECK_INT_EQ(system(command), 0);

	struct coverage parts = { calloc(solvable_count, sizeof(unsigned)), 0 };
	struct coverage bake = { calloc(solvable_count, sizeof(unsigned)), 0 };
	struct coverage files = { calloc(solvable_count, sizeof(unsigned)), 0 };
	unsigned oversize = 0, too_deep = 0, part_count = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[8192];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		struct stat st;
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		size_t len = strlen(de->d_name);
		bool per_target = len > 11 && !strcmp(de->d_name + len - 11, ".dockerfile");
		bool part = !strncmp(de->d_name, "Dockerfile.", 11);
		bool bake_file = !strncmp(de->d_name, "docker-bake", 11);
		/* The size limit is BuildKit's: it holds for what BuildKit reads, not the driver's lists. */
		if (!per_target && !part && !bake_file)
			continue;
		if ((unsigned long)st.st_size > max_size) {
			fprintf(stderr, "%s is %lld bytes, over %lu\n", de->d_name, (long long)st.st_size, max_size);
			oversize++;
		}
		char *text = read_text(path);
		if (!text)
			continue;
		if (per_target)
			count_target(&files, de->d_name, len - 11);
		if ((per_target || part) && deepest_stage(text) + 1 > max_layers) {
			fprintf(stderr, "%s: a stage has %u layers over the base, over %u\n", de->d_name,
				deepest_stage(text), max_layers);
			too_deep++;
		}
		if (part) {
			part_count++;
			for (const char *s = strstr(text, "/results/"); s; s = strstr(s + 1, "/results/")) {
				const char *name = s + 9, *end = strchr(name, '\n');
				count_target(&parts, name, end ? (size_t)(end - name) : strlen(name));
			}
		}
		if (bake_file) {
			for (const char *s = strstr(text, "dockerfile = \""); s; s = strstr(s + 1, "dockerfile = \"")) {
				const char *end = strstr(s, ".dockerfile\""), *slash = end;
				while (slash > s && slash[-1] != '/')
					slash--;
				count_target(&bake, slash, (size_t)(end - slash));
			}
		}
		free(text);
	}
	if (d)
		closedir(d);

	unsigned not_once = 0;
	for (size_t i = 0; i < solvable_count; i++) {
		if (parts.counts[i] != 1 || bake.counts[i] != 1 || files.counts[i] != 1) {
			if (not_once++ < 5)
				fprintf(stderr, "%s: %u times in parts, %u in bake files, %u Dockerfiles\n",
					solvable[i], parts.counts[i], bake.counts[i], files.counts[i]);
		}
	}
	printf("dockerfile %s: %zu solvable targets, %u parts\n", options, solvable_count, part_count);
	CHECK_INT_EQ(oversize, 0);
	CHECK_INT_EQ(too_deep, 0);
	CHECK_INT_EQ(not_once, 0);
	CHECK_INT_EQ(parts.unknown, 0);
	CHECK_INT_EQ(bake.unknown, 0);
	CHECK_INT_EQ(files.unknown, 0);
	CHECK(part_count > 1);
	free(parts.counts);
	free(bake.counts);
	free(files.counts);
}

static void test_default_limits(void)
{
	check_generation("", 1UL << 20, 100);
}

static void test_small_limits(void)
{
	check_generation("--max-layers 40 --max-file-size 65536 --batch-size 20", 65536, 40);
}

int main(void)
{
	snapshot = fixture_snapshot(SNAPSHOT_2026);
	obake = getenv("OBAKE");
	RUN_TEST(test_default_limits);
	RUN_TEST(test_small_limits);
	for (size_t i = 0; i < solvable_count; i++)
		free(solvable[i]);
	free(solvable);
	free(snapshot);
	return test_summary();
}
