#!/bin/sh
# End-to-end test of `obake dockerfile` with a real BuildKit: Debian's docker.io (dockerd 20.10,
# which has BuildKit built in) builds every Dockerfile generated for examples/repo, and the test
# checks each target's build log against the outcomes in examples/repo/README.md. It then checks
# the layer depth limit on a synthetic chain of 130 packages: one RUN step per package exceeds
# dockerd's maximum layer depth, and the grouped Dockerfile builds.
#
# Runs only with OBAKE_BUILDKIT=1, because it takes minutes. It needs root and Debian's docker.io,
# containerd and debootstrap (`apt-get install docker.io debootstrap`). debootstrap downloads the
# base image's packages from the Debian mirror; the image builds themselves run with
# --network=none. The test starts its own containerd and dockerd on sockets in a temporary
# folder and stops them at exit.
#
#   OBAKE                   the obake binary (default: ./obake in the repository)
#   OBAKE_BUILDKIT_SOCKET   dockerd socket: a daemon that responds there is used, otherwise the
#                           test starts one there (default: a socket in the temporary folder)
#   OBAKE_BUILDKIT_CACHE    folder that keeps the base image's root file system tarball, so later
#                           runs skip debootstrap (default: no cache)
#   OBAKE_BUILDKIT_MIRROR   Debian mirror for debootstrap (default: the first bookworm mirror in
#                           the host's apt sources, else http://deb.debian.org/debian)
#   OBAKE_BUILDKIT_KEEP=1   keep the temporary folder with the generated files and build outputs

set -u
root=$(cd "$(dirname "$0")/.." && pwd)
obake=${OBAKE:-$root/obake}
example=$root/examples/repo
passed=0 failed=0 skipped=0

if [ "${OBAKE_BUILDKIT:-0}" != 1 ]; then
	echo "skip: the BuildKit end-to-end test runs only with OBAKE_BUILDKIT=1 (it needs root, docker.io and debootstrap, and takes minutes)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi

# Debian's client: another docker client on PATH may need the buildx plugin for BuildKit builds.
docker=/usr/bin/docker
base_image="obake-base:test"
suite=bookworm
# The packages that the generated setup step would install with apt. With them in the base image,
# that step is skipped, so the builds need no network.
include=build-essential,ca-certificates,curl,git,patch,rsync,sudo,unzip,bzip2,xz-utils,opam

work=$(mktemp -d "${TMPDIR:-/tmp}/obake-buildkit.XXXXXX") || exit 2
sock=${OBAKE_BUILDKIT_SOCKET:-$work/docker.sock}
export DOCKER_HOST="unix://$sock" DOCKER_BUILDKIT=1 BUILDKIT_PROGRESS=plain
# An empty client configuration, so the settings in ~/.docker (credential helpers, plugins) stay out.
export DOCKER_CONFIG="$work/docker-config"
mkdir -p "$DOCKER_CONFIG"
keep_work=${OBAKE_BUILDKIT_KEEP:-0}
# shellcheck source=tests/dockerd-lib.sh
. "$root/tests/dockerd-lib.sh"

# Print the first Debian mirror that the host's apt sources use for $suite, in either the one-line
# format (sources.list, *.list) or the deb822 format (*.sources).
host_debian_mirror() {
	{
		for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[ -f "$file" ] || continue
			awk -v suite="$suite" '$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) {
					while (i <= NF && $i !~ /\]$/)
						i++
					i++
				}
				if ($(i + 1) == suite)
					print $i
			}' "$file"
		done
		for file in /etc/apt/sources.list.d/*.sources; do
			[ -f "$file" ] || continue
			awk -v suite="$suite" 'function flush() {
				if (types ~ /(^|[ \t])deb([ \t]|$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uris != "") {
					split(uris, uri, " ")
					print uri[1]
				}
				types = suites = uris = enabled = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			/^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
			/^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0 }
			/^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
			/^Enabled:/ { sub(/^Enabled:[ \t]*/, ""); enabled = tolower($0) }
			END { flush() }' "$file"
		done
	} | grep -E '^(https?|file):/' | head -n 1
}

# build NAME DOCKERFILE CONTEXT: build the results stage of DOCKERFILE into $work/res/NAME, with
# BuildKit's output in $work/logs/NAME.build. Returns docker build's exit status.
build() {
	mkdir -p "$work/logs"
	"$docker" build --network=none --progress=plain -f "$2" --target results \
		--output "type=local,dest=$work/res/$1" "$3" </dev/null >"$work/logs/$1.build" 2>&1
}

# last_status LOG: the last SUCCESS, FAILED or SKIPPED line of a build log.
last_status() {
	grep -E '^(SUCCESS|FAILED|SKIPPED) ' "$1" | tail -n 1
}

