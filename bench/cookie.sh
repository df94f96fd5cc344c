#!/usr/bin/env bash
# Cookie persistence throughput (issue 15): rvsd's `--pe cookie` on the socket proxy against
# HAProxy in `mode http` with `cookie RVSID insert indirect nocache`, in one run, the same two
# nginx real servers behind both, wrk as the client, all on loopback. Each proxy is pinned to
# CPU 0 with one worker/thread; the real servers and wrk share CPU 1.
# Two loads, both over keep-alive connections:
#   pinned    every request carries the proxy's cookie for real server 1 (taken from the
#             proxy's own first answer): the proxy reads the cookie and keeps the server;
#   unpinned  no cookie: every request is scheduled (round robin) and its response gets a
#             Set-Cookie (what a first visit costs).
# A third, CLOSE=1, adds pinned requests with `Connection: close` (a new client connection per
# request).
#
# Usage: bench/cookie.sh [seconds-per-run]   (needs: haproxy, nginx-light, wrk, curl)
#   ROUNDS=5   rounds; each round runs every proxy once per load, alternating who goes first;
#              the table shows the medians of the rounds
#   CONNS=50   wrk connections
#   CLOSE=0    1: also the Connection: close load
#   RVS_BENCH_BIN=DIR  use DIR/rvsd and DIR/rvsadm instead of building them
#   RVS_BENCH_NICE=-15 autogroup nice of the run (0 = off), as in bench/proxy.sh
# Prints a markdown table (medians), the per-round samples and the ratios; paste them into
# docs/benchmarks.md with the command and the load it prints.
set -euo pipefail
self=$(readlink -f "$0")
cd "$(dirname "$self")/.."

. bench/common.sh
bench_own_session "$@"

DUR=${1:-5}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-50}
CLOSE=${CLOSE:-0}
NICE=${RVS_BENCH_NICE:--15}
bench_workdir cookie

need haproxy haproxy
need nginx nginx-light
need wrk wrk
need curl curl
need taskset util-linux

BIN=${RVS_BENCH_BIN:-target/release}
[ -n "${RVS_BENCH_BIN:-}" ] || cargo build --release -q -p rvsd -p rvsadm
RVSD=$BIN/rvsd
RVSADM=$BIN/rvsadm

if [ "$NICE" != 0 ]; then
  if echo "$NICE" 2>/dev/null >/proc/self/autogroup; then
    echo "bench/cookie.sh: $(cat /proc/self/autogroup) for this run (RVS_BENCH_NICE=0 to turn off)" >&2
  else
    echo "bench/cookie.sh: cannot set the autogroup nice (not root?); running without it" >&2
    NICE=0
  fi
fi

. bench/cookie-setup.sh
cookie_start_nginx
cookie_haproxy_conf
taskset -c 0 haproxy -f "$work/haproxy.cfg" -db &
pids+=($!)
HAPROXY_PID=$!

# rvsd: one proxy worker.
SOCK=$work/rvsd.sock
RUST_LOG=warn taskset -c 0 "$RVSD" --socket "$SOCK" --workers 1 --metrics-listen off &
pids+=($!)
RVSD_PID=$!
cookie_rvsd_service "$RVSADM" "$SOCK"
sleep 0.5

NAMES=(rvsd haproxy)
declare -A PORT=([rvsd]=$RVSD_PORT [haproxy]=$HAPROXY_PORT) PID=([rvsd]=$RVSD_PID [haproxy]=$HAPROXY_PID)
declare -A COOKIE
for n in "${NAMES[@]}"; do
  COOKIE[$n]=$(cookie_for_rs1 "$n" "${PORT[$n]}")
  taskset -c 1 wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:${PORT[$n]}/" >/dev/null 2>&1
done

# CPU time (user + system, all threads, clock ticks) of a proxy.
cpu_ticks() { awk '{print $14 + $15}' "/proc/${PID[$1]}/stat"; }

