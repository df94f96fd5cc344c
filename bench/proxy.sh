#!/usr/bin/env bash
# Whole-system benchmark of the socket proxy data plane against its peers, in one run:
#   rvsd with kernel splicing (--proxy-splice on), rvsd without (--proxy-splice off), each one
#   worker, vs HAProxy (tcp mode, one thread) vs nginx stream (one worker),
# the same two nginx real servers behind each, wrk as the client, all on loopback.
# The load balancer under test is pinned to CPU 0; real servers and wrk share CPU 1.
# Three loads: keep-alive requests (25-byte body), Connection: close (a new connection through
# the proxy per request), and bulk (1 MiB responses over keep-alive connections).
#
# CPU per request is counted over the whole machine: busy time of all CPUs (/proc/stat) during
# the run, minus the machine's idle busy rate (measured once, IDLE_SECS=3, with every daemon up),
# minus wrk's and the real servers' own CPU. What is left is the proxy and everything the kernel
# did for it on any CPU (kworker threads, softirq): kernel splicing moves work out of the proxy's
# process, and a proxy that wins by using another core has not won. The proxy's own process
# time is printed beside it ("own").
#
# Usage: bench/proxy.sh [seconds-per-run]   (as root: --proxy-splice on loads BPF;
#        needs: haproxy, nginx-light + libnginx-mod-stream, wrk)
#   Takes about 5 rows (4 proxies and "direct": no proxy) x 3 loads x ROUNDS x seconds + 40 s:
#   5 rounds of 5 s, about 7 min.
#   SYSCALLS=1 count each proxy's system calls per request and per connection (strace) instead
#              of timing them: about 40 s with 2 s per run.
#   ROUNDS=5   rounds; each round runs every proxy once per mode, in turn, so a change in the
#              machine's load hits all of them alike; the table shows the median of the rounds
#   CONNS=50   wrk connections (bulk: BULK_CONNS=10)
#   RVS_BENCH_BIN=DIR  use DIR/rvsd and DIR/rvsadm instead of building them
#   RVS_BENCH_NICE=-15
#              autogroup nice of the benchmark (0 = off). The run gets its own session, so its
#              own scheduler autogroup; on a shared machine (autogroups are on by default) every
#              other session's group would otherwise get an equal share of each CPU, whatever
#              the nice value of single processes. Applies alike to all proxies, wrk and nginx.
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
BULK_CONNS=${BULK_CONNS:-10}
NICE=${RVS_BENCH_NICE:--15}
bench_workdir proxy

need haproxy haproxy
need nginx "nginx-light libnginx-mod-stream"
need wrk wrk
need taskset util-linux
[ "$(id -u)" = 0 ] || { echo "bench/proxy.sh: run as root (rvsd --proxy-splice on loads a BPF program)" >&2; exit 2; }
STREAM_MOD=/usr/lib/nginx/modules/ngx_stream_module.so
[ -f "$STREAM_MOD" ] || { echo "bench/proxy.sh: $STREAM_MOD missing (apt-get install -y libnginx-mod-stream)" >&2; exit 2; }

# RVS_BENCH_BIN=DIR: take rvsd and rvsadm from DIR instead of building (to compare builds).
BIN=${RVS_BENCH_BIN:-target/release}
[ -n "${RVS_BENCH_BIN:-}" ] || cargo build --release -q -p rvsd -p rvsadm
RVSD=$BIN/rvsd
RVSADM=$BIN/rvsadm

if [ "$NICE" != 0 ]; then
  if echo "$NICE" 2>/dev/null >/proc/self/autogroup; then
    echo "bench/proxy.sh: $(cat /proc/self/autogroup) for this run (RVS_BENCH_NICE=0 to turn off)" >&2
  else
    echo "bench/proxy.sh: cannot set the autogroup nice (not root?); running without it" >&2
    NICE=0
  fi
fi

RS1=127.0.0.21:18181
RS2=127.0.0.22:18181

# Real servers (bench/common.sh): two listen addresses, a small fixed body; /bulk is 1 MiB.
mkdir -p "$work/rs"
head -c 1048576 /dev/zero > "$work/rs/bulk"
bench_nginx_rs "  server { listen $RS1; listen $RS2; location / { return 200 \"hello from a real server\n\"; }
           location = /bulk { alias $work/rs/bulk; } }"

# HAProxy: tcp mode, one thread, round robin.
cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 8000
defaults
  mode tcp
  timeout connect 3s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:18082
  default_backend be
backend be
  balance roundrobin
  server rs1 $RS1
  server rs2 $RS2
