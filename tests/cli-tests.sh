#!/bin/sh
# Command-line tests: exit statuses, messages and outputs of obake on the example repository
# and on small repositories made here. $OBAKE names the binary under test.

set -u
root=$(cd "$(dirname "$0")/.." && pwd)
obake=${OBAKE:-$root/obake}
example=$root/examples/repo
work=$(mktemp -d "${TMPDIR:-/tmp}/obake-cli.XXXXXX")
trap 'rm -rf "$work"' EXIT

passed=0 failed=0 skipped=0

# expect NAME EXPECTED_STATUS COMMAND...: run COMMAND, keep its output in $work/out.
expect() {
	name=$1 expected=$2
	shift 2
	"$@" >"$work/out" 2>&1
	status=$?
	if [ "$status" -eq "$expected" ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL $name: exit status $status, expected $expected"
		sed 's/^/  | /' "$work/out" | head -n 20
	fi
}

# contains NAME TEXT: the last command's output contains TEXT.
contains() {
	if grep -qF -- "$2" "$work/out"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL $1: output lacks '$2'"
		sed 's/^/  | /' "$work/out" | head -n 20
	fi
}

expect "help" 0 "$obake" --help
contains "help lists check" "check"
expect "no command" 2 "$obake"
expect "unknown command" 2 "$obake" frobnicate
contains "unknown command named" "unknown command 'frobnicate'"
expect "unknown option" 2 "$obake" list --frobnicate -r "$example"
contains "unknown option named" "--frobnicate"
expect "option of another command" 2 "$obake" check --json -r "$example"
contains "option scope" "does not apply"
expect "no repository" 2 env -u OBAKE_OPAM_REPOSITORY "$obake" list
contains "no repository hint" "-r DIR"
expect "missing repository" 2 "$obake" list -r "$work/nowhere"
contains "missing repository named" "$work/nowhere"
expect "bad jobs" 2 "$obake" list -j zero -r "$example"

expect "check example" 0 "$obake" check -r "$example"
contains "check summary" "0 files failed"

expect "list example" 0 "$obake" list -r "$example"
contains "list latest tinylib" "tinylib.1.0"
contains "list latest midlib" "midlib.2.0"
if grep -q '^alpha\.' "$work/out"; then
	failed=$((failed + 1))
	echo "FAIL list hides unavailable: alpha is listed"
else
	passed=$((passed + 1))
fi

expect "list with macos" 0 "$obake" list --os macos -r "$example"
contains "os override" "alpha.1.0"

expect "list from environment" 0 env OBAKE_OPAM_REPOSITORY="$example" "$obake" list
contains "environment repository" "toplib.1.0"

expect "list all versions" 0 "$obake" list --all-versions -r "$example"
contains "all versions old tinylib" "tinylib.0.9"

expect "list json" 0 "$obake" list --json --all-versions -r "$example"
contains "json available field" '"available": false'

# Two repositories: the first named wins for the same version.
for r in first second; do
	mkdir -p "$work/$r/packages/dup/dup.1.0"
	printf 'opam-version: "2.0"\nsynopsis: "from %s"\n' "$r" >"$work/$r/packages/dup/dup.1.0/opam"
done
mkdir -p "$work/second/packages/dup/dup.2.0"
printf 'opam-version: "2.0"\n' >"$work/second/packages/dup/dup.2.0/opam"
expect "two repositories" 0 "$obake" list --json --all-versions -r "$work/first" -r "$work/second"
contains "first wins" "$work/first"
contains "second adds versions" '"version": "2.0"'

# A file that does not parse: check reports it with its position and exits 1; list goes on.
mkdir -p "$work/bad/packages/bad/bad.1" "$work/bad/packages/good/good.1"
printf 'opam-version: "2.0"\ndepends: [ "x" {>= "1" ]\n' >"$work/bad/packages/bad/bad.1/opam"
printf 'opam-version: "2.0"\n' >"$work/bad/packages/good/good.1/opam"
expect "check bad file" 1 "$obake" check -r "$work/bad"
contains "error position" "bad.1/opam:2:"
contains "error caret" "^"
expect "list despite bad file" 0 "$obake" list -r "$work/bad"
contains "good still listed" "good.1"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
