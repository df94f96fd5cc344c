#!/usr/bin/env bash
# UDP through the socket proxy: rvsd (one worker) against nginx stream UDP (one worker), both
# in front of one sockperf server, sockperf as the client, all on loopback. The proxy under
# test is pinned to CPU 0; the real server and the client share CPU 1.
# Two loads, each a separate run per proxy and round:
#   one-way:   `sockperf throughput`, 64-byte datagrams as fast as the client can send them;
#              the result is what the real server received per second (a proxy that cannot keep
#              up drops the rest at its socket), and the proxy's CPU time per datagram received.
#   ping-pong: `sockperf ping-pong`, 64-byte request and echo, with a burst of BURST datagrams
#              in flight: round trips per second, their p99, and the proxy's CPU per round trip.
#
# Usage: bench/proxy-udp.sh [seconds-per-run]   (needs: sockperf, nginx-light + libnginx-mod-stream)
#   ROUNDS=5   rounds, alternating the proxies within each; the table shows medians
#   BURST=16   ping-pong messages in flight
#   RVS_BENCH_BIN=DIR  use DIR/rvsd and DIR/rvsadm instead of building them
#   RVS_BENCH_NICE=-15 autogroup nice of the run (0 = off), as in bench/proxy.sh
# Prints a markdown table (medians) and the per-round samples; paste them into
# docs/benchmarks.md with the command and the load it prints.
set -euo pipefail
self=$(readlink -f "$0")
cd "$(dirname "$self")/.."

. bench/common.sh
bench_own_session "$@"

DUR=${1:-5}
ROUNDS=${ROUNDS:-5}
BURST=${BURST:-16}
NICE=${RVS_BENCH_NICE:--15}
bench_workdir udp

need sockperf sockperf
need nginx "nginx-light libnginx-mod-stream"
need taskset util-linux
STREAM_MOD=/usr/lib/nginx/modules/ngx_stream_module.so
[ -f "$STREAM_MOD" ] || { echo "bench/proxy-udp.sh: $STREAM_MOD missing (apt-get install -y libnginx-mod-stream)" >&2; exit 2; }

BIN=${RVS_BENCH_BIN:-target/release}
[ -n "${RVS_BENCH_BIN:-}" ] || cargo build --release -q -p rvsd -p rvsadm
RVSD=$BIN/rvsd
RVSADM=$BIN/rvsadm

if [ "$NICE" != 0 ]; then
  if echo "$NICE" 2>/dev/null >/proc/self/autogroup; then
    echo "bench/proxy-udp.sh: $(cat /proc/self/autogroup) for this run (RVS_BENCH_NICE=0 to turn off)" >&2
  else
    echo "bench/proxy-udp.sh: cannot set the autogroup nice (not root?); running without it" >&2
    NICE=0
  fi
fi

RS_IP=127.0.0.41
RS_PORT=19191

# The real server runs once per measurement (it prints what it received when interrupted).
start_server() {
  taskset -c 1 sockperf server -i "$RS_IP" -p "$RS_PORT" >"$work/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 50); do grep -q "using" "$work/server.log" 2>/dev/null && break; sleep 0.05; done
}
stop_server() {
  kill -INT "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  sed -n 's/.*Total \([0-9]*\) messages received.*/\1/p' "$work/server.log" | tail -1
}

# nginx stream: one worker, UDP.
mkdir -p "$work/ng"
cat > "$work/ng/nginx.conf" <<CONF
load_module $STREAM_MOD;
worker_processes 1;
pid $work/ng/nginx.pid;
error_log $work/ng/error.log warn;
events { worker_connections 20000; }
stream {
  upstream be { server $RS_IP:$RS_PORT; }
  server { listen 127.0.0.1:19283 udp; proxy_pass be; proxy_timeout 60s; }
}
CONF
taskset -c 0 nginx -c "$work/ng/nginx.conf" -p "$work/ng" -g 'daemon off;' &
pids+=($!)
NGINX_PID=$!

RUST_LOG=warn taskset -c 0 "$RVSD" --socket "$work/rvsd.sock" --workers 1 --metrics-listen off &
pids+=($!)
RVSD_PID=$!
for _ in $(seq 50); do [ -S "$work/rvsd.sock" ] && break; sleep 0.1; done
"$RVSADM" --socket "$work/rvsd.sock" -A -u 127.0.0.1:19281 -s rr
"$RVSADM" --socket "$work/rvsd.sock" -a -u 127.0.0.1:19281 -r "$RS_IP:$RS_PORT" -m
sleep 0.5

cpu_ticks() {
  local pids_of t=0 p
  case $1 in
    rvsd) pids_of=$RVSD_PID ;;
    nginx-stream) pids_of="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')" ;;
  esac
  for p in $pids_of; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}

