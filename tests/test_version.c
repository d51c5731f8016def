/*
 * Tests of version_compare against opam's order (OpamVersionCompare in opam 2.x, a Debian-like
 * order), and of the version and package name validity checks.
 */
#include "harness.h"

#include "util.h"
#include "version.h"

static int sign(int x)
{
	return (x > 0) - (x < 0);
}

/* Check that A compares to B as EXPECTED (-1, 0 or 1), and B to A as its opposite. */
static void check_order(const char *a, const char *b, int expected, int line)
{
	int forward = sign(version_compare(a, b));
	int backward = sign(version_compare(b, a));

	if (forward != expected) {
		fprintf(stderr, "%s:%d: %s: version_compare(\"%s\", \"%s\") is %d, expected %d\n", __FILE__, line,
			test_current_name, a, b, forward, expected);
		test_current_failed = true;
	}
	if (backward != -expected) {
		fprintf(stderr, "%s:%d: %s: version_compare(\"%s\", \"%s\") is %d, expected %d\n", __FILE__, line,
			test_current_name, b, a, backward, -expected);
		test_current_failed = true;
	}
}

#define CHECK_LESS(a, b) check_order((a), (b), -1, __LINE__)
#define CHECK_SAME(a, b) check_order((a), (b), 0, __LINE__)

/* The chain given as the defining example of opam's order, from smallest to largest. */
static const char *const chain[] = {
	"~~", "~", "~beta2", "~beta10", "0.1", "1.0~beta", "1.0", "1.0-test", "1.0.1", "1.0.10", "dev", "trunk",
};

static void test_chain_all_pairs(void)
{
	for (size_t i = 0; i < ARRAY_LEN(chain); i++)
		for (size_t j = 0; j < ARRAY_LEN(chain); j++) {
			int expected = (i > j) - (i < j);
			check_order(chain[i], chain[j], expected, __LINE__);
		}
}

static void test_chain_reflexive(void)
{
	for (size_t i = 0; i < ARRAY_LEN(chain); i++)
		CHECK_INT_EQ(version_compare(chain[i], chain[i]), 0);
}

/* Versions used by the antisymmetry and transitivity checks: the chain plus equal spellings and edge cases. */
static const char *const pool[] = {
	"~~",
	"~",
	"~beta2",
	"~beta10",
	"0.1",
	"1.0~beta",
	"1.0",
	"1.00",
	"01.0",
	"1.0-test",
	"1.0.1",
	"1.0.10",
	"dev",
	"trunk",
	"1",
	"1.",
	"1.0-0",
	"1.0-1",
	"1-2-0",
	"1-10",
	"1.0a",
	"1.0A",
	"1.0+",
	"1.0_",
	"1.0~",
	"6.0.0~alpha00",
	"6.0.0",
	"6.0.0-beta01",
	"5.5.0+introcaml",
	"5.5.0+introcaml0",
	"a",
	"z",
	"Z",
	"+",
	"0",
	"00",
	"1.0-~",
	"1.0.0",
	"1.a",
	"1.~",
	"1.+",
};

static void test_pool_antisymmetric(void)
{
	for (size_t i = 0; i < ARRAY_LEN(pool); i++)
		for (size_t j = 0; j < ARRAY_LEN(pool); j++) {
			int forward = sign(version_compare(pool[i], pool[j]));
			int backward = sign(version_compare(pool[j], pool[i]));
			if (forward != -backward) {
				fprintf(stderr, "%s: \"%s\" vs \"%s\" is %d but the reverse is %d\n", test_current_name,
					pool[i], pool[j], forward, backward);
				test_current_failed = true;
			}
		}
}

static void test_pool_transitive(void)
{
	size_t n = ARRAY_LEN(pool);

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++)
			for (size_t k = 0; k < n; k++) {
				int ij = sign(version_compare(pool[i], pool[j]));
				int jk = sign(version_compare(pool[j], pool[k]));
				int ik = sign(version_compare(pool[i], pool[k]));
				/* a <= b <= c implies a <= c, with equality only when both steps are equal. */
				bool broken = (ij <= 0 && jk <= 0 && ik != (ij < 0 || jk < 0 ? -1 : 0)) ||
					      (ij >= 0 && jk >= 0 && ik != (ij > 0 || jk > 0 ? 1 : 0));
				if (broken) {
					fprintf(stderr, "%s: \"%s\" ? \"%s\" ? \"%s\" gives %d, %d, %d\n",
						test_current_name, pool[i], pool[j], pool[k], ij, jk, ik);
					test_current_failed = true;
				}
			}
}

static void test_equal_spellings(void)
{
	CHECK_SAME("1.0", "1.00");
	CHECK_SAME("1.00", "01.0");
	CHECK_SAME("1.0", "01.0");
	CHECK_SAME("1.10", "1.010");
	CHECK_SAME("00", "0");
	CHECK_SAME("1.0a", "1.00a");
}

static void test_real_cases(void)
{
	CHECK_LESS("6.0.0~alpha00", "6.0.0");
	CHECK_LESS("6.0.0", "6.0.0-beta01");
	CHECK_LESS("6.0.0~alpha00", "6.0.0-beta01");
	CHECK_SAME("5.5.0+introcaml", "5.5.0+introcaml0");
}

