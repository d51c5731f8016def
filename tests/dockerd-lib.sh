# Shared by the tests that run a private dockerd (tests/buildkit.sh, tests/slice-buildkit.sh):
# counting results, timing phases, and starting and stopping the daemons. The test sets $work
# (its temporary folder) and $keep_work (1 to keep that folder) before sourcing this file, and
# $passed, $failed and $skipped start at 0.
# shellcheck shell=sh disable=SC2154 # work and skipped are the sourcing test's

containerd_pid='' dockerd_pid=''

ok() {
	passed=$((passed + 1))
	echo "ok $1"
}

fail() {
	failed=$((failed + 1))
	echo "FAIL $1"
}

finish() {
	echo "$passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
	exit
}

# abort MESSAGE: count a failure that stops the test, and end it.
abort() {
	fail "$1"
	finish
}

# show FILE: print the last lines of FILE, indented, to explain a failure.
show() {
	tail -n 30 "$1" | sed 's/^/  | /'
}

started=$(date +%s)
phase_started=$started

# timing PHASE: print the seconds since the previous call.
timing() {
	now=$(date +%s)
	echo "time: $1: $((now - phase_started)) s"
	phase_started=$now
}

# shellcheck disable=SC2317 # is_running, stop and cleanup run from the EXIT trap.
is_running() {
	# The state is the field after the command name in parentheses, and Z marks an unreaped zombie.
	state=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "$state" != Z ]
}

# stop PID NAME: SIGTERM, then SIGKILL if PID is still running after 30 seconds.
# shellcheck disable=SC2317
stop() {
	kill -TERM "$1" 2>/dev/null
	i=0
	while is_running "$1" && [ "$i" -lt 30 ]; do
		sleep 1
		i=$((i + 1))
	done
	if is_running "$1"; then
		echo "$2 (pid $1) did not stop within 30 s; killing it"
		kill -KILL "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
}

# shellcheck disable=SC2317
cleanup() {
	[ -n "$dockerd_pid" ] && stop "$dockerd_pid" dockerd
	[ -n "$containerd_pid" ] && stop "$containerd_pid" containerd
	# Mounts left under the temporary folder (a killed daemon's overlays, a chroot's /proc and /dev)
	# make rm -rf fail until they are unmounted.
	awk -v dir="$work/" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r mount; do
		umount "$mount" 2>/dev/null || umount -l "$mount"
	done
	if [ "${keep_work:-0}" = 1 ]; then
		echo "kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for PID SECONDS COMMAND...: run COMMAND once a second until it succeeds. Returns 1 after
# SECONDS, or 2 as soon as the daemon PID has exited.
wait_for() {
	pid=$1 limit=$2
	shift 2
	i=0
	until "$@" >/dev/null 2>&1; do
		is_running "$pid" || return 2
		i=$((i + 1))
		[ "$i" -ge "$limit" ] && return 1
		sleep 1
	done
}

# start_failed NAME LOG STATUS: end the test after wait_for returned STATUS for daemon NAME.
start_failed() {
	show "$2"
	if [ "$3" -eq 2 ]; then
		abort "$1 exited during startup (log above)"
	fi
	abort "$1 did not start within the time limit (log above)"
}