CONF
taskset -c 0 haproxy -f "$work/haproxy.cfg" -db &
pids+=($!)
HAPROXY_PID=$!

# nginx stream: one worker, round robin.
mkdir -p "$work/ng"
cat > "$work/ng/nginx.conf" <<CONF
load_module $STREAM_MOD;
worker_processes 1;
pid $work/ng/nginx.pid;
error_log $work/ng/error.log warn;
events { worker_connections 20000; }
stream {
  upstream be { server $RS1; server $RS2; }
  server { listen 127.0.0.1:18083; proxy_pass be; }
}
CONF
taskset -c 0 nginx -c "$work/ng/nginx.conf" -p "$work/ng" -g 'daemon off;' &
pids+=($!)
NGINX_PID=$!

# rvsd: one proxy worker; one daemon with kernel splicing forced on, one with it off.
start_rvsd() {
  local sock=$1 port=$2 mode=$3
  RUST_LOG=warn taskset -c 0 "$RVSD" --socket "$sock" --workers 1 --metrics-listen off --proxy-splice "$mode" &
  pids+=($!)
  for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
  "$RVSADM" --socket "$sock" -A -t 127.0.0.1:$port -s rr
  "$RVSADM" --socket "$sock" -a -t 127.0.0.1:$port -r "$RS1" -m
  "$RVSADM" --socket "$sock" -a -t 127.0.0.1:$port -r "$RS2" -m
}
start_rvsd "$work/rvsd-splice.sock" 18081 on
RVSD_SPLICE_PID=${pids[-1]}
start_rvsd "$work/rvsd.sock" 18084 off
RVSD_PID=${pids[-1]}
sleep 0.5

# CPU time (user + system, all threads, clock ticks) of a proxy: for nginx its worker(s).
cpu_ticks() {
  local n=$1 pids_of=""
  case $n in
    rvsd-splice) pids_of=$RVSD_SPLICE_PID ;;
    rvsd) pids_of=$RVSD_PID ;;
    haproxy) pids_of=$HAPROXY_PID ;;
    nginx-stream) pids_of="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')" ;;
    real-servers) pids_of="$RS_PID $(pgrep -P "$RS_PID" | tr '\n' ' ')" ;;
    direct) ;; # no proxy: wrk and the real servers are counted apart
  esac
  local t=0 p
  for p in $pids_of; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}

