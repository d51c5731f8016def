#include "version.h"

#include <string.h>

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_letter(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Order of two non-digit characters: '~' first, then letters, then everything else, ASCII within each class. */
static int compare_chars(char a, char b)
{
	int rank_a = a == '~' ? 0 : is_letter(a) ? 1 : 2;
	int rank_b = b == '~' ? 0 : is_letter(b) ? 1 : 2;

	if (rank_a != rank_b)
		return rank_a - rank_b;
	return (unsigned char)a - (unsigned char)b;
}

static size_t skip_zeros(const char *s, size_t i, size_t end)
{
	while (i < end && s[i] == '0')
		i++;
	return i;
}

/*
 * Compare x[xi..xl) with y[yi..yl), alternating non-digit runs (character by character) and digit
 * runs (numerically). When one side runs out, the other is compared against nothing: trailing
 * zeros are equal to nothing, a '~' sorts before it, anything else after it.
 */
static int compare_part(const char *x, size_t xi, size_t xl, const char *y, size_t yi, size_t yl)
{
	for (;;) {
		if (xi == xl && yi == yl)
			return 0;
		if (xi == xl) {
			size_t ys = skip_zeros(y, yi, yl);
			return ys == yl ? 0 : y[ys] == '~' ? 1 : -1;
		}
		if (yi == yl) {
			size_t xs = skip_zeros(x, xi, xl);
			return xs == xl ? 0 : x[xs] == '~' ? -1 : 1;
		}

		bool dx = is_digit(x[xi]), dy = is_digit(y[yi]);
		if (dx && dy) {
			/* Numeric runs: without leading zeros, the longer is larger; equal lengths compare digit by digit. */
			xi = skip_zeros(x, xi, xl);
			yi = skip_zeros(y, yi, yl);
			size_t xe = xi, ye = yi;
			while (xe < xl && is_digit(x[xe]))
				xe++;
			while (ye < yl && is_digit(y[ye]))
				ye++;
			if (xe - xi != ye - yi)
				return xe - xi < ye - yi ? -1 : 1;
			int c = memcmp(x + xi, y + yi, xe - xi);
			if (c != 0)
				return c;
			xi = xe;
			yi = ye;
			continue;
		}
		/* A digit against a non-digit: only '~' sorts before digits. */
		if (dx)
			return y[yi] == '~' ? 1 : -1;
		if (dy)
			return x[xi] == '~' ? -1 : 1;

		int c = compare_chars(x[xi], y[yi]);
		if (c != 0)
			return c;
		xi++;
		yi++;
	}
}

int version_compare(const char *a, const char *b)
{
	if (strcmp(a, b) == 0)
		return 0;

	/* The upstream part ends at the last '-'; what follows is the revision. */
	size_t la = strlen(a), lb = strlen(b);
	const char *da = strrchr(a, '-'), *db = strrchr(b, '-');
	size_t ra = da ? (size_t)(da - a) : la;
	size_t rb = db ? (size_t)(db - b) : lb;

	int c = compare_part(a, 0, ra, b, 0, rb);
	if (c == 0)
		c = compare_part(a, ra < la ? ra + 1 : la, la, b, rb < lb ? rb + 1 : lb, lb);
	return c < 0 ? -1 : c > 0 ? 1 : 0;
}

bool version_is_valid(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!is_letter(*s) && !is_digit(*s) && !strchr("_+.~-", *s))
			return false;
	return true;
}

bool package_name_is_valid(const char *s)
{
	bool letter = false;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (is_letter(*s))
			letter = true;
		else if (!is_digit(*s) && !strchr("_+-", *s))
			return false;
	}
	return letter;
}
