/*
 * Agreement with opam-0install on the real 2026 snapshot: the reference solutions, explanations
 * and build-graph closures computed by opam-0install 0.5.1 as day10 drives it. Each comparison
 * prints every disagreement and requires at least 99.5 % agreement.
 */
#include "harness.h"

#include "fixtures.h"
#include "options.h"
#include "plan.h"
#include "repo.h"
#include "solver.h"

#define REQUIRED_AGREEMENT 0.995

static struct repo_index idx;
static bool loaded;

static void load_snapshot(void)
{
	char *path = fixture_snapshot(SNAPSHOT_2026);
	struct diag_list diags = { 0 };
	char *paths[1] = { path };

	if (!path)
		return;
	loaded = repo_index_load(&idx, paths, 1, 0, &diags) == 0;
	diag_list_release(&diags);
	free(path);
}

/* Turn the "\n" escapes of the reference files back into newlines. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] == 'n') {
			*out++ = '\n';
			s++;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

static char *joined_solution(const struct solve_result *r)
{
	struct strbuf sb = { 0 };

	for (uint32_t i = 0; i < r->package_count; i++)
		strbuf_addf(&sb, "%s%s.%s", i ? " " : "", idx.packages[r->packages[i]].name,
			    idx.packages[r->packages[i]].version);
	return strbuf_detach(&sb);
}

static const struct package *find_target(const char *target)
{
	char *copy = strdup(target);
	char *dot = strchr(copy, '.');
	const struct package *p = NULL;

	if (dot) {
		*dot = '\0';
		p = repo_find_package(&idx, copy, dot + 1);
	}
	free(copy);
	return p;
}

struct agreement {
	unsigned total, same, explanations, same_explanations;
};

/* Solve every target of the reference FILE and count agreements; CLOSURES compares build graphs instead. */
static struct agreement compare_file(const char *file, const char *ocaml, bool with_test, bool closures)
{
	struct agreement a = { 0 };
	char *path = fixture_oracle_path(file);
	FILE *f = path ? fopen(path, "r") : NULL;

	if (!f) {
		free(path);
		return a;
	}

	struct variables globals = { 0 };
	options_default_environment(&globals, ocaml);
	variables_set_string(&globals, "arch", "x86_64");
	struct universe universe;
	universe_build(&universe, &idx, &globals);
	struct solver solver;
	solver_init(&solver, &universe);

	char *line = NULL;
	size_t capacity = 0;
	while (getline(&line, &capacity, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		/* Columns: target, status, payload (may be empty), milliseconds. */
		char *rest = line;
		char *target = strsep(&rest, "\t"), *status = strsep(&rest, "\t"), *payload = strsep(&rest, "\t");
		if (!target || !status)
			continue;
		bool expect_ok = strcmp(status, "ok") == 0;
		if (!payload)
			payload = "";
		a.total++;

		const struct package *p = find_target(target);
		if (!p) {
			fprintf(stderr, "%s: target not in the snapshot\n", target);
			continue;
		}
		uint32_t t = (uint32_t)(p - idx.packages);
		struct solve_request req = { ocaml, &t, 1, with_test, false };
		struct solve_result r;
		solver_solve(&solver, &req, &r);

		char *actual = NULL;
		if (r.solved && closures) {
			struct plan plan;
			if (plan_build(&plan, &idx, &globals, &r, &t, 1, with_test, false) == 0) {
				struct strbuf sb = { 0 };
				for (uint32_t i = 0; i < plan.count; i++)
					strbuf_addf(&sb, " %s.%s ", idx.packages[plan.order[i]].name,
						    idx.packages[plan.order[i]].version);
				actual = strbuf_detach(&sb);
			}
			plan_release(&plan);
		} else if (r.solved) {
			actual = joined_solution(&r);
		}

		bool same = false;
		if (expect_ok && actual && closures) {
			/* Closures come in another order: same members, same count. */
			unsigned members = 0, found = 0;
			char *copy = strdup(payload);
			for (char *save = NULL, *tok = strtok_r(copy, " ", &save); tok;
			     tok = strtok_r(NULL, " ", &save)) {
				char needle[512];
				snprintf(needle, sizeof(needle), " %s ", tok);
				members++;
				found += strstr(actual, needle) != NULL;
			}
			free(copy);
			unsigned actual_members = 0;
			for (char *c = actual; *c; c++)
				actual_members += *c == ' ';
			same = found == members && actual_members == 2 * members;
		} else if (expect_ok && actual) {
			same = strcmp(actual, payload) == 0;
		} else if (!expect_ok && !r.solved) {
			same = true;
			if (*payload) {
				a.explanations++;
				unescape(payload);
				a.same_explanations += r.diagnostics && strcmp(r.diagnostics, payload) == 0;
			}
		}
		if (same)
			a.same++;
		else
			fprintf(stderr, "%s %s: reference %s, obake %s\n", file, target, status,
				r.solved ? "solution differs" : "no solution");
		free(actual);
		solve_result_release(&r);
	}
	free(line);
	fclose(f);
	free(path);
	solver_release(&solver);
	universe_release(&universe);
	variables_release(&globals);
	return a;
}

static void check_agreement(const char *file, const char *ocaml, bool with_test, bool closures)
{
	if (!loaded)
		SKIP("the 2026 snapshot is not available");

	struct agreement a = compare_file(file, ocaml, with_test, closures);
	if (a.total == 0)
		SKIP("the reference file is not available");
	printf("%s: %u of %u targets agree (%.2f %%)", file, a.same, a.total, 100.0 * a.same / a.total);
	if (a.explanations)
		printf(", %u of %u explanations identical", a.same_explanations, a.explanations);
	printf("\n");
	CHECK((double)a.same >= REQUIRED_AGREEMENT * a.total);
	if (a.explanations)
		CHECK((double)a.same_explanations >= REQUIRED_AGREEMENT * a.explanations);
}

static void test_solutions_ocaml_5_3(void)
{
	check_agreement("solutions-5.3.0.tsv", "5.3.0", false, false);
}

static void test_solutions_ocaml_5_4(void)
{
	check_agreement("solutions-5.4.1.tsv", "5.4.1", false, false);
}

static void test_solutions_with_test(void)
{
	check_agreement("solutions-5.3.0-with-test.tsv", "5.3.0", true, false);
}

static void test_build_closures(void)
{
	check_agreement("closures-5.3.0.tsv", "5.3.0", false, true);
}

int main(void)
{
	load_snapshot();
	RUN_TEST(test_solutions_ocaml_5_3);
	RUN_TEST(test_solutions_ocaml_5_4);
	RUN_TEST(test_solutions_with_test);
	RUN_TEST(test_build_closures);
	if (loaded)
		repo_index_release(&idx);
	return test_summary();
}