# Busy clock ticks of the whole machine, all CPUs (/proc/stat: user nice system irq softirq
# steal; not idle or iowait). Work the kernel does for a proxy outside its own threads —
# kworker threads sending what the sockmap program redirected, softirq on other CPUs — shows
# here and not in the proxy's own CPU time.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
now_ns() { date +%s%N; }
# Busy clock ticks of CPU 0 and of CPU 1 (the proxy's; wrk's and the real servers'): whether the
# proxy's core or the client's limits a run.
cpu01_ticks() { awk '/^cpu[01] / { printf "%s ", $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# The machine's busy rate with every daemon up and no load (ticks per second, all CPUs):
# subtracted from each run, so the other sessions' background and the daemons' timers do not
# count as any proxy's work.
measure_idle() {
  local m0 m1 t0 t1
  m0=$(machine_ticks); t0=$(now_ns)
  sleep "${IDLE_SECS:-3}"
  m1=$(machine_ticks); t1=$(now_ns)
  awk -v m="$((m1 - m0))" -v ns="$((t1 - t0))" 'BEGIN { printf "%.3f", m / (ns / 1e9) }'
}

# One wrk run: prints "req/s p99_ms cpu_us_per_request own_us_per_request MiB/s busy", busy
# being "CPU 0 % / CPU 1 %" busy during the run (the whole machine's, so on a quiet machine only).
# CPU per request (the fair one): the whole machine's busy time during the run, minus the idle
# rate over the run's length, minus wrk's and the real servers' own CPU time, per request: the
# proxy's process plus whatever the kernel did for it on any CPU (kworker, ksoftirqd, softirq).
# Own: the proxy's process alone (user + system of its threads).
run_wrk() {
  local n=$1 url=$2 c=$3; shift 3
  local out c0 c1 m0 m1 r0 r1 t0 t1 p0 p1
  c0=$(cpu_ticks "$n"); r0=$(cpu_ticks real-servers); m0=$(machine_ticks); p0=$(cpu01_ticks); t0=$(now_ns)
  # wrk's own CPU: the subshell's reaped-children times (/proc/PID/stat cutime + cstime).
  out=$(taskset -c 1 wrk -t1 -c"$c" -d"${DUR}s" --latency "$@" "$url" 2>&1
        echo "wrk-cpu-ticks $(awk '{ print $16 + $17 }' "/proc/$BASHPID/stat")")
  m1=$(machine_ticks); p1=$(cpu01_ticks); t1=$(now_ns); c1=$(cpu_ticks "$n"); r1=$(cpu_ticks real-servers)
  awk -v c0="$c0" -v c1="$c1" -v m="$((m1 - m0))" -v rs="$((r1 - r0))" -v ns="$((t1 - t0))" \
      -v idle="$IDLE_RATE" -v hz="$(getconf CLK_TCK)" -v p0="$p0" -v p1="$p1" '
    /requests in/ { req = $1 }
    /Requests\/sec/ { rps = $2 }
    /^wrk-cpu-ticks/ { wrk = $2 }
    /Transfer\/sec/ { v = $2
      if (v ~ /GB$/) { sub(/GB/, "", v); v = v * 1024 }
      else if (v ~ /MB$/) { sub(/MB/, "", v) }
      else if (v ~ /KB$/) { sub(/KB/, "", v); v = v / 1024 }
      else { sub(/B/, "", v); v = v / 1048576 }
      mibs = v }
    $1 == "99%" { v = $2
      if (v ~ /us$/) { sub(/us/, "", v); v = v / 1000 }
      else if (v ~ /ms$/) { sub(/ms/, "", v) }
      else if (v ~ /s$/) { sub(/s/, "", v); v = v * 1000 }
      p99 = v }
    END {
      fair = m - idle * ns / 1e9 - wrk - rs; if (fair < 0) fair = 0
      cpu = req > 0 ? fair / hz * 1e6 / req : 0
      own = req > 0 ? (c1 - c0) / hz * 1e6 / req : 0
      split(p0, a, " "); split(p1, b, " "); secs = ns / 1e9
      busy = sprintf("%.0f/%.0f", (b[1] - a[1]) / hz / secs * 100, (b[2] - a[2]) / hz / secs * 100)
      printf "%s %s %.1f %.1f %.1f %s\n", rps + 0, p99 + 0, cpu, own, mibs + 0, busy }' <<<"$out"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# "direct": wrk to the real server with no proxy (both on CPU 1), run in the same rounds: the
# rate the client and the real server reach on their one core. A proxy on CPU 0 leaves CPU 1
# about the same work per request (wrk's and nginx's system calls, the loopback delivery of
# what they send), so that rate is roughly the ceiling of every proxy here; a proxy ratio
# goal above "direct / HAProxy" cannot be shown on this bench, whatever the proxy does.
NAMES=(rvsd-splice rvsd haproxy nginx-stream direct)
declare -A ADDR=([rvsd-splice]=127.0.0.1:18081 [rvsd]=127.0.0.1:18084 [haproxy]=127.0.0.1:18082
  [nginx-stream]=127.0.0.1:18083 [direct]=$RS1)
declare -A KA_BUSY CL_BUSY KA_RPS KA_P99 KA_CPU KA_OWN CL_RPS CL_P99 CL_CPU CL_OWN BK_MIB BK_P99 BK_CPU BK_OWN
for n in "${NAMES[@]}"; do
  curl -sf "http://${ADDR[$n]}/" >/dev/null || { echo "bench/proxy.sh: $n does not answer on ${ADDR[$n]}" >&2; exit 1; }
  size=$(curl -sf "http://${ADDR[$n]}/bulk" | wc -c)
  [ "$size" = 1048576 ] || { echo "bench/proxy.sh: $n returned $size bytes of /bulk" >&2; exit 1; }
  # Warm-up: connections, caches, the proxies' pools; not measured.
  taskset -c 1 wrk -t1 -c"$CONNS" -d2s "http://${ADDR[$n]}/" >/dev/null 2>&1
done
# SYSCALLS=1: count instead of timing. System calls per keep-alive request and per closed
# connection of each proxy, under `strace -c -f` (every thread of the proxy's process; for nginx
# its worker), over wrk -t1 -c10 for the run's seconds: a measure the machine's load does not
# distort (strace slows the proxy down many times, so read the counts, never the rates).
# epoll_wait is counted too; it is the one count that depends on the load (one wait serves all
# the events ready at once).
syscall_pids() {
  case $1 in
    rvsd-splice) echo "$RVSD_SPLICE_PID" ;;
    rvsd) echo "$RVSD_PID" ;;
    haproxy) echo "$HAPROXY_PID" ;;
    nginx-stream) pgrep -P "$NGINX_PID" | tr '\n' ' ' ;;
  esac
}
# count_syscalls NAME URL [wrk args]: prints "total (call n.n, ...)" per request.
count_syscalls() {
  local n=$1 url=$2 args=() p reqs st
  shift 2
  for p in $(syscall_pids "$n"); do args+=(-p "$p"); done
  strace -c -f -o "$work/strace.$n" "${args[@]}" 2>/dev/null &
  st=$!
  sleep 1
  reqs=$(taskset -c 1 wrk -t1 -c10 -d"${DUR}s" "$@" "$url" 2>&1 | awk '/requests in/ { print $1 }')
  kill -INT "$st"; wait "$st" 2>/dev/null || true
  awk -v reqs="${reqs:-0}" '
    $1 ~ /^[0-9.]+$/ && $NF != "total" && NF >= 5 { calls[$NF] = $4; sum += $4 }
    END {
      if (reqs == 0) { print "n/a (wrk made no request)"; exit }
      n = 0; for (c in calls) { v = calls[c] / reqs; if (v >= 0.05) keep[++n] = sprintf("%.2f %s", v, c) }
      out = ""
      # largest first
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (keep[j] + 0 > keep[i] + 0) { t = keep[i]; keep[i] = keep[j]; keep[j] = t }
      for (i = 1; i <= n; i++) { split(keep[i], f, " "); out = out (i > 1 ? ", " : "") f[2] " " f[1] }
      printf "%.2f | %s\n", sum / reqs, out
    }' "$work/strace.$n"
}
if [ -n "${SYSCALLS:-}" ]; then
  need strace strace
  echo
  echo "System calls per request (keep-alive) and per connection (close), strace -c -f, wrk -t1 -c10 -d${DUR}s:"
  echo
  echo "| proxy | load | calls | of which (>= 0.05) |"
  echo "|---|---|---:|---|"
  for n in "${NAMES[@]}"; do
    [ "$n" = direct ] && continue
    base="http://${ADDR[$n]}"
    echo "| $n | keep-alive, per request | $(count_syscalls "$n" "$base/") |"
    echo "| $n | close, per connection | $(count_syscalls "$n" "$base/" -H "Connection: close") |"
  done
  echo "($(date -u '+%F %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg))"
  exit 0