echo "== prerequisites"
[ -x "$obake" ] || abort "obake binary not found at $obake: run make first, or set OBAKE"
[ "$(id -u)" -eq 0 ] || abort "not running as root: dockerd and debootstrap need root"
for tool in "$docker" dockerd containerd debootstrap; do
	command -v "$tool" >/dev/null 2>&1 ||
		abort "$tool not found: install Debian's docker.io and debootstrap (apt-get install docker.io debootstrap)"
done
ok "prerequisites found"

echo "== Docker daemon"
if "$docker" info >/dev/null 2>&1; then
	echo "using the Docker daemon already answering on $sock"
else
	# A containerd of our own, because without --containerd, dockerd 20.10 uses the system
	# containerd at /run/containerd/containerd.sock whenever one is running.
	mkdir -p "$work/containerd"
	cat >"$work/containerd/config.toml" <<EOF
version = 2
root = "$work/containerd/root"
state = "$work/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$work/containerd/opt"
EOF
	containerd --config "$work/containerd/config.toml" >"$work/containerd.log" 2>&1 &
	containerd_pid=$!
	wait_for "$containerd_pid" 30 test -S "$work/containerd/containerd.sock" ||
		start_failed containerd "$work/containerd.log" $?

	# An empty daemon configuration, because the host's /etc/docker/daemon.json may set other hosts.
	# NOTE: dockerd 20.10 still creates /etc/docker/key.json and /var/run/docker/plugins if missing.
	echo '{}' >"$work/daemon.json"
	dockerd --config-file "$work/daemon.json" --containerd "$work/containerd/containerd.sock" \
		--iptables=false --bridge=none --host "unix://$sock" --data-root "$work/docker" \
		--exec-root "$work/exec" --pidfile "$work/dockerd.pid" >"$work/dockerd.log" 2>&1 &
	dockerd_pid=$!
	wait_for "$dockerd_pid" 60 "$docker" info || start_failed "dockerd on $sock" "$work/dockerd.log" $?
fi
echo "server version $("$docker" version --format '{{.Server.Version}}')"
ok "dockerd answers"
timing "start dockerd"

echo "== base image $base_image"
cache_file=
if [ -n "${OBAKE_BUILDKIT_CACHE:-}" ]; then
	key=$(printf '%s %s' "$suite" "$include" | cksum | cut -d ' ' -f 1)
	cache_file=$OBAKE_BUILDKIT_CACHE/obake-base-$suite-$key.tar.gz
fi
imported=0
if [ -n "$cache_file" ] && [ -f "$cache_file" ]; then
	if "$docker" import "$cache_file" "$base_image" >"$work/import.log" 2>&1; then
		echo "imported the cached root file system $cache_file"
		imported=1
	else
		show "$work/import.log"
		echo "importing $cache_file failed (above); removing it and running debootstrap"
		rm -f "$cache_file"
	fi