static void test_split_at_last_dash(void)
{
	/* Upstream "1-2" is after "1" (its '-' sorts after the end), whatever the revisions. */
	CHECK_LESS("1-10", "1-2-0");
	/* Upstream "1.0" is before "1.0a", although '-' sorts after 'a' character by character. */
	CHECK_LESS("1.0-2", "1.0a");
	CHECK_LESS("1.0", "1.0-1");
	CHECK_LESS("1.0-1", "1.0-2");
	CHECK_LESS("1.0-9", "1.0-10");
	CHECK_LESS("1.0-1", "1.0-a");
	CHECK_LESS("1.0-test", "1.0.1-0");
	CHECK_LESS("1.0-~", "1.0");
	CHECK_SAME("1.0-0", "1.0");
	CHECK_SAME("1.0-", "1.0");
	CHECK_LESS("1-a-2", "1-b-1");
	CHECK_LESS("1-9-9", "1-10-1");
}

static void test_letters_before_others(void)
{
	CHECK_LESS("1.0a", "1.0+");
	CHECK_LESS("1.0z", "1.0+");
	CHECK_LESS("1.0Z", "1.0.");
	CHECK_LESS("1.0A", "1.0a");
	CHECK_LESS("1.0+", "1.0.");
	CHECK_LESS("1.0+", "1.0_");
	CHECK_LESS("1.0~", "1.0a");
	CHECK_LESS("1.0~", "1.0+");
	CHECK_LESS("a", "+");
	CHECK_LESS("~", "a");
	CHECK_LESS("1~~", "1~");
	CHECK_LESS("1~", "1");
	CHECK_LESS("a~", "a");
	CHECK_LESS("a", "aa");
	CHECK_LESS("a", "a+");
}

static void test_digit_against_non_digit(void)
{
	CHECK_LESS("1.0", "1.a");
	CHECK_LESS("1.~", "1.0");
	CHECK_LESS("1.0", "1.+");
	CHECK_LESS("~", "0");
	CHECK_LESS("1", "a");
	CHECK_LESS("9", "a");
	CHECK_LESS("1a", "1.0");
	CHECK_LESS("1", "1a");
}

static void test_numeric_runs(void)
{
	CHECK_LESS("1.9", "1.10");
	CHECK_LESS("2", "10");
	CHECK_LESS("1.99999999999999999999999", "1.100000000000000000000000");
	CHECK_SAME("1.000000000000000000000000001", "1.1");
	CHECK_LESS("1.0.1", "1.0.01a");
	CHECK_SAME("1.0.1", "1.0.01");
}

static void test_trailing_zeros(void)
{
	CHECK_SAME("1.", "1.0");
	CHECK_SAME("1.", "1.00");
	CHECK_SAME("5.5.0+introcaml", "5.5.0+introcaml00");
	/* Only zero digits are skipped at the end: the '.' before them still counts. */
	CHECK_LESS("1", "1.0");
	CHECK_LESS("1", "1.");
	CHECK_LESS("1.0", "1.0.0");
	CHECK_LESS("1.0~", "1.");
	CHECK_LESS("1.0", "1.01");
}

static void test_identical_strings(void)
{
	CHECK_INT_EQ(version_compare("", ""), 0);
	CHECK_INT_EQ(version_compare("1.0", "1.0"), 0);
	CHECK_INT_EQ(version_compare("~", "~"), 0);
	CHECK_INT_EQ(version_compare("1-2-3", "1-2-3"), 0);
}

static void test_version_is_valid(void)
{
	CHECK(version_is_valid("1.0"));
	CHECK(version_is_valid("0"));
	CHECK(version_is_valid("~"));
	CHECK(version_is_valid("dev"));
	CHECK(version_is_valid("1.0~beta+x_y-z"));
	CHECK(version_is_valid("ABC.xyz.019"));
	CHECK(version_is_valid("-"));
	CHECK(!version_is_valid(""));
	CHECK(!version_is_valid("1 0"));
	CHECK(!version_is_valid("1/0"));
	CHECK(!version_is_valid("1.0!"));
	CHECK(!version_is_valid("1.0:2"));
	CHECK(!version_is_valid("1.0\n"));
	CHECK(!version_is_valid("%{v}%"));
	CHECK(!version_is_valid("\xc3\xa9"));
}

static void test_package_name_is_valid(void)
{
	CHECK(package_name_is_valid("ocaml"));
	CHECK(package_name_is_valid("0install"));
	CHECK(package_name_is_valid("a_b+c-d"));
	CHECK(package_name_is_valid("ocaml-base-compiler"));
	CHECK(package_name_is_valid("Z"));
	CHECK(package_name_is_valid("conf-g++"));
	CHECK(package_name_is_valid("-_+a"));
	CHECK(!package_name_is_valid(""));
	CHECK(!package_name_is_valid("123"));
	CHECK(!package_name_is_valid("-_+"));
	CHECK(!package_name_is_valid("a.b"));
	CHECK(!package_name_is_valid("a b"));
	CHECK(!package_name_is_valid("a~b"));
	CHECK(!package_name_is_valid("a:b"));
	CHECK(!package_name_is_valid("\xc3\xa9t\xc3\xa9"));
}

int main(void)
{
	RUN_TEST(test_chain_all_pairs);
	RUN_TEST(test_chain_reflexive);
	RUN_TEST(test_pool_antisymmetric);
	RUN_TEST(test_pool_transitive);
	RUN_TEST(test_equal_spellings);
	RUN_TEST(test_real_cases);
	RUN_TEST(test_split_at_last_dash);
	RUN_TEST(test_letters_before_others);
	RUN_TEST(test_digit_against_non_digit);
	RUN_TEST(test_numeric_runs);
	RUN_TEST(test_trailing_zeros);
	RUN_TEST(test_identical_strings);
	RUN_TEST(test_version_is_valid);
	RUN_TEST(test_package_name_is_valid);
	return test_summary();
}