# One-way: prints "datagrams/s-received cpu_us_per_datagram".
run_tp() {
  local n=$1 port=$2 c0 c1 got
  start_server
  c0=$(cpu_ticks "$n")
  taskset -c 1 sockperf throughput -i 127.0.0.1 -p "$port" -m 64 -t "$DUR" >"$work/client.log" 2>&1 || true
  c1=$(cpu_ticks "$n")
  got=$(stop_server)
  awk -v c0="$c0" -v c1="$c1" -v got="${got:-0}" -v d="$DUR" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.0f %.2f\n", got / d, (got > 0 ? (c1 - c0) / hz * 1e6 / got : 0) }'
}

# Ping-pong: prints "round-trips/s p99_us cpu_us_per_round_trip".
run_pp() {
  local n=$1 port=$2 c0 c1 out
  start_server
  c0=$(cpu_ticks "$n")
  out=$(taskset -c 1 sockperf ping-pong -i 127.0.0.1 -p "$port" -m 64 -b "$BURST" -t "$DUR" 2>&1 || true)
  c1=$(cpu_ticks "$n")
  stop_server >/dev/null
  awk -v c0="$c0" -v c1="$c1" -v hz="$(getconf CLK_TCK)" '
    /Valid Duration/ { for (i = 1; i <= NF; i++) {
        if ($i ~ /^RunTime=/) { sub(/RunTime=/, "", $i); t = $i + 0 }
        if ($i ~ /^ReceivedMessages=/) { sub(/ReceivedMessages=/, "", $i); sub(/;/, "", $i); r = $i + 0 } } }
    /percentile 99.000/ { p99 = $NF }
    END { printf "%.0f %s %.2f\n", (t > 0 ? r / t : 0), p99 + 0, (r > 0 ? (c1 - c0) / hz * 1e6 / r : 0) }' <<<"$out"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

NAMES=(rvsd nginx-stream)
declare -A PORT=([rvsd]=19281 [nginx-stream]=19283)
declare -A TP TPC PP PPP PPC
# Warm-up and check that each proxy answers.
for n in "${NAMES[@]}"; do
  read -r rate _ _ < <(DUR=1 run_pp "$n" "${PORT[$n]}")
  [ "${rate%.*}" -gt 0 ] || { echo "bench/proxy-udp.sh: no echo through $n" >&2; exit 1; }
done
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$ROUNDS"); do
  for i in 0 1; do
    n=${NAMES[$(((r + i) % 2))]}
    read -r rate cpu < <(run_tp "$n" "${PORT[$n]}")
    TP[$n]+=" $rate"; TPC[$n]+=" $cpu"
    read -r rate p99 cpu < <(run_pp "$n" "${PORT[$n]}")
    PP[$n]+=" $rate"; PPP[$n]+=" $p99"; PPC[$n]+=" $cpu"
  done
  echo "bench/proxy-udp.sh: round $r/$ROUNDS done, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "| proxy (1 worker, CPU 0) | one-way datagrams/s received | CPU µs/datagram | ping-pong round trips/s (burst $BURST) | p99 µs | CPU µs/round trip |"
echo "|---|---|---|---|---|---|"
declare -A M
for n in "${NAMES[@]}"; do
  M[$n,tp]=$(median <<<"${TP[$n]}"); M[$n,tpc]=$(median <<<"${TPC[$n]}")
  M[$n,pp]=$(median <<<"${PP[$n]}"); M[$n,ppp]=$(median <<<"${PPP[$n]}"); M[$n,ppc]=$(median <<<"${PPC[$n]}")
  printf '| %s | %.0f | %s | %.0f | %s | %s |\n' "$n" "${M[$n,tp]}" "${M[$n,tpc]}" "${M[$n,pp]}" "${M[$n,ppp]}" "${M[$n,ppc]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
echo
echo "rvsd / nginx stream: one-way $(ratio "${M[rvsd,tp]}" "${M[nginx-stream,tp]}")x," \
  "ping-pong $(ratio "${M[rvsd,pp]}" "${M[nginx-stream,pp]}")x;" \
  "CPU per datagram (nginx / rvsd, higher is better) one-way $(ratio "${M[nginx-stream,tpc]}" "${M[rvsd,tpc]}")x," \
  "ping-pong $(ratio "${M[nginx-stream,ppc]}" "${M[rvsd,ppc]}")x"
echo
echo "samples (one-way datagrams/s; CPU µs/datagram | ping-pong round trips/s; p99 µs; CPU µs), one per round:"
for n in "${NAMES[@]}"; do
  echo "  $n:${TP[$n]};${TPC[$n]} |${PP[$n]};${PPP[$n]};${PPC[$n]}"
done
echo "($(date -u '+%F %H:%M UTC'), $ROUNDS rounds of ${DUR}s per proxy and load (medians), 64-byte datagrams," \
  "autogroup nice $NICE, load at start: $load_start, at end: $load_end)"
