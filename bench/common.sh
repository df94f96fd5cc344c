# Sourced by the proxy-family bench scripts (proxy.sh, cookie.sh, proxy-udp.sh, latency.sh):
# the parts that must behave the same in each, so a fix to one (signal handling, clean-up)
# reaches all. The caller sets `self` (its own resolved path) and has cd'ed to the repository.

# Re-runs the script in its own session, hence its own autogroup, so the nice value the script
# sets is ours alone (not the caller's shell, nor a build it runs in the background). Returns
# in the child; in the parent, waits and exits with the child's status.
bench_own_session() {
  if [ -z "${RVS_BENCH_CHILD:-}" ] && [ "${RVS_BENCH_NICE:--15}" != 0 ] && command -v setsid >/dev/null; then
    RVS_BENCH_CHILD=1 setsid --wait "$self" "$@" &
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null || true' INT TERM
    rc=0
    wait "$child" || rc=$?
    # A trapped signal interrupts the first wait; the child is then cleaning up.
    wait "$child" 2>/dev/null || true
    exit "$rc"
  fi
}

# A work directory `$work` (mode 755: nginx workers, user www-data, read files from it), the
# array `pids` of processes to stop, and traps that stop them and remove `$work` on any exit.
bench_workdir() {
  work=$(mktemp -d "/tmp/rvs-bench-$1.XXXXXX")
  chmod 755 "$work"
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# need PROGRAM DEBIAN_PACKAGE: exit 2 with the install command when PROGRAM is missing.
need() {
  command -v "$1" >/dev/null || {
    echo "bench/$(basename "$self"): $1 is missing (apt-get install -y $2)" >&2
    exit 2
  }
}
