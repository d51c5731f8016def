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

# dockerfile --archive-mirror: the build context is a folder under -o holding the repository (hard
# links) and the archives the solutions need, found by checksum in the mirror. The repository is
# not written. The source URLs name missing files, so nothing is fetched from anywhere else.
cp -R "$example" "$work/ctx-repo"
mkdir -p "$work/ctx-src/tinylib-1.0"
echo "tinylib source" >"$work/ctx-src/tinylib-1.0/README"
tar -C "$work/ctx-src" -czf "$work/tinylib-1.0.tar.gz" tinylib-1.0
sum=$(sha256sum "$work/tinylib-1.0.tar.gz" | cut -d' ' -f1)
prefix=$(printf '%s' "$sum" | cut -c1-2)
mkdir -p "$work/ctx-mirror/sha256/$prefix"
cp "$work/tinylib-1.0.tar.gz" "$work/ctx-mirror/sha256/$prefix/$sum"
printf 'url {\n  src: "file://%s/missing/tinylib-1.0.tar.gz"\n  checksum: "sha256=%s"\n}\n' "$work" "$sum" \
	>>"$work/ctx-repo/packages/tinylib/tinylib.1.0/opam"
printf 'url {\n  src: "file://%s/missing/beta-1.0.tar.gz"\n  checksum: "sha256=%s"\n}\n' "$work" \
	"0000000000000000000000000000000000000000000000000000000000000000" \
	>>"$work/ctx-repo/packages/beta/beta.1.0/opam"
(cd "$work/ctx-repo" && find . -printf '%p %y %s %m %T@\n' | sort) >"$work/ctx-repo.before"
expect "dockerfile archive mirror" 0 "$obake" dockerfile -r "$work/ctx-repo" --archive-mirror "$work/ctx-mirror" \
	-o "$work/ctx-out" tinylib beta
contains "missing archive reported" "beta.1.0"
contains "missing archive counted" "1 sources are missing from the build context"
context=$work/ctx-out/context
check_ok() {
	if eval "$2"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL $1"
	fi
}
check_ok "archive in context" "cmp -s '$work/tinylib-1.0.tar.gz' '$context/download-cache/sha256/$prefix/$sum'"
check_ok "repository hard-linked" \
	"[ '$context/opam-repository/packages/tinylib/tinylib.1.0/opam' -ef '$work/ctx-repo/packages/tinylib/tinylib.1.0/opam' ]"
check_ok "repository index in context" "[ -f '$context/opam-repository/repo' ]"
(cd "$work/ctx-repo" && find . -printf '%p %y %s %m %T@\n' | sort) >"$work/ctx-repo.after"
check_ok "repository unchanged" "cmp -s '$work/ctx-repo.before' '$work/ctx-repo.after'"
check_ok "dockerfile copies archives" \
	"grep -qx 'COPY --chown=1000:1000 download-cache /home/opam/.opam/download-cache' '$work/ctx-out/tinylib.1.0.dockerfile'"
check_ok "dockerfile copies repository" \
	"grep -qx 'COPY --chown=1000:1000 opam-repository /home/opam/opam-repository' '$work/ctx-out/tinylib.1.0.dockerfile'"
check_ok "archives copied after init" \
	"grep -A1 '^RUN opam init' '$work/ctx-out/Dockerfile.001' | grep -q 'download-cache'"
check_ok "bake uses context" "grep -qF 'context = \"$context\"' '$work/ctx-out/docker-bake.hcl'"
check_ok "driver uses context" "grep -qxF \"context='$context'\" '$work/ctx-out/build-all.sh'"
touch "$context/download-cache/stale"
expect "dockerfile archive mirror rerun" 0 "$obake" dockerfile -r "$work/ctx-repo" --archive-mirror "$work/ctx-mirror" \
	-o "$work/ctx-out" tinylib
check_ok "rerun drops stale files" "[ ! -e '$context/download-cache/stale' ]"
expect "dockerfile without mirror" 0 "$obake" dockerfile -r "$work/ctx-repo" -o "$work/plain-out" tinylib
check_ok "no context without mirror" "[ ! -e '$work/plain-out/context' ]"
check_ok "plain dockerfile copies the context" \
	"grep -qx 'COPY --chown=1000:1000 . /home/opam/opam-repository' '$work/plain-out/tinylib.1.0.dockerfile'"
check_ok "plain dockerfile has no archives" "! grep -q download-cache '$work/plain-out/tinylib.1.0.dockerfile'"
expect "archive mirror not for solve" 2 "$obake" solve -r "$example" --archive-mirror "$work/ctx-mirror" tinylib

# Build-side commands: mistakes that are found before anything runs.
expect "archive mirror that does not exist" 2 "$obake" fetch -r "$example" --archive-mirror "$work/nowhere" tinylib
contains "archive mirror named" "expected a URL or an existing directory"
expect "fetch without a target" 2 "$obake" fetch -r "$example"
expect "prune of a missing store" 2 "$obake" prune --store "$work/no-store" --max-size 1G
contains "missing store named" "no store at $work/no-store"
check_ok "prune made no store" "[ ! -e '$work/no-store' ]"
expect "prune with an operand" 2 "$obake" prune --store "$work" --max-size 1G stray
expect "memory limit too small" 2 "$obake" build -r "$example" --memory 1K tinylib
expect "extra package name with a shell command" 2 "$obake" base --store "$work/base-store" \
	--extra-packages 'ocaml-nox,$(id)'
contains "invalid package named" 'invalid Debian package name "$(id)"'
touch "$work/a-file"
expect "results folder that is a file" 2 "$obake" build -r "$example" --store "$work/file-store" -o "$work/a-file" tinylib
contains "results folder named" "cannot write results into $work/a-file"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
