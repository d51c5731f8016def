#!/bin/sh
# End-to-end test of `obake build`: a real Debian base made with debootstrap, OCaml from Debian's
# ocaml-nox through the example repository's ocaml-system package, a source archive fetched through
# a file:// URL, and builds by real opam in runc. Checks every target's status, that a second run
# builds nothing, that a run killed with SIGKILL and run again ends with the same results, and that
# builds cannot reach the network, write outside their prefix or read the host's files.
#
# It needs root, debootstrap, runc and Debian's archive (for the base), so it runs only with
# OBAKE_NATIVE=1 (CI sets it); otherwise it reports one skipped test.
#
#   OBAKE              the obake binary (default: ./obake)
#   OBAKE_NATIVE_STORE a store to keep between runs (default: a temporary one)

set -u
root=$(cd "$(dirname "$0")/.." && pwd)
obake=${OBAKE:-$root/obake}
passed=0 failed=0

if [ "${OBAKE_NATIVE:-}" != 1 ]; then
	echo "native-build: skipped: set OBAKE_NATIVE=1 to run it (needs root, debootstrap, runc and Debian's archive)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/obake-native.XXXXXX")
trap 'rm -rf "$work"' EXIT
store=${OBAKE_NATIVE_STORE:-$work/store}
repo=$work/repo
out=$work/out
mkdir -p "$out"

