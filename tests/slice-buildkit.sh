#!/bin/sh
# Native route against BuildKit on real packages. A few targets of the offline slice of
# opam-repository (Debian 12's OCaml 4.13.1 through ocaml-system, opam 2.1.2) are built twice: by
# `obake build`, and by the Dockerfiles of `obake dockerfile --archive-mirror` run with
# `docker build --network=none`. Every target must end with the same status on both routes.
# conf-pkg-config fails on both (its system package is not in the base) and conf-alsa, which
# depends on it, is not built. conf-boost has no build step, only a depext (libboost-dev) the base
# lacks: opam in the image stops at its depext check, and the native engine makes the same check.
#
# Runs only with OBAKE_SLICE=1, because it takes minutes. It needs root, Debian's docker.io,
# containerd, debootstrap and runc, zstd, and the slice archive
# opam-universe-offline-debian12.tar.zst in $OBAKE_SHARED_DATA (default: shared/data beside this
# checkout). Only debootstrap and apt reach the network, for Debian's archive: the image builds run
# with --network=none and the native builds in an empty network namespace. The test starts its own
# containerd and dockerd on sockets in a temporary folder and stops them at exit.
#
#   OBAKE                 the obake binary (default: ./obake in the repository)
#   OBAKE_SLICE_TARGETS   targets to build (default: dune re cmdliner conf-pkg-config conf-alsa conf-boost)
#   OBAKE_SLICE_DIR       an extracted slice to use instead of extracting the archive
#   OBAKE_SLICE_STORE     obake store for the native builds (default: a temporary one)
#   OBAKE_SLICE_CACHE     folder that keeps the base image's root file system tarball between runs
#   OBAKE_SLICE_MIRROR    Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   OBAKE_SLICE_KEEP=1    keep the temporary folder with the generated files and logs

set -u
root=$(cd "$(dirname "$0")/.." && pwd)
obake=${OBAKE:-$root/obake}
passed=0 failed=0 skipped=0

if [ "${OBAKE_SLICE:-0}" != 1 ]; then
	echo "skip: the slice BuildKit test runs only with OBAKE_SLICE=1 (it needs root, docker.io, debootstrap, runc and the slice archive, and takes minutes)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi

