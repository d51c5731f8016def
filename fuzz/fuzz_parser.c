/*
 * libFuzzer target for the opam parser. Every input that parses must print to text that parses
 * again into an equal tree, as printer.h promises, so a failed reparse or a different tree traps.
 * The same bytes also go through opam_parse_value, where only crashes and sanitizer reports count.
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

/* Inputs over 1 MiB are skipped to keep each run fast. */
#define MAX_INPUT_SIZE (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Print PARSED, parse the output into ARENA and trap unless the two trees are equal. */
static void check_round_trip(struct arena *arena, const struct opam_file *parsed)
{
	struct strbuf printed = { 0 };
	struct diag_list diags = { 0 };

	opam_print_file(&printed, parsed);

	struct opam_file *reparsed = opam_parse(arena, "fuzz-printed", strbuf_str(&printed), (uint32_t)printed.len,
						&diags);
	if (!reparsed || !opam_file_equal(parsed, reparsed)) {
		/* Show what the printer wrote next to libFuzzer's crash report. */
		fprintf(stderr, "round trip failed: %s. Printed text:\n%s\n",
			reparsed ? "the reparsed tree differs" : "the printed text does not parse",
			strbuf_str(&printed));
		diag_print_all(stderr, &diags);
		__builtin_trap();
	}

	diag_list_release(&diags);
	strbuf_release(&printed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The input is passed as it is, without a copy or a NUL, so ASan catches any read past its end. */
	const char *text = (const char *)data;
	uint32_t len = (uint32_t)size;
	struct arena arena = { 0 };
	struct diag_list diags = { 0 };

	if (size > MAX_INPUT_SIZE)
		return 0;

	struct opam_file *parsed = opam_parse(&arena, "fuzz-input", text, len, &diags);
	if (parsed)
		check_round_trip(&arena, parsed);

	opam_parse_value(&arena, "fuzz-input", text, len, &diags);

	arena_release(&arena);
	diag_list_release(&diags);
	return 0;
}