ok() { passed=$((passed + 1)); echo "ok $1"; }
not_ok() { failed=$((failed + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else not_ok "$1"; fi; }

# The example repository, with a source archive for tinylib and three packages that try to leave
# their sandbox.
cp -R "$root/examples/repo" "$repo"
mkdir -p "$work/src/tinylib-1.0"
echo "from the source archive" >"$work/src/tinylib-1.0/README"
tar -C "$work/src" -czf "$work/tinylib-1.0.tar.gz" tinylib-1.0
sum=$(sha256sum "$work/tinylib-1.0.tar.gz" | cut -d' ' -f1)
cat >>"$repo/packages/tinylib/tinylib.1.0/opam" <<EOT
url {
  src: "file://$work/tinylib-1.0.tar.gz"
  checksum: "sha256=$sum"
}
EOT
sed -i 's|\["cp" "VERSION" "%{lib}%/tinylib/VERSION"\]|["cp" "VERSION" "README" "%{lib}%/tinylib/"]|' \
	"$repo/packages/tinylib/tinylib.1.0/opam"
host_secret=$work/host-secret
echo secret >"$host_secret"
add_probe() {
	mkdir -p "$repo/packages/$1/$1.1"
	printf 'opam-version: "2.0"\nsynopsis: "%s"\ndepends: ["ocaml"]\nbuild: [["sh" "-c" "%s"]]\n' "$2" "$3" \
		>"$repo/packages/$1/$1.1/opam"
}
add_probe reach-network "tries to reach the network" "curl -s --max-time 5 -o /dev/null http://deb.debian.org/"
add_probe write-outside "tries to write outside its prefix" "echo x > /etc/obake-escape"
add_probe read-host "tries to read a file of the host" "cat $host_secret"
add_probe slow "takes a while" "sleep 4"
# Two packages with depexts: one the base has (Debian's ocaml-nox), one no Debian release has.
add_probe has-system "needs a system package the base has" "true"
echo 'depexts: [["ocaml-nox"] {os-family = "debian"}]' >>"$repo/packages/has-system/has-system.1/opam"
add_probe lacks-system "needs a system package the base lacks" "true"
echo 'depexts: [["obake-no-such-package"] {os-family = "debian"}]' >>"$repo/packages/lacks-system/lacks-system.1/opam"

build() {
	"$obake" build -r "$repo" --store "$store" --extra-packages ocaml-nox --ocaml 4.13.1 \
		--var sys-ocaml-version=4.13.1 -o "$out" -j 2 "$@"
}
# Print "package status failed_dependency" per target of $out/results.json (written with one
# field per line by obake), without needing a JSON tool.
statuses() {
	awk -F'"' '
		/"package":/ { if (p != "") print p, s, f; p = $4; s = ""; f = "" }
		/"status":/ { s = $4 }
		/"failed_dependency":/ { f = $4 }
		END { if (p != "") print p, s, f }' "$out/results.json"
}

echo "== base (debootstrap the first time, a few minutes)"
start=$(date +%s)
build --all >"$work/first.log" 2>&1
echo "first run: $(($(date +%s) - start)) s"
tail -n 3 "$work/first.log"
statuses >"$work/first.status"
cat "$work/first.status"

expect() { check "$1 is $2" "grep -qx '$1 $2 *[^ ]*' '$work/first.status'"; }
expect toplib.1.0 success
expect midlib.2.0 success
expect ocaml-system.4.13.1 success
expect tinylib.1.0 success
expect broken.1.0 failure
expect needs-broken.1.0 dependency_failed
check "needs-broken names broken" "grep -q '^needs-broken.1.0 dependency_failed broken.1.0' '$work/first.status'"
expect orphan.1.0 no_solution
expect reach-network.1 failure
expect write-outside.1 failure
expect read-host.1 failure
check "host unchanged by write-outside" "[ ! -e /etc/obake-escape ]"
expect has-system.1 success
expect lacks-system.1 failure
check "the missing system package is named in the log" \
	"grep -rqs 'system packages that the base does not have: obake-no-such-package' '$store'/*/*/build.log"
check "tinylib built from its archive" "find '$store' -path '*lib/tinylib/README' | grep -q ."
check "ocaml-system used Debian's compiler" "grep -rq 'ocaml-system' '$out/results.json'"

echo "== second run: everything from the store"
start=$(date +%s)
build --all >"$work/second.log" 2>&1
elapsed=$(($(date +%s) - start))
tail -n 1 "$work/second.log"
check "second run builds nothing" "grep -q 'layers: 0 built' '$work/second.log'"
check "second run under 2 s ($elapsed s)" "[ $elapsed -le 2 ]"

echo "== a run killed with SIGKILL, then run again"
killed_store=$work/killed-store
cp -al "$store/bases" "$work/bases-copy" 2>/dev/null
mkdir -p "$killed_store" && mv "$work/bases-copy" "$killed_store/bases"
"$obake" build -r "$repo" --store "$killed_store" --extra-packages ocaml-nox --ocaml 4.13.1 \
	--var sys-ocaml-version=4.13.1 -o "$work/killed-out" -j 2 --all >/dev/null 2>&1 &
pid=$!
sleep 2
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
check "no half-published layer after SIGKILL" \
	"! find '$killed_store' -maxdepth 2 -name 'tmp-*' -newer '$repo' | xargs -r -I{} test -e {}/layer.json"
"$obake" build -r "$repo" --store "$killed_store" --extra-packages ocaml-nox --ocaml 4.13.1 \
	--var sys-ocaml-version=4.13.1 -o "$work/killed-out" -j 2 --all >"$work/rerun.log" 2>&1
check "the rerun stopped the killed run's containers" "! ls /run/runc 2>/dev/null | grep -q '^obake-$pid-'"
out_saved=$out
out=$work/killed-out
statuses >"$work/rerun.status"
out=$out_saved
check "rerun after SIGKILL has the same results" "cmp -s '$work/first.status' '$work/rerun.status'"

echo "== a package whose files cannot be read stops only its own targets"
mkdir -p "$repo/packages/badfiles/badfiles.1/files"
printf 'opam-version: "2.0"\ndepends: ["ocaml"]\n' >"$repo/packages/badfiles/badfiles.1/opam"
ln -s /root "$repo/packages/badfiles/badfiles.1/files/outside"
build --dry-run badfiles toplib >"$work/badfiles.log" 2>&1
statuses >"$work/badfiles.status"
check "the package with unreadable files fails" "grep -q '^badfiles.1 failure' '$work/badfiles.status'"
check "the other target is still reported from the store" "grep -q '^toplib.1.0 success' '$work/badfiles.status'"
check "the reason is in results.json" "grep -q '\"error\": \"cannot' '$out/results.json'"
rm -rf "$repo/packages/badfiles"

echo "== a source that cannot be fetched yet"
mkdir -p "$work/late/late-1" "$repo/packages/late-source/late-source.1"
echo "arrives late" >"$work/late/late-1/README"
tar -C "$work/late" -czf "$work/late-1.tar.gz" late-1
late_sum=$(sha256sum "$work/late-1.tar.gz" | cut -d' ' -f1)
mv "$work/late-1.tar.gz" "$work/late-1.tar.gz.later"
cat >"$repo/packages/late-source/late-source.1/opam" <<EOT
opam-version: "2.0"
depends: ["ocaml"]
build: [["cat" "README"]]
url {
  src: "file://$work/late-1.tar.gz"
  checksum: "sha256=$late_sum"
}
EOT
build late-source >"$work/late.log" 2>&1
check "a package whose source is missing fails" "grep -q '\"status\": \"failure\"' '$out/results.json'"
check "the failure says the source could not be fetched" "grep -q 'sources could not be fetched' '$out/results.json'"
mv "$work/late-1.tar.gz.later" "$work/late-1.tar.gz"
build late-source >"$work/late2.log" 2>&1
check "once the source is there, the next run builds it" "grep -q '\"status\": \"success\"' '$out/results.json'"
rm -rf "$repo/packages/late-source"

echo "== a chain deeper than the lower-layer limit, and a layer lost from the store"
# OBAKE_OVERLAY_MAX_LOWER=8 makes a 24-package chain go through the merging that overlayfs's
# 500-layer limit needs in real builds. Each link's build command checks that the files of every
# layer below it are there, merged or not.
chain=$work/chain
mkdir -p "$chain/packages"
echo 'opam-version: "2.0"' >"$chain/repo"
# A synopsis unique to this run gives new layer keys, so a kept store (OBAKE_NATIVE_STORE) builds them too.
nonce=$(date +%s%N)
for k in $(seq 1 24); do
	mkdir -p "$chain/packages/link-$k/link-$k.1"
	{
		echo 'opam-version: "2.0"'
		echo "synopsis: \"link $k of chain $nonce\""
		[ "$k" -gt 1 ] && echo "depends: [\"link-$((k - 1))\"]"
	} >"$chain/packages/link-$k/link-$k.1/opam"
done
chain_build() {
	# shellcheck disable=SC2016 # expanded in the container
	OBAKE_OVERLAY_MAX_LOWER=8 OBAKE_BUILD_COMMAND='k=${OBAKE_PACKAGE#link-}; k=${k%.1};
		d=$HOME/.opam/default/lib/chain; mkdir -p "$d" && touch "$d/$OBAKE_PACKAGE" &&
		test "$(ls "$d" | wc -l)" -eq "$k"' \
		"$obake" build -r "$chain" --store "$store" --extra-packages ocaml-nox -o "$work/chain-out" -j 2 \
		link-24 >"$work/chain.log" 2>&1
}
chain_build
check "a 24-layer chain builds with 8 lower layers at most" "grep -q 'layers: 24 built' '$work/chain.log'"
top_log=$(sed -n 's/.*"log": "\(.*\)".*/\1/p' "$work/chain-out/results.json")
check "the top link's build merged its deepest layers" "grep -q 'the deepest 17 of them merged into one' '$top_log'"
# The newest link-12 layer: a kept store also contains those of earlier runs.
lost=$(grep -l '"package": "link-12.1"' "$store"/*/*/layer.json | xargs ls -t | head -n 1)
rm -rf "$(dirname "$lost")"
rm -rf "$work/chain-out"
chain_build
check "a layer lost from the store is rebuilt, and only it" "grep -q 'layers: 1 built, 23 cached' '$work/chain.log'"
check "the chain's target still succeeds" "grep -q '\"status\": \"success\"' '$work/chain-out/results.json'"

echo "== Ctrl-C during a build"
sed -i "s/of chain $nonce/of chain $nonce, interrupted/" "$chain/packages/link-1/link-1.1/opam"
OBAKE_BUILD_COMMAND='sleep 60' "$obake" build -r "$chain" --store "$store" --extra-packages ocaml-nox \
	-o "$work/chain-out" link-1 >"$work/interrupt.log" 2>&1 &
pid=$!
sleep 3
start=$(date +%s)
kill -INT "$pid"
wait "$pid"
code=$?
elapsed=$(($(date +%s) - start))
check "an interrupted build exits with status 130 ($code)" "[ $code -eq 130 ]"
check "an interrupted build stops within 10 s ($elapsed s)" "[ $elapsed -le 10 ]"
check "an interrupted build says how to go on" "grep -q 'interrupted; published layers are kept' '$work/interrupt.log'"
check "an interrupted build leaves no temporary layer" "! ls -d '$store'/*/tmp-* 2>/dev/null | grep -q ."

echo "== a build past its time limit"
sed -i "s/of chain $nonce, interrupted/of chain $nonce, too slow/" "$chain/packages/link-1/link-1.1/opam"
OBAKE_BUILD_COMMAND='sleep 60' "$obake" build -r "$chain" --store "$store" --extra-packages ocaml-nox \
	--timeout 2 -o "$work/slow-out" link-1 >"$work/timeout.log" 2>&1
slow_log=$(sed -n 's/.*"log": "\(.*\)".*/\1/p' "$work/slow-out/results.json")
check "a build past --timeout is a failure" "grep -q '\"status\": \"failure\"' '$work/slow-out/results.json'"
check "its log is kept and gives the time limit" "grep -q 'killed after the 2-second time limit' '$slow_log'"

echo "== prune while a build uses the layers below it"
prune_store=$work/prune-store
mkdir -p "$prune_store"
cp -al "$store/bases" "$prune_store/bases"
sed -i "s/of chain $nonce, too slow/of chain $nonce, pruned/" "$chain/packages/link-1/link-1.1/opam"
OBAKE_BUILD_COMMAND='true' "$obake" build -r "$chain" --store "$prune_store" --extra-packages ocaml-nox \
	-o "$work/prune-out" link-1 >/dev/null 2>&1
# shellcheck disable=SC2016 # expanded in the container
OBAKE_BUILD_COMMAND='sleep 6; test -d $HOME/.opam/default/lib/chain || true' "$obake" build -r "$chain" \
	--store "$prune_store" --extra-packages ocaml-nox -o "$work/prune-out" link-2 >"$work/prune-build.log" 2>&1 &
pid=$!
sleep 3
"$obake" prune --store "$prune_store" --max-size 1K >"$work/prune.log" 2>&1
wait "$pid"
check "a build goes on while prune runs" "grep -q '\"status\": \"success\"' '$work/prune-out/results.json'"
check "prune leaves the layer a build uses" "grep -rqs '\"package\": \"link-1.1\"' '$prune_store'/*/*/layer.json"

echo "== real packages from the offline slice of opam-repository"
slice=${OBAKE_SHARED_DATA:-$root/../shared/data}/opam-universe-offline-debian12.tar.zst
if [ -f "$slice" ]; then
	mkdir -p "$work/slice"
	tar -C "$work/slice" -I zstd -xf "$slice"
	start=$(date +%s)
	"$obake" build -r "$work/slice/repo" --store "$store" --extra-packages ocaml-nox --ocaml 4.13.1 \
		--os-version 12 --opam-version 2.1.2 --sys-ocaml-version 4.13.1 --sys-ocaml-arch x86_64 \
		--sys-ocaml-cc cc --sys-ocaml-libc libc --archive-mirror "$work/slice/cache" -o "$work/slice-out" -j 2 \
		dune dune-configurator re cmdliner cppo >"$work/slice.log" 2>&1
	echo "slice: $(($(date +%s) - start)) s"
	tail -n 2 "$work/slice.log"
	out_saved=$out
	out=$work/slice-out
	statuses >"$work/slice.status"
	out=$out_saved
	for target in dune.2.9.3 re.1.10.4 cmdliner.1.1.1 cppo.1.6.9; do
		check "$target builds from the mirror, offline" "grep -q '^$target success' '$work/slice.status'"
	done
else
	echo "slice archive not found at $slice; skipping the real packages"
fi

echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