# One wrk run: prints "req/s p99_ms cpu_us_per_request non2xx".
run_wrk() {
  local n=$1; shift
  local out c0 c1
  c0=$(cpu_ticks "$n")
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$@" "http://127.0.0.1:${PORT[$n]}/" 2>&1)
  c1=$(cpu_ticks "$n")
  awk -v c0="$c0" -v c1="$c1" -v hz="$(getconf CLK_TCK)" '
    /requests in/ { req = $1 }
    /Requests\/sec/ { rps = $2 }
    /Non-2xx/ { bad += $NF }
    $1 == "99%" { v = $2
      if (v ~ /us$/) { sub(/us/, "", v); v = v / 1000 }
      else if (v ~ /ms$/) { sub(/ms/, "", v) }
      else if (v ~ /s$/) { sub(/s/, "", v); v = v * 1000 }
      p99 = v }
    END { cpu = req > 0 ? (c1 - c0) / hz * 1e6 / req : 0; printf "%s %s %.1f %d\n", rps + 0, p99 + 0, cpu, bad + 0 }' <<<"$out"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

LOADS=(pinned unpinned)
[ "$CLOSE" = 1 ] && LOADS+=(close)
declare -A RPS P99 CPU
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$ROUNDS"); do
  for i in 0 1; do
    n=${NAMES[$(((r + i) % 2))]}
    for l in "${LOADS[@]}"; do
      case $l in
        pinned) set -- -H "Cookie: ${COOKIE[$n]}" ;;
        unpinned) set -- ;;
        close) set -- -H "Cookie: ${COOKIE[$n]}" -H "Connection: close" ;;
      esac
      read -r rps p99 cpu bad < <(run_wrk "$n" "$@")
      [ "$bad" = 0 ] || { echo "bench/cookie.sh: $n answered $bad non-2xx responses ($l)" >&2; exit 1; }
      RPS[$n,$l]+=" $rps"; P99[$n,$l]+=" $p99"; CPU[$n,$l]+=" $cpu"
    done
  done
  echo "bench/cookie.sh: round $r/$ROUNDS done, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
declare -A M
for n in "${NAMES[@]}"; do
  for l in "${LOADS[@]}"; do
    M[$n,$l,r]=$(median <<<"${RPS[$n,$l]}"); M[$n,$l,p]=$(median <<<"${P99[$n,$l]}"); M[$n,$l,c]=$(median <<<"${CPU[$n,$l]}")
  done
done
echo
echo "| proxy (1 worker, CPU 0) | load | req/s | p99 ms | CPU µs/req |"
echo "|---|---|---|---|---|"
for l in "${LOADS[@]}"; do
  for n in "${NAMES[@]}"; do
    printf '| %s | %s | %.0f | %s | %s |\n' "$n" "$l" "${M[$n,$l,r]}" "${M[$n,$l,p]}" "${M[$n,$l,c]}"
  done
done
echo
for l in "${LOADS[@]}"; do
  echo "$l: rvsd / HAProxy req/s $(ratio "${M[rvsd,$l,r]}" "${M[haproxy,$l,r]}")x;" \
    "p99 (HAProxy / rvsd, higher is better) $(ratio "${M[haproxy,$l,p]}" "${M[rvsd,$l,p]}")x;" \
    "CPU per request (HAProxy / rvsd, higher is better) $(ratio "${M[haproxy,$l,c]}" "${M[rvsd,$l,c]}")x"
done
echo
echo "samples (req/s; p99 ms; CPU µs/req), one per round:"
for l in "${LOADS[@]}"; do
  for n in "${NAMES[@]}"; do
    echo "  $n $l:${RPS[$n,$l]};${P99[$n,$l]};${CPU[$n,$l]}"
  done
done
echo "($(date -u '+%F %H:%M UTC'), $ROUNDS rounds of ${DUR}s per proxy and load (medians), $CONNS keep-alive" \
  "connections, autogroup nice $NICE, load at start: $load_start, at end: $load_end)"
