/*
 * A minimal test harness. Each test binary defines test functions, lists them in main with RUN_TEST,
 * and ends with `return test_summary();`, which prints "N passed, N failed, N skipped".
 */
#ifndef OBAKE_TEST_HARNESS_H
#define OBAKE_TEST_HARNESS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tests_passed, tests_failed, tests_skipped;
static bool test_current_failed, test_current_skipped;
static const char *test_current_name;

#define CHECK(cond)                                                                                                    \
	do {                                                                                                           \
		if (!(cond)) {                                                                                         \
			fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, test_current_name,        \
				#cond);                                                                                \
			test_current_failed = true;                                                                    \
		}                                                                                                      \
	} while (0)

#define CHECK_INT_EQ(actual, expected)                                                                                 \
	do {                                                                                                           \
		long long a_ = (long long)(actual), e_ = (long long)(expected);                                        \
		if (a_ != e_) {                                                                                        \
			fprintf(stderr, "%s:%d: %s: %s is %lld, expected %lld\n", __FILE__, __LINE__,                  \
				test_current_name, #actual, a_, e_);                                                   \
			test_current_failed = true;                                                                    \
		}                                                                                                      \
	} while (0)

#define CHECK_STR_EQ(actual, expected)                                                                                 \
	do {                                                                                                           \
		const char *a_ = (actual), *e_ = (expected);                                                           \
		if (!a_ || strcmp(a_, e_) != 0) {                                                                      \
			fprintf(stderr, "%s:%d: %s: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__,              \
				test_current_name, #actual, a_ ? a_ : "(null)", e_);                                   \
			test_current_failed = true;                                                                    \
		}                                                                                                      \
	} while (0)

/* Mark the running test as skipped, with the reason, and leave it. */
#define SKIP(reason)                                                                                                   \
	do {                                                                                                           \
		fprintf(stderr, "%s: skipped: %s\n", test_current_name, (reason));                                     \
		test_current_skipped = true;                                                                           \
		return;                                                                                                \
	} while (0)

#define RUN_TEST(fn)                                                                                                   \
	do {                                                                                                           \
		test_current_name = #fn;                                                                               \
		test_current_failed = test_current_skipped = false;                                                    \
		fn();                                                                                                  \
		if (test_current_failed)                                                                               \
			tests_failed++, fprintf(stderr, "FAIL %s\n", #fn);                                             \
		else if (test_current_skipped)                                                                         \
			tests_skipped++;                                                                               \
		else                                                                                                   \
			tests_passed++;                                                                                \
	} while (0)

static inline int test_summary(void)
{
	printf("%d passed, %d failed, %d skipped\n", tests_passed, tests_failed, tests_skipped);
	return tests_failed ? 1 : 0;
}

#endif