fi
if [ "$imported" = 0 ]; then
	mirror=${OBAKE_BUILDKIT_MIRROR:-$(host_debian_mirror)}
	mirror=${mirror:-http://deb.debian.org/debian}
	rootfs=$work/rootfs
	echo "debootstrap $suite from $mirror"
	if ! debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
		show "$work/debootstrap.log"
		abort "debootstrap $suite from $mirror failed (log above)"
	fi
	# The downloaded packages and apt lists are not needed in the image.
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
	timing "debootstrap"

	if [ -n "$cache_file" ] && mkdir -p "$OBAKE_BUILDKIT_CACHE" &&
		tar -C "$rootfs" -I 'gzip -1' -cf "$cache_file.tmp.$$" . && mv "$cache_file.tmp.$$" "$cache_file"; then
		echo "cached the root file system in $cache_file"
		"$docker" import "$cache_file" "$base_image" >"$work/import.log" 2>&1
	else
		[ -n "$cache_file" ] && echo "could not write $cache_file; going on without the cache"
		rm -f "$cache_file.tmp.$$"
		tar -C "$rootfs" -c . | "$docker" import - "$base_image" >"$work/import.log" 2>&1
	fi || {
		show "$work/import.log"
		abort "docker import of the debootstrap root file system failed (log above)"
	}
	rm -rf "$rootfs"
fi
if opam_version=$("$docker" run --rm --network=none "$base_image" opam --version 2>&1); then
	ok "base image runs opam $opam_version"
else
	echo "$opam_version" | sed 's/^/  | /'
	abort "base image $base_image cannot run opam (output above)"
fi
timing "base image"

echo "== examples/repo: one build per target"
out=$work/example
if "$obake" dockerfile -r "$example" --all --base-image "$base_image" -o "$out" >"$work/obake-example.out" 2>&1; then
	ok "dockerfile --all example exits 0"
else
	show "$work/obake-example.out"
	abort "obake dockerfile --all on examples/repo failed (output above)"
fi

# Each solvable target's expected last status line, from examples/repo/README.md.
expected="beta.1.0 SUCCESS
broken.1.0 FAILED
either.1.0 SUCCESS
midlib.2.0 SUCCESS
needs-broken.1.0 SKIPPED
ocaml-base-compiler.5.3.0 SUCCESS
ocaml-config.3 SUCCESS
ocaml.5.3.0 SUCCESS
oldapi.1.0 SUCCESS
tested.1.0 SUCCESS
testkit.1.0 SUCCESS
tinylib.1.0 SUCCESS
toplib.1.0 SUCCESS"

printf '%s\n' "$expected" | cut -d ' ' -f 1 | sort >"$work/expected-targets"
sort "$out/targets.txt" >"$work/targets"
if cmp -s "$work/expected-targets" "$work/targets"; then
	ok "targets.txt lists the solvable targets"
else
	fail "targets.txt differs from the expected targets"
	diff "$work/expected-targets" "$work/targets" | sed 's/^/  | /'
fi
for name in alpha.1.0 experimental.0.1 ocaml-system.5.3.0 orphan.1.0; do
	if [ -e "$out/$name.dockerfile" ]; then
		fail "$name has no solution but got a Dockerfile"
	else
		ok "no Dockerfile for $name"
	fi
done

printf '%s\n' "$expected" >"$work/expected-status"
while read -r name status; do
	if [ ! -f "$out/$name.dockerfile" ]; then
		fail "$name: $out/$name.dockerfile not generated"
		continue
	fi
	if build "$name" "$out/$name.dockerfile" "$example"; then
		ok "$name builds"
	else
		fail "$name: docker build failed"
		show "$work/logs/$name.build"
		continue
	fi
	log=$work/res/$name/$name
	if [ ! -f "$log" ]; then
		fail "$name: build log /$name missing from the results stage"
		continue
	fi
	line=$(last_status "$log")
	if [ "$line" = "$status $name" ]; then
		ok "$name log ends with $status"
	else
		fail "$name: last status line is '$line', expected '$status $name'"
		show "$log"
	fi
done <"$work/expected-status"

broken_log=$work/res/broken.1.0/broken.1.0
if grep -q "broken: this build fails on purpose" "$broken_log" 2>/dev/null; then
	ok "broken log has the build error"
else
	fail "broken.1.0 log lacks 'broken: this build fails on purpose'"
fi
needs_log=$work/res/needs-broken.1.0/needs-broken.1.0
if grep -qx "=== needs-broken.1.0: not built because broken.1.0 failed" "$needs_log" 2>/dev/null; then
	ok "needs-broken skipped for broken"
else
	fail "needs-broken.1.0 log does not say it was skipped because broken.1.0 failed"
fi
timing "per-target builds"

echo "== examples/repo: build-all.sh"
if "$docker" buildx version >/dev/null 2>&1; then
	echo "$docker has buildx; forcing the parts mode, which this test checks"
	mode=parts
else
	mode=
fi
# run_build_all OUTPUT: run build-all.sh with Debian's client; returns its exit status.
run_build_all() {
	env ${mode:+OBAKE_BUILD_MODE=$mode} DOCKER="$docker" "$out/build-all.sh" >"$1" 2>&1
}
parts=$(cd "$out" && ls Dockerfile.[0-9]*)
# Without the build cache of the per-target builds, the parts' install steps really run.
"$docker" builder prune --all --force >/dev/null ||
	echo "docker builder prune failed; the parts build may reuse the per-target builds' cache"
if run_build_all "$work/build-all-1.out"; then
	ok "build-all.sh exits 0"
else
	fail "build-all.sh failed"
	show "$work/build-all-1.out"
fi
for part in $parts; do
	if grep -qx "$part: building" "$work/build-all-1.out"; then
		ok "build-all.sh builds $part"
	else
		fail "build-all.sh did not build $part in parts mode"
	fi
done

summary=$out/results/summary.txt
while read -r name status; do
	case $status in
	SUCCESS) word=success ;;
	FAILED) word=failure ;;
	*) word=dependency_failed ;;
	esac
	if [ "$(grep -c "^$name " "$summary" 2>/dev/null)" = 1 ] && grep -qx "$name $word" "$summary"; then
		ok "summary: $name $word"
	else
		fail "summary.txt lacks the single line '$name $word'"
	fi
done <"$work/expected-status"
if [ "$(wc -l <"$summary")" -eq "$(wc -l <"$out/targets.txt")" ]; then
	ok "summary has one line per target"
else
	fail "summary.txt has $(wc -l <"$summary") lines for $(wc -l <"$out/targets.txt") targets"
fi
cp "$summary" "$work/summary-1.txt"
timing "build-all.sh"

if run_build_all "$work/build-all-2.out"; then
	ok "build-all.sh rerun exits 0"
