#!/bin/sh
# Data-driven solver tests. Each tests/solver-cases/NAME.case contains a small repository, the
# arguments of `obake solve` and the expected result. For every case this script writes the
# repository into a temporary folder, runs `$OBAKE solve -r FOLDER ARGS`, compares the result,
# prints `ok NAME` or `FAIL NAME` with the reason, and ends with `N passed, N failed, N skipped`.
#
# Usage: OBAKE=path/to/obake sh tests/solver-cases.sh [CASE_FILE...]
# Without arguments it runs every case. $OBAKE defaults to ./obake at the top of the checkout.
#
# Case file format. Lines starting with `#` before the first header describe the case; the first
# one is printed when the case fails. Each header line starts a block that runs to the next header:
#
#   --- PATH            a file of the repository, e.g. `--- packages/a/a.1/opam` (relative, no `..`)
#   === args            arguments after `-r FOLDER`, split at blanks (no quoting, no globbing)
#   === expect          the exact expected stdout
#   === status          the expected exit status (default 0)
#   === mentions        one string per line that stdout or stderr must contain. A case with this
#                       block is not compared with `expect`: use it for diagnostics and error
#                       messages, whose wording may change.
#   === file NAME       the exact expected content of NAME in the output folder. When a case has
#                       such a block, `-o OUTPUT_FOLDER` is added before ARGS.
#   === file NAME unordered
#                       the same, compared after sorting the lines of both sides
#   === skip            skip the case; the block gives the reason
#
# Trailing empty lines of every block are ignored, so blocks may be separated by a blank line.
# A `repo` file declaring `opam-version: "2.0"` is written unless the case supplies its own.
#
# OBAKE_UPDATE_CASES=1 rewrites the `expect`, `status` and `file` blocks of every case that has no
# `mentions` block from obake's actual output, and prints `updated NAME` for each changed file
# (libsolv's testsolv has the same mode). A run killed by a signal is reported, never recorded.
# Review the rewritten expectations before keeping them: this mode records obake's behaviour,
# whether right or wrong.