# Debian's client, which talks to dockerd 20.10 without the buildx plugin.
docker=/usr/bin/docker
base_image="obake-slice-base:test"
suite=bookworm
mirror=${OBAKE_SLICE_MIRROR:-http://deb.debian.org/debian}
# What `obake base` installs, so that both routes start from the same system packages. ocaml-nox and
# autoconf come afterwards with apt, because debootstrap fails to configure Debian 12's ocaml-nox.
include=build-essential,ca-certificates,curl,git,patch,rsync,sudo,unzip,bzip2,xz-utils,opam
extra="ocaml-nox autoconf"
targets=${OBAKE_SLICE_TARGETS:-dune re cmdliner conf-pkg-config conf-alsa conf-boost}
# The environment of the slice, as its solvable.tsv was made.
environment="--ocaml 4.13.1 --os-version 12 --opam-version 2.1.2 --sys-ocaml-version 4.13.1 --sys-ocaml-arch x86_64
	--sys-ocaml-cc cc --sys-ocaml-libc libc"

work=$(mktemp -d "${TMPDIR:-/tmp}/obake-slice.XXXXXX") || exit 2
sock=$work/docker.sock
export DOCKER_HOST="unix://$sock" DOCKER_BUILDKIT=1 BUILDKIT_PROGRESS=plain
# An empty client configuration, so the settings in ~/.docker (credential helpers, plugins) stay out.
export DOCKER_CONFIG="$work/docker-config"
mkdir -p "$DOCKER_CONFIG"
keep_work=${OBAKE_SLICE_KEEP:-0}
# shellcheck source=tests/dockerd-lib.sh
. "$root/tests/dockerd-lib.sh"

# statuses RESULTS_JSON: "package status" per target of a results.json, which obake writes with
# one field per line, so no JSON tool is needed.
statuses() {
	awk -F'"' '
		/"package":/ { if (p != "") print p, s; p = $4; s = "" }
		/"status":/ { s = $4 }
		END { if (p != "") print p, s }' "$1"
}

echo "== prerequisites"
[ -x "$obake" ] || abort "obake binary not found at $obake: run make first, or set OBAKE"
[ "$(id -u)" -eq 0 ] || abort "not running as root: dockerd, debootstrap and obake build need root"
for tool in "$docker" dockerd containerd debootstrap runc zstd; do
	command -v "$tool" >/dev/null 2>&1 ||
		abort "$tool not found: install Debian's docker.io, debootstrap, runc and zstd"
done
ok "prerequisites found"

echo "== slice"
slice=${OBAKE_SLICE_DIR:-}
if [ -z "$slice" ]; then
	archive=${OBAKE_SHARED_DATA:-$root/../shared/data}/opam-universe-offline-debian12.tar.zst
	[ -f "$archive" ] || abort "slice archive not found at $archive: set OBAKE_SHARED_DATA or OBAKE_SLICE_DIR"
	slice=$work/slice
	mkdir -p "$slice"
	zstd -dc "$archive" | tar -x -C "$slice" || abort "cannot extract $archive"
fi
if [ ! -d "$slice/repo/packages" ] || [ ! -d "$slice/cache" ]; then
	abort "$slice lacks repo/packages or cache"
fi
ok "slice at $slice"

echo "== Docker daemon"
# A containerd of our own, because without --containerd, dockerd 20.10 uses the system containerd
# at /run/containerd/containerd.sock whenever one is running.
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
echo '{}' >"$work/daemon.json"
dockerd --config-file "$work/daemon.json" --containerd "$work/containerd/containerd.sock" \
	--iptables=false --bridge=none --host "unix://$sock" --data-root "$work/docker" \
	--exec-root "$work/exec" --pidfile "$work/dockerd.pid" >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
wait_for "$dockerd_pid" 60 "$docker" info || start_failed "dockerd on $sock" "$work/dockerd.log" $?
ok "dockerd $("$docker" version --format '{{.Server.Version}}') answers"
timing "start dockerd"

echo "== base image $base_image"
cache_file=
if [ -n "${OBAKE_SLICE_CACHE:-}" ]; then
	key=$(printf '%s %s %s %s' "$suite" "$mirror" "$include" "$extra" | cksum | cut -d ' ' -f 1)
	cache_file=$OBAKE_SLICE_CACHE/obake-slice-base-$suite-$key.tar.gz
fi
if [ -z "$cache_file" ] || [ ! -f "$cache_file" ]; then
	rootfs=$work/rootfs
	tarball=${cache_file:-$work/base.tar.gz}
	echo "debootstrap $suite from $mirror, then apt-get install $extra"
	debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" >"$work/base.log" 2>&1 || {
		show "$work/base.log"
		abort "debootstrap $suite from $mirror failed (log above)"
	}
	if ! mount -t proc proc "$rootfs/proc" || ! mount --rbind /dev "$rootfs/dev"; then
		abort "cannot mount /proc and /dev in $rootfs"
	fi
	cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
	chroot "$rootfs" /bin/sh -c "export DEBIAN_FRONTEND=noninteractive && apt-get update &&
		apt-get install -y --no-install-recommends $extra && apt-get clean" >>"$work/base.log" 2>&1
	status=$?
	umount -l "$rootfs/dev"
	umount "$rootfs/proc"
	[ "$status" -eq 0 ] || {
		show "$work/base.log"
		abort "apt-get install $extra in the base failed (log above)"
	}
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
	[ -n "$cache_file" ] && mkdir -p "$OBAKE_SLICE_CACHE"
	if ! tar -C "$rootfs" -I 'gzip -1' -cf "$tarball.tmp.$$" . || ! mv "$tarball.tmp.$$" "$tarball"; then
		abort "cannot write the base tarball $tarball"
	fi
	rm -rf "$rootfs"
	cache_file=$tarball