else
	fail "build-all.sh rerun failed"
	show "$work/build-all-2.out"
fi
for part in $parts; do
	if grep -qx "$part: built by an earlier run" "$work/build-all-2.out"; then
		ok "rerun skips $part"
	else
		fail "build-all.sh rerun did not skip $part"
	fi
done
if grep -q ": building$" "$work/build-all-2.out"; then
	fail "build-all.sh rerun built something again"
	show "$work/build-all-2.out"
else
	ok "rerun builds nothing"
fi
if cmp -s "$work/summary-1.txt" "$summary"; then
	ok "rerun summary unchanged"
else
	fail "summary.txt changed on the rerun"
	diff "$work/summary-1.txt" "$summary" | sed 's/^/  | /'
fi
timing "build-all.sh rerun"

echo "== layer depth: a chain of 130 packages"
chain=$work/chain-repo
mkdir -p "$chain/packages/ocaml/ocaml.5.3.0"
printf 'opam-version: "2.0"\n' >"$chain/repo"
printf 'opam-version: "2.0"\nsynopsis: "Stand-in compiler"\nbuild: [["true"]]\n' >"$chain/packages/ocaml/ocaml.5.3.0/opam"
previous=ocaml
i=1
while [ "$i" -le 130 ]; do
	name=$(printf 'chain-%03d' "$i")
	mkdir -p "$chain/packages/$name/$name.1"
	printf 'opam-version: "2.0"\nsynopsis: "Link %d of a dependency chain"\ndepends: ["%s"]\ninstall: [["mkdir" "-p" "%%{lib}%%/%s"]]\n' \
		"$i" "$previous" "$name" >"$chain/packages/$name/$name.1/opam"
	previous=$name
	i=$((i + 1))
done

for variant in ungrouped grouped; do
	flag=
	[ "$variant" = ungrouped ] && flag=--no-group
	if "$obake" dockerfile -r "$chain" ${flag:+"$flag"} --base-image "$base_image" -o "$work/chain-$variant" chain-130 \
		>"$work/obake-chain-$variant.out" 2>&1; then
		ok "dockerfile $variant chain exits 0"
	else
		fail "obake dockerfile for the $variant chain failed"
		show "$work/obake-chain-$variant.out"
	fi
done
ungrouped=$work/chain-ungrouped/chain-130.1.dockerfile
grouped=$work/chain-grouped/chain-130.1.dockerfile
steps=$(grep -c '^RUN obake-install' "$ungrouped" 2>/dev/null)
if [ "$steps" = 131 ]; then
	ok "--no-group has one step per package"
else
	fail "--no-group Dockerfile has ${steps:-no} install steps, expected 131 (ocaml and 130 chain packages)"
fi
steps=$(grep -c '^RUN obake-install' "$grouped" 2>/dev/null)
if [ -n "$steps" ] && [ "$steps" -gt 0 ] && [ "$steps" -lt 131 ]; then
	ok "grouped Dockerfile has $steps steps"
else
	fail "grouped Dockerfile has ${steps:-no} install steps, expected between 1 and 130"
fi

# The two builds share no install step, so they run side by side.
build chain-ungrouped "$ungrouped" "$chain" &
ungrouped_pid=$!
build chain-grouped "$grouped" "$chain" &
grouped_pid=$!
wait "$ungrouped_pid"
ungrouped_status=$?
wait "$grouped_pid"
grouped_status=$?

if [ "$ungrouped_status" -ne 0 ]; then
	ok "--no-group chain build fails"
else
	fail "--no-group chain build succeeded; expected it to exceed the maximum layer depth"
fi
if grep -q "max depth exceeded" "$work/logs/chain-ungrouped.build"; then
	ok "--no-group failure is max depth exceeded"
else
	fail "--no-group chain build output lacks 'max depth exceeded'"
	show "$work/logs/chain-ungrouped.build"
fi
if [ "$grouped_status" -eq 0 ]; then
	ok "grouped chain builds"
else
	fail "grouped chain build failed"
	show "$work/logs/chain-grouped.build"
fi
chain_log=$work/res/chain-grouped/chain-130.1
if [ "$(tail -n 1 "$chain_log" 2>/dev/null)" = "SUCCESS chain-130.1" ]; then
	ok "grouped chain log ends with SUCCESS chain-130.1"
else
	fail "grouped chain log does not end with 'SUCCESS chain-130.1'"
	[ -f "$chain_log" ] && show "$chain_log"
fi
successes=$(grep -c '^SUCCESS ' "$chain_log" 2>/dev/null)
if [ "$successes" = 131 ]; then
	ok "grouped chain installs all 131 packages"
else
	fail "grouped chain log has ${successes:-no} SUCCESS lines, expected 131"
fi
timing "layer depth builds"

now=$(date +%s)
echo "time: total: $((now - started)) s"
finish