set -u
root=$(cd "$(dirname "$0")/.." && pwd)
obake=${OBAKE:-$root/obake}
update=${OBAKE_UPDATE_CASES:-0}
work=$(mktemp -d "${TMPDIR:-/tmp}/obake-solver-cases.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT INT TERM

passed=0 failed=0 skipped=0

# split_case FILE DIR: write the repository of FILE to DIR/repo and each block to DIR/blocks.
# File blocks go to DIR/files/NAME, with DIR/files/NAME.unordered marking unordered comparison.
split_case() {
	mkdir -p "$2/repo" "$2/blocks" "$2/files"
	awk -v dir="$2" '
	function flush(   i) {
		if (out == "")
			return
		while (n > 0 && lines[n] == "")
			n--
		printf "" > out
		for (i = 1; i <= n; i++)
			print lines[i] > out
		close(out)
	}
	function start(path) {
		flush()
		out = path
		n = 0
	}
	function fail(message) {
		printf "%s:%d: %s\n", FILENAME, FNR, message > "/dev/stderr"
		bad = 1
		exit 1
	}
	/^--- / {
		path = substr($0, 5)
		if (path !~ /^[A-Za-z0-9_.+~-][A-Za-z0-9_.+~\/-]*$/ || path ~ /(^|\/)\.\.(\/|$)/)
			fail("invalid repository path: " path)
		d = path
		sub(/\/[^\/]*$/, "", d)
		if (d != path)
			system("mkdir -p \"" dir "/repo/" d "\"")
		start(dir "/repo/" path)
		next
	}
	/^=== / {
		name = $2
		if (name == "file") {
			if (NF < 3 || $3 ~ /\// || $3 ~ /^\./)
				fail("a file block needs a plain file name")
			if (NF > 4 || (NF == 4 && $4 != "unordered"))
				fail("unexpected words after the file name: " $0)
			if (NF == 4)
				printf "" > (dir "/files/" $3 ".unordered")
			start(dir "/files/" $3)
		} else if (name ~ /^(args|expect|status|mentions|skip)$/ && NF == 2) {
			start(dir "/blocks/" name)
		} else {
			fail("unknown header: " $0)
		}
		next
	}
	out == "" && /^#/ {
		if (description == "") {
			description = substr($0, 2)
			sub(/^ +/, "", description)
			print description > (dir "/blocks/description")
		}
		next
	}
	out == "" && /^[ \t]*$/ { next }
	out == "" { fail("text outside any block: " $0) }
	{ lines[++n] = $0 }
	END {
		if (!bad)
			flush()
	}' "$1"
}

# show TITLE FILE: print FILE indented under TITLE, if it is not empty.
show() {
	if [ -s "$2" ]; then
		echo "  $1:"
		sed 's/^/  | /' "$2" | head -n 30
	fi
}

# rewrite_case FILE DIR: print the case FILE with its expect, status and file blocks replaced by
# the actual results in DIR. Missing expect and status blocks are appended.
rewrite_case() {
	awk -v dir="$2" '
	function copy(path,   line) {
		while ((getline line < path) > 0)
			print line
		close(path)
	}
	function emit(kind, name) {
		if (kind == "expect") {
			print "=== expect"
			copy(dir "/stdout")
			seen_expect = 1
		} else if (kind == "status") {
			print "=== status"
			print status
			seen_status = 1
		} else {
			print "=== file " name (unordered[name] ? " unordered" : "")
			copy(dir "/out/" name)
		}
	}
	BEGIN {
		getline status < (dir "/status")
		close(dir "/status")
	}
	/^(---|===) / {
		if (skipping)
			print ""
		skipping = 0
		if ($1 == "===" && ($2 == "expect" || $2 == "status") && NF == 2) {
			emit($2)
			skipping = 1
			next
		}
		if ($1 == "===" && $2 == "file") {
			unordered[$3] = (NF == 4)
			emit("file", $3)
			skipping = 1
			next
		}
	}
	skipping { next }
	{ print }
	END {
		if (!seen_expect) {
			print ""
			emit("expect")
		}
		if (!seen_status && status != 0) {
			print ""
			emit("status")
		}
	}' "$1" | awk '{ lines[++n] = $0 } END { while (n > 0 && lines[n] == "") n--; for (i = 1; i <= n; i++) print lines[i] }'
}

# run_case FILE: run one case and count the result.
run_case() {
	file=$1
	name=$(basename "$file" .case)
	dir=$work/$name
	rm -rf "$dir"
	if ! split_case "$file" "$dir" 2>"$work/split-errors"; then
		failed=$((failed + 1))
		echo "FAIL $name: the case file is malformed"
		sed 's/^/  /' "$work/split-errors"
		return
	fi
	blocks=$dir/blocks
	if [ -f "$blocks/skip" ]; then
		skipped=$((skipped + 1))
		echo "skip $name: $(head -n 1 "$blocks/skip")"
		return
	fi
	[ -f "$dir/repo/repo" ] || printf 'opam-version: "2.0"\n' >"$dir/repo/repo"

	# Arguments are split at blanks on purpose: targets such as `a>=1` need no quoting this way.
	set -f
	# shellcheck disable=SC2046
	set -- $(cat "$blocks/args" 2>/dev/null)
	set +f
	has_files=no
	for f in "$dir"/files/*; do
		[ -e "$f" ] && has_files=yes
	done
	if [ "$has_files" = yes ]; then
		mkdir -p "$dir/out"
		set -- -o "$dir/out" "$@"
	fi
	"$obake" solve -r "$dir/repo" "$@" >"$dir/stdout" 2>"$dir/stderr"
	echo $? >"$dir/status"
	status=$(cat "$dir/status")
	expected_status=0
	if [ -f "$blocks/status" ]; then
		expected_status=$(tr -d ' \t\n' <"$blocks/status")
	fi

	# A crash is never recorded as the expected result.
	if [ "$update" = 1 ] && [ ! -f "$blocks/mentions" ] && [ "$status" -lt 128 ]; then
		rewrite_case "$file" "$dir" >"$dir/rewritten"
		if cmp -s "$file" "$dir/rewritten"; then
			echo "ok $name"
		else
			cp "$dir/rewritten" "$file"
			echo "updated $name"
		fi
		passed=$((passed + 1))
		return
	fi

	# Every problem is reported, and the case fails if there is any.
	problems=0
	report=$dir/report
	: >"$report"
	if [ "$status" != "$expected_status" ]; then
		problems=$((problems + 1))
		echo "  exit status $status, expected $expected_status" >>"$report"
	fi
	if [ -f "$blocks/mentions" ]; then
		cat "$dir/stdout" "$dir/stderr" >"$dir/combined"
		while IFS= read -r word; do
			[ -n "$word" ] || continue
			if ! grep -qF -- "$word" "$dir/combined"; then
				problems=$((problems + 1))
				echo "  output lacks '$word'" >>"$report"
			fi
		done <"$blocks/mentions"
	else
		[ -f "$blocks/expect" ] || : >"$blocks/expect"
		if ! cmp -s "$blocks/expect" "$dir/stdout"; then
			problems=$((problems + 1))
			echo "  stdout differs (--- expected, +++ actual):" >>"$report"
			diff -u "$blocks/expect" "$dir/stdout" | tail -n +3 | sed 's/^/  | /' >>"$report"
		fi
	fi
	for expected in "$dir"/files/*; do
		[ -e "$expected" ] || continue
		case "$expected" in *.unordered) continue ;; esac
		base=$(basename "$expected")
		actual=$dir/out/$base
		if [ ! -f "$actual" ]; then
			problems=$((problems + 1))
			echo "  obake wrote no file $base" >>"$report"
			continue
		fi
		if [ -f "$expected.unordered" ]; then
			sort "$expected" >"$dir/expected.sorted"
			sort "$actual" >"$dir/actual.sorted"
			expected=$dir/expected.sorted actual=$dir/actual.sorted
		fi
		if ! cmp -s "$expected" "$actual"; then
			problems=$((problems + 1))
			echo "  $base differs (--- expected, +++ actual):" >>"$report"
			diff -u "$expected" "$actual" | tail -n +3 | sed 's/^/  | /' >>"$report"
		fi
	done

	if [ "$problems" -eq 0 ]; then
		passed=$((passed + 1))
		echo "ok $name"
		return
	fi
	failed=$((failed + 1))
	echo "FAIL $name: $(cat "$blocks/description" 2>/dev/null)"
	cat "$report"
	if [ -f "$blocks/mentions" ]; then
		show stdout "$dir/stdout"
	fi
	show stderr "$dir/stderr"
}

if [ "$#" -eq 0 ]; then
	set -- "$root"/tests/solver-cases/*.case
fi
if [ ! -x "$obake" ]; then
	echo "obake binary not found at $obake; build it with make or set OBAKE"
	echo "0 passed, 0 failed, $# skipped"
	exit 0
fi
for case_file in "$@"; do
	run_case "$case_file"
done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
