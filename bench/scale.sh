#!/usr/bin/env bash
# Large tables: how long `rvsadm -R` takes to load N services x R real servers into a fresh
# rvsd, what an idle rvsd with that table costs, and how long the listings take.
#
# Usage: bench/scale.sh [N ...]        (default: 1000 5000 10000 50000)
#   REALS=10        real servers per service
#   IDLE=60         seconds over which the idle rvsd's CPU is measured (after the load)
#   WORKERS=1       socket proxy workers (rvsd --workers): each proxied service holds one
#                   listening socket per worker, so N services need N x WORKERS descriptors
#                   under the hard RLIMIT_NOFILE (rvsd raises its soft limit to it at start)
#   RVS_BENCH_BIN=DIR  use DIR/rvsd and DIR/rvsadm instead of building them
# The services are TCP on loopback addresses 127.100.x.y:80 (served by the socket proxy),
# the real servers 10.x.y.z:80 masqueraded (-m); nothing connects. A size whose listening
# sockets would not fit under the hard descriptor limit is loaded as firewall-mark services
# instead (-f, kind "fwm" in the table): same table and same -R path, no listener, and one
# "not served without the packet plane" warning per service (rvsd logs it, rvsadm prints it).
# Idle CPU is rvsd's own utime + stime from /proc/PID/stat over IDLE seconds, so the
# machine's load changes it little; the load is printed anyway.
# Prints one markdown table row per N; paste with the command and the load into
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000 5000 10000 50000)
REALS=${REALS:-10}
IDLE=${IDLE:-60}
WORKERS=${WORKERS:-1}
BIN=${RVS_BENCH_BIN:-target/release}
[ -n "${RVS_BENCH_BIN:-}" ] || cargo build --release -q -p rvsd -p rvsadm
work=$(mktemp -d /tmp/rvs-bench-scale.XXXXXX)
pid=
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# N services, REALS real servers each, in `ipvsadm -R` syntax: TCP services on loopback
# addresses (kind tcp), or firewall-mark services 1..N (kind fwm).
gen() {
  awk -v n="$1" -v r="$REALS" -v kind="$2" 'BEGIN {
    for (i = 0; i < n; i++) {
      if (kind == "fwm")
        svc = sprintf("-f %d", i + 1)
      else
        svc = sprintf("-t 127.100.%d.%d:80", int(i / 250), i % 250 + 1)
      printf "-A %s -s wlc\n", svc
      for (j = 0; j < r; j++)
        printf "-a %s -r 10.%d.%d.%d:80 -m -w 1\n", svc, int(i / 250) % 250, i % 250, j + 1
    }
  }'
}

# Seconds (3 decimals) a command takes, its output discarded.
secs() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null
  t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
}

# utime + stime of a process, in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

hz=$(getconf CLK_TCK)
echo "load: $(cut -d' ' -f1-3 /proc/loadavg), nproc $(nproc), RLIMIT_NOFILE hard $(ulimit -Hn), workers $WORKERS"
echo
echo "| services | kind | lines | rvsadm -R (s, wall) | rvsd CPU for -R (s) | rvsd RSS after (MiB) | idle CPU (% of a core, ${IDLE} s) | -Ln (s) | -Sn (s) | -Lnc (s) |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
hard=$(ulimit -Hn)
for n in "${SIZES[@]}"; do
  kind=tcp
  # Listeners plus a margin for rvsd's own descriptors must fit under the hard limit.
  if [ "$hard" != unlimited ] && [ $((n * WORKERS + 1000)) -gt "$hard" ]; then kind=fwm; fi
  gen "$n" "$kind" >"$work/rules"
  lines=$(wc -l <"$work/rules")
  sock="$work/rvsd.sock"
  "$BIN/rvsd" --socket "$sock" --workers "$WORKERS" 2>"$work/rvsd.log" &
  pid=$!
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
  adm() { "$BIN/rvsadm" --socket "$sock" "$@"; }
  # rvsd's own CPU (utime + stime) for the load: on a loaded machine the wall time is
  # mostly waiting for a CPU.
  l0=$(ticks "$pid")
  t_load=$(secs adm -R <"$work/rules" 2>/dev/null)
  l1=$(ticks "$pid")
  c_load=$(awk -v a="$l0" -v b="$l1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
  got=$(adm -Sn | wc -l)
  if [ "$got" != "$lines" ]; then
    echo "bench/scale.sh: $n services: rvsd holds $got of $lines lines after -R" >&2
    tail -5 "$work/rvsd.log" >&2
    exit 1
  fi
  rss=$(awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")
  sleep 2
  c0=$(ticks "$pid")
  sleep "$IDLE"
  c1=$(ticks "$pid")
  idle=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v s="$IDLE" 'BEGIN { printf "%.2f", (b - a) / hz / s * 100 }')
  t_ln=$(secs adm -Ln)
  t_sn=$(secs adm -Sn)
  t_lnc=$(secs adm -Lnc)
  echo "| $n | $kind | $lines | $t_load | $c_load | $rss | $idle | $t_ln | $t_sn | $t_lnc |"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
