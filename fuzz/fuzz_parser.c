/*
 * libFuzzer target for the opam parser. Every input that parses must print to text that parses
 * again into an equal tree, as printer.h promises; a failed reparse or a different tree traps.
 * The same bytes also go through opam_parse_value, which must only not crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "diag.h"
#include "opam_ast.h"
#include "parser.h"
#include "printer.h"
#include "util.h"

/* Larger inputs only slow the fuzzer down without reaching new code. */
#define MAX_INPUT_SIZE (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const struct opam_file *parsed)
{
	struct strbuf printed = { 0 };
	struct arena arena = { 0 };
	struct diag_list diags = { 0 };

	opam_print_file(&printed, parsed);

	struct opam_file *reparsed =
		opam_parse(&arena, "fuzz-printed", strbuf_str(&printed), (uint32_t)printed.len, &diags);
	if (!reparsed || !opam_file_equal(parsed, reparsed)) {
		/* Show what the printer wrote next to libFuzzer's crash report. */
		fprintf(stderr, "round trip failed: %s; printed text:\n%s\n",
			reparsed ? "the reparsed tree differs" : "the printed text does not parse",
			strbuf_str(&printed));
		diag_print_all(stderr, &diags);
		__builtin_trap();
	}

	arena_release(&arena);
	diag_list_release(&diags);
	strbuf_release(&printed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The parser reads exactly SIZE bytes, so ASan reports any read past the end of the input. */
	const char *text = (const char *)data;
	uint32_t len = (uint32_t)size;
	struct arena arena = { 0 };
	struct diag_list diags = { 0 };

	if (size > MAX_INPUT_SIZE)
		return 0;

	struct opam_file *parsed = opam_parse(&arena, "fuzz-input", text, len, &diags);
	if (parsed)
		check_round_trip(parsed);

	opam_parse_value(&arena, "fuzz-input", text, len, &diags);

	arena_release(&arena);
	diag_list_release(&diags);
	return 0;
}
