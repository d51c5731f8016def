/* Filters and filtered package formulas, evaluated as opam evaluates them. */
#include "harness.h"

#include "filter.h"
#include "formula.h"
#include "options.h"
#include "parser.h"

static struct arena arena;
static struct variables globals;
static struct variables deps;

static const struct value *parse(const char *text)
{
	struct diag_list diags = { 0 };
	const struct value *v = opam_parse_value(&arena, "test", text, (uint32_t)strlen(text), &diags);

	if (!v) {
		fprintf(stderr, "cannot parse %s: %s\n", text, diags.count ? diags.items[0].message : "?");
		exit(2);
	}
	diag_list_release(&diags);
	return v;
}

static struct filter_env env_for(const char *name, const char *version)
{
	struct filter_env env = { &globals, name, version, &deps };
	return env;
}

/* Evaluate TEXT and render the result as "true", "false", "undefined" or the string. */
static const char *eval(const char *text)
{
	struct filter_env env = env_for("pkg", "1.2");
	struct fvalue v = filter_eval(parse(text), &env, &arena);

	if (v.kind == FVALUE_UNDEFINED)
		return "undefined";
	if (v.kind == FVALUE_BOOL)
		return v.boolean ? "true" : "false";
	return v.string;
}

static void test_filter_table(void)
{
	static const struct {
		const char *filter, *expected;
	} cases[] = {
		{ "os = \"linux\"", "true" },
		{ "os != \"linux\"", "false" },
		{ "arch", "x86_64" },
		{ "unknown-var", "undefined" },
		{ "unknown-var = \"x\"", "undefined" },
		{ "false & unknown-var", "false" },
		{ "unknown-var & false", "false" },
		{ "true & unknown-var", "undefined" },
		{ "true | unknown-var", "true" },
		{ "unknown-var | true", "true" },
		{ "false | unknown-var", "undefined" },
		{ "!unknown-var", "undefined" },
		{ "?unknown-var", "false" },
		{ "?os", "true" },
		{ "!true", "false" },
		{ "!(os = \"linux\")", "false" },
		{ "\"true\" & \"true\"", "true" },
		{ "\"yes\" & true", "undefined" },
		{ "!\"yes\"", "undefined" },
		{ "opam-version >= \"2.1.0\"", "true" },
		{ "opam-version < \"2.1\"", "false" },
		{ "os-version >= \"12\"", "true" },
		{ "ocaml:version >= \"5.0\"", "true" },
		{ "ocaml:native", "true" },
		{ "ocaml:version < \"5.3.0~\"", "false" },
		{ "version", "1.2" },
		{ "_:version", "1.2" },
		{ "pkg:version", "1.2" },
		{ "name", "pkg" },
		{ "\"%{os}%-%{arch}%\"", "linux-x86_64" },
		{ "\"%{unknown}%x\"", "x" },
		{ "\"100%%\"", "100%" },
		{ "\"%{os\"", "%{os" },
		{ "\"%{ocaml:native?yes:no}%\"", "yes" },
		{ "\"%{unknown:installed?yes:no}%\"", "no" },
		{ "\"%{ocaml:enable}%\"", "disable" },
		{ "build", "true" },
		{ "with-test", "false" },
		{ "build & !with-test", "true" },
		{ "1 = \"1\"", "true" },
		{ "true = \"true\"", "true" },
		{ "(os = \"linux\")", "true" },
		{ "sys-ocaml-version = \"\"", "true" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *actual = eval(cases[i].filter);
		if (strcmp(actual, cases[i].expected) != 0) {
			fprintf(stderr, "filter %s: got %s, expected %s\n", cases[i].filter, actual, cases[i].expected);
			test_current_failed = true;
		}
	}
}

static void test_filter_bool_default(void)
{
	struct filter_env env = env_for("pkg", "1.2");

	CHECK(!filter_eval_bool(parse("unknown-var"), &env, &arena, false));
	CHECK(filter_eval_bool(parse("unknown-var"), &env, &arena, true));
	CHECK(!filter_eval_bool(parse("\"maybe\""), &env, &arena, false));
	CHECK(filter_eval_bool(parse("\"true\""), &env, &arena, false));
}

static void test_multi_package_ident(void)
{
	struct filter_env env = env_for("pkg", "1.2");

	variables_set_bool(&globals, "a:installed", true);
	variables_set_bool(&globals, "b:installed", false);
	CHECK_STR_EQ(eval("a+a:installed"), "true");
	CHECK_STR_EQ(eval("a+b:installed"), "false");
	CHECK_STR_EQ(eval("a+c:installed"), "undefined");
	CHECK_STR_EQ(eval("\"%{a+b:installed?on:off}%\""), "off");
	(void)env;
	variables_unset(&globals, "a:installed");
	variables_unset(&globals, "b:installed");
}

/* Reduce DEPENDS as a `depends:` field and print it back. */
static const char *reduce(const char *depends, enum formula_join join)
{
	struct filter_env env = env_for("pkg", "1.2");
	struct formula *f = formula_reduce(parse(depends), join, &env, &arena);
	struct strbuf sb = { 0 };

	formula_print(&sb, f);
	const char *result = arena_strdup(&arena, strbuf_str(&sb));
	strbuf_release(&sb);
	return result;
}

static void test_formula_table(void)
{
	static const struct {
		const char *depends, *expected;
	} cases[] = {
		{ "[\"a\" \"b\"]", "a & b" },
		{ "[\"a\" {>= \"1\"}]", "a {>= 1}" },
		{ "[\"a\" {>= \"1\" | with-test}]", "a {>= 1}" },
		{ "[\"a\" {>= \"1\" | build}]", "a" },
		{ "[\"a\" {>= \"1\" & with-test}]", "" },
		{ "[\"a\" {with-test} \"b\"]", "b" },
		{ "[\"a\" {with-test} | \"b\"]", "b" },
		{ "[\"a\" | \"b\" {with-test}]", "a" },
		{ "[(\"a\" | \"b\") \"c\"]", "(a | b) & c" },
		{ "[\"a\" {>= \"1\" < \"2\"}]", "a {>= 1 & < 2}" },
		{ "[\"a\" {!(>= \"1\" & < \"2\")}]", "a {< 1 | >= 2}" },
		{ "[\"a\" {!with-test}]", "a" },
		{ "[\"a\" {!unknown}]", "" },
		{ "[\"a\" {unknown}]", "" },
		{ "[\"a\" {= version}]", "a {= 1.2}" },
		{ "[\"a\" {= \"%{unknown}%\"}]", "a" },
		{ "[\"a\" {>= \"%{undefined-var}%\" & < \"2\"}]", "a {< 2}" },
		{ "[\"a\" {os = \"linux\"}]", "a" },
		{ "[\"a\" {os = \"macos\"}]", "" },
		{ "[\"a\" {post}]", "a" },
		{ "[\"a\" {dev}]", "" },
		{ "\"a\"", "a" },
		{ "[]", "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *actual = reduce(cases[i].depends, FORMULA_CONJUNCTION);
		if (strcmp(actual, cases[i].expected) != 0) {
			fprintf(stderr, "formula %s: got '%s', expected '%s'\n", cases[i].depends, actual,
				cases[i].expected);
			test_current_failed = true;
		}
	}
}

static void test_formula_disjunction(void)
{
	CHECK_STR_EQ(reduce("[\"a\" \"b\" {< \"2\"}]", FORMULA_DISJUNCTION), "a | b {< 2}");
	CHECK_STR_EQ(reduce("[\"a\" {with-test} \"b\"]", FORMULA_DISJUNCTION), "b");
}

static void test_vformula_check(void)
{
	struct filter_env env = env_for("pkg", "1.2");
	struct formula *f = formula_reduce(parse("[\"a\" {>= \"1.0\" & < \"2.0~\"}]"), FORMULA_CONJUNCTION, &env,
					   &arena);

	CHECK(f && f->kind == FORMULA_ATOM);
	if (!f)
		return;
	CHECK(vformula_check(f->constraint, "1.0"));
	CHECK(vformula_check(f->constraint, "1.9.9"));
	CHECK(!vformula_check(f->constraint, "2.0~beta"));
	CHECK(!vformula_check(f->constraint, "0.9"));
	CHECK(vformula_check(NULL, "anything"));
}

static void test_shape_checks(void)
{
	CHECK(formula_is_valid(parse("[\"a\" {>= \"1\"} (\"b\" | \"c\")]")));
	CHECK(formula_is_valid(parse("\"a\"")));
	CHECK(!formula_is_valid(parse("42")));
	CHECK(!formula_is_valid(parse("[a]")));
	CHECK(!formula_is_valid(parse("[\"not a name\"]")));
	CHECK(!formula_is_valid(parse("[\"a\" {>= \"\"}]")));
	CHECK(formula_is_valid(parse("[\"a\" {>= \"%{x}%\"}]")));
	CHECK(filter_is_valid(parse("os = \"linux\" & !with-test")));
	CHECK(!filter_is_valid(parse("[os]")));
	CHECK(!filter_is_valid(parse("(a b)")));
}

int main(void)
{
	options_default_environment(&globals, "5.3.0");
	variables_set_string(&globals, "arch", "x86_64");
	variables_set_bool(&deps, "build", true);
	variables_set_bool(&deps, "post", true);
	variables_set_bool(&deps, "with-test", false);
	variables_set_bool(&deps, "with-doc", false);
	variables_set_bool(&deps, "dev", false);

	RUN_TEST(test_filter_table);
	RUN_TEST(test_filter_bool_default);
	RUN_TEST(test_multi_package_ident);
	RUN_TEST(test_formula_table);
	RUN_TEST(test_formula_disjunction);
	RUN_TEST(test_vformula_check);
	RUN_TEST(test_shape_checks);

	variables_release(&globals);
	variables_release(&deps);
	arena_release(&arena);
	return test_summary();
}