fi

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
IDLE_RATE=$(measure_idle)
echo "bench/proxy.sh: idle machine busy rate $IDLE_RATE ticks/s (subtracted from every run)" >&2
if awk -v r="$IDLE_RATE" -v n="$(nproc)" -v hz="$(getconf CLK_TCK)" 'BEGIN { exit !(r > 0.25 * n * hz) }'; then
  echo "bench/proxy.sh: WARNING: the machine is busy without load (over 25 % of its CPUs):" \
    "the whole-machine CPU columns are not meaningful in this run (own columns still are)" >&2
fi
for r in $(seq "$ROUNDS"); do
  # Rotate who goes first, so no proxy always inherits the previous run's TIME_WAIT sockets.
  for i in "${!NAMES[@]}"; do
    n=${NAMES[$(((r + i) % ${#NAMES[@]}))]}
    base="http://${ADDR[$n]}"
    read -r rps p99 cpu own _ busy < <(run_wrk "$n" "$base/" "$CONNS")
    KA_BUSY[$n]+=" $busy"; KA_RPS[$n]+=" $rps"; KA_P99[$n]+=" $p99"; KA_CPU[$n]+=" $cpu"; KA_OWN[$n]+=" $own"
    read -r rps p99 cpu own _ busy < <(run_wrk "$n" "$base/" "$CONNS" -H "Connection: close")
    CL_BUSY[$n]+=" $busy"; CL_RPS[$n]+=" $rps"; CL_P99[$n]+=" $p99"; CL_CPU[$n]+=" $cpu"; CL_OWN[$n]+=" $own"
    read -r rps p99 cpu own mib _ < <(run_wrk "$n" "$base/bulk" "$BULK_CONNS")
    # Per MiB: the run moved mib * DUR MiB in about as many seconds as requests took.
    cpu=$(awk -v c="$cpu" -v mib="$mib" -v rps="$rps" 'BEGIN { printf "%.1f\n", (mib > 0 ? c * rps / mib : 0) }')
    own=$(awk -v c="$own" -v mib="$mib" -v rps="$rps" 'BEGIN { printf "%.1f\n", (mib > 0 ? c * rps / mib : 0) }')
    BK_MIB[$n]+=" $mib"; BK_P99[$n]+=" $p99"; BK_CPU[$n]+=" $cpu"; BK_OWN[$n]+=" $own"
  done
  echo "bench/proxy.sh: round $r/$ROUNDS done, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

declare -A M
for n in "${NAMES[@]}"; do
  M[$n,ka]=$(median <<<"${KA_RPS[$n]}"); M[$n,kap]=$(median <<<"${KA_P99[$n]}"); M[$n,kac]=$(median <<<"${KA_CPU[$n]}"); M[$n,kao]=$(median <<<"${KA_OWN[$n]}")
  M[$n,cl]=$(median <<<"${CL_RPS[$n]}"); M[$n,clp]=$(median <<<"${CL_P99[$n]}"); M[$n,clc]=$(median <<<"${CL_CPU[$n]}"); M[$n,clo]=$(median <<<"${CL_OWN[$n]}")
  M[$n,bk]=$(median <<<"${BK_MIB[$n]}"); M[$n,bkp]=$(median <<<"${BK_P99[$n]}"); M[$n,bkc]=$(median <<<"${BK_CPU[$n]}"); M[$n,bko]=$(median <<<"${BK_OWN[$n]}")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
echo
echo "CPU: the whole machine's busy time minus the idle rate, wrk's and the real servers' CPU (the proxy plus"
echo "all the kernel did for it, on any CPU); own: the proxy's process alone."
echo
echo "| proxy (1 worker, CPU 0) | keep-alive req/s | p99 ms | CPU µs/req | own µs/req | close conn/s | p99 ms | CPU µs/conn | own µs/conn | bulk MiB/s | p99 ms | CPU µs/MiB | own µs/MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in "${NAMES[@]}"; do
  printf '| %s | %.0f | %s | %s | %s | %.0f | %s | %s | %s | %.0f | %s | %s | %s |\n' "$n" \
    "${M[$n,ka]}" "${M[$n,kap]}" "${M[$n,kac]}" "${M[$n,kao]}" \
    "${M[$n,cl]}" "${M[$n,clp]}" "${M[$n,clc]}" "${M[$n,clo]}" \
    "${M[$n,bk]}" "${M[$n,bkp]}" "${M[$n,bkc]}" "${M[$n,bko]}"
done
echo
echo "Goals (issue 14): keep-alive >= 1.5x HAProxy's req/s at CPU/req <= 0.7x and p99 <= HAProxy's; close >= 1.25x;"
echo "bulk >= 1.5x HAProxy's MiB per CPU-second (= HAProxy's CPU µs/MiB / ours)."
for n in rvsd-splice rvsd; do
  echo "$n / HAProxy: keep-alive $(ratio "${M[$n,ka]}" "${M[haproxy,ka]}")x req/s," \
    "CPU/req $(ratio "${M[$n,kac]}" "${M[haproxy,kac]}")x, p99 $(ratio "${M[$n,kap]}" "${M[haproxy,kap]}")x;" \
    "close $(ratio "${M[$n,cl]}" "${M[haproxy,cl]}")x conn/s (p99 $(ratio "${M[$n,clp]}" "${M[haproxy,clp]}")x," \
    "CPU/conn $(ratio "${M[$n,clc]}" "${M[haproxy,clc]}")x);" \
    "bulk $(ratio "${M[$n,bk]}" "${M[haproxy,bk]}")x MiB/s, $(ratio "${M[haproxy,bkc]}" "${M[$n,bkc]}")x MiB per CPU-second"
done
echo "direct (no proxy) / HAProxy: keep-alive $(ratio "${M[direct,ka]}" "${M[haproxy,ka]}")x req/s," \
  "close $(ratio "${M[direct,cl]}" "${M[haproxy,cl]}")x conn/s: more than any proxy can show on this bench (with a proxy, CPU 1 also takes the cross-CPU wake-ups)"
echo
echo "samples (keep-alive req/s; CPU µs/req | close conn/s; CPU µs/conn | bulk MiB/s; CPU µs/MiB), one per round:"
for n in "${NAMES[@]}"; do
  echo "  $n:${KA_RPS[$n]};${KA_CPU[$n]} |${CL_RPS[$n]};${CL_CPU[$n]} |${BK_MIB[$n]};${BK_CPU[$n]}"
done
echo "busy % of CPU 0 (the proxy's) / CPU 1 (wrk's and the real servers'), one per round (keep-alive | close):"
for n in "${NAMES[@]}"; do
  echo "  $n:${KA_BUSY[$n]} |${CL_BUSY[$n]}"
done
echo "($(date -u '+%F %H:%M UTC'), $ROUNDS rounds of ${DUR}s per proxy and load (medians), $CONNS connections" \
  "($BULK_CONNS for bulk), autogroup nice $NICE, idle busy rate $IDLE_RATE ticks/s, load at start: $load_start, at end: $load_end)"