fi
"$docker" import "$cache_file" "$base_image" >"$work/import.log" 2>&1 || {
	show "$work/import.log"
	abort "docker import $cache_file failed (log above)"
}
versions=$("$docker" run --rm --network=none "$base_image" sh -c 'opam --version && ocamlc -version' 2>&1 | tr '\n' ' ')
case $versions in
"2.1.2 4.13.1 ") ok "base image has opam 2.1.2 and OCaml 4.13.1" ;;
*) abort "base image $base_image reports '$versions', expected opam 2.1.2 and OCaml 4.13.1" ;;
esac
timing "base image"

echo "== native route: obake build $targets"
store=${OBAKE_SLICE_STORE:-$work/store}
# shellcheck disable=SC2086 # $environment and $targets are word lists
"$obake" build -r "$slice/repo" --store "$store" --extra-packages ocaml-nox,autoconf $environment \
	--archive-mirror "$slice/cache" -o "$work/native" -j 2 $targets >"$work/native.log" 2>&1
tail -n 1 "$work/native.log"
if [ -f "$work/native/results.json" ]; then
	ok "native results written"
else
	show "$work/native.log"
	abort "obake build wrote no results.json (log above)"
fi
statuses "$work/native/results.json" | sort >"$work/native.status"
timing "native builds"

echo "== BuildKit route: obake dockerfile --archive-mirror, docker build --network=none"
out=$work/dockerfiles
# shellcheck disable=SC2086
if "$obake" dockerfile -r "$slice/repo" $environment --archive-mirror "$slice/cache" --base-image "$base_image" \
	-o "$out" $targets >"$work/dockerfile.log" 2>&1; then
	ok "dockerfile --archive-mirror exits 0"
else
	show "$work/dockerfile.log"
	abort "obake dockerfile --archive-mirror failed (log above)"
fi
find "$slice/repo" -newer "$work/native.log" >"$work/repo-changed.after"
if [ ! -s "$work/repo-changed.after" ]; then
	ok "dockerfile left the repository unchanged"
else
	fail "dockerfile changed files in $slice/repo"
	head -n 5 "$work/repo-changed.after" | sed 's/^/  | /'
fi
if [ -n "$(find "$out/context/download-cache" -type f | head -n 1)" ]; then
	ok "context holds archives"
else
	fail "$out/context/download-cache holds no archive"
fi
# parts mode: one `docker build` per combined Dockerfile, with the default --network=none.
if OBAKE_BUILD_MODE=parts DOCKER="$docker" "$out/build-all.sh" >"$work/build-all.log" 2>&1 </dev/null; then
	ok "build-all.sh exits 0"
else
	fail "build-all.sh failed"
	show "$work/build-all.log"
fi
timing "BuildKit builds"

echo "== statuses compared"
sort "$out/results/summary.txt" >"$work/buildkit.status"
while read -r target status; do
	native=$(awk -v t="$target" '$1 == t { print $2 }' "$work/native.status")
	log=$out/results/$target
	if [ "$status" = "$native" ]; then
		ok "$target: $status on both routes"
	else
		fail "$target: BuildKit $status, native ${native:-missing}"
		[ -f "$log" ] && show "$log"
	fi
done <"$work/buildkit.status"
# Targets without a solution get no Dockerfile; every other native target must have been compared.
grep -v ' no_solution$' "$work/native.status" | cut -d ' ' -f 1 >"$work/native.targets"
cut -d ' ' -f 1 "$work/buildkit.status" >"$work/buildkit.targets"
if cmp -s "$work/native.targets" "$work/buildkit.targets"; then
	ok "both routes built the same targets"
else
	fail "the routes built different targets"
	diff "$work/native.targets" "$work/buildkit.targets" | sed 's/^/  | /'
fi

# The sources came from the context's download cache: opam prints "(cached)" where it would download.
dune=$(grep '^dune\.' "$work/buildkit.targets" | head -n 1)
if [ -n "$dune" ] && grep -q "retrieved $dune .*(cached)" "$out/results/$dune"; then
	ok "$dune source taken from the download cache"
elif [ -z "$dune" ]; then
	skipped=$((skipped + 1))
	echo "skip: no dune target, so the download cache check does not apply"
else
	fail "$dune log lacks 'retrieved $dune ... (cached)'"
	[ -f "$out/results/$dune" ] && grep -i "retrieved\|download" "$out/results/$dune" | sed 's/^/  | /'
fi
finish
