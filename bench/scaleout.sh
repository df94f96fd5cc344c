#!/usr/bin/env bash
# Scale-out: aggregate HTTP throughput through 1, 2 and 3 directors behind the ECMP lab's router
# (`rvs-lab up ecmp`: BIRD with BGP multipath + BFD on the router, BIRD + rvsd on each
# director, four DR nginx real servers), reported as a scaling ratio against one director.
#
# Usage: bench/scaleout.sh [seconds-per-run]      (as root; needs bird2, nginx, wrk)
#   ROUNDS=3    rounds; each round measures 1, 2 and 3 directors in turn (so a change of the
#               machine's load hits all three alike); the table shows the medians
#   CONNS=60    wrk connections (keep-alive; the router's L4 hash spreads them)
#   THREADS=2   wrk threads
#   RVS_BENCH_BIN=DIR  use DIR/rvsd, DIR/rvsadm and DIR/rvs-lab instead of building them
#
# Directors are added by starting rvsd on them (BIRD then announces the VIP and the router
# adds a next hop) and removed by stopping it (SIGTERM: the route goes first).
#
# What it prints, per number of directors k:
#   req/s        wrk's aggregate requests per second (client, router, directors and real
#                servers all run on this one machine: when the machine, not a director, is the
#                limit, this does not grow with k, whatever the directors could do)
#   ratio        req/s against k = 1
#   dir CPU/req  CPU seconds of all rvsd processes together per 1000 requests (the cost of
#                directing; it should stay flat as k grows)
#   busiest      share of that CPU taken by the busiest director (1/k when the load is even)
#   capacity     1 / (busiest share x dir CPU/req, relative to k = 1): how many times the
#                requests one director could carry the k directors carry before their busiest
#                one is as loaded as the single one was; a projection from measured CPU, not a
#                measured throughput
#   split        connections each director scheduled (`-Ln --stats`)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

DUR=${1:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-60}
THREADS=${THREADS:-2}
VIP=10.100.0.1
[ "$(id -u)" = 0 ] || { echo "bench/scaleout.sh: run as root (namespaces)" >&2; exit 2; }
need() { command -v "$1" >/dev/null || { echo "bench/scaleout.sh: $1 is missing (apt-get install -y $2)" >&2; exit 2; }; }
need bird bird2
need nginx nginx-light
need wrk wrk

BIN=${RVS_BENCH_BIN:-target/release}
[ -n "${RVS_BENCH_BIN:-}" ] || cargo build --release -q -p rvsd -p rvsadm -p rvs-lab
BIN=$(readlink -f "$BIN")
P=rvbso$$
work=/tmp/rvs-lab/$P
declare -A pid
cleanup() {
  for d in "${!pid[@]}"; do kill "${pid[$d]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$BIN/rvs-lab" down --prefix "$P" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BIN/rvs-lab" up ecmp --prefix "$P" >/dev/null
hops() { ip netns exec "$P-r" ip route show "$VIP" | grep -c via || true; }
wait_hops() { # $1 = wanted number of next hops
  for _ in $(seq 300); do [ "$(hops)" -eq "$1" ] && return 0; sleep 0.1; done
  echo "bench/scaleout.sh: the router did not reach $1 next hop(s) (has $(hops))" >&2; exit 1
}
adm() { ip netns exec "$P-d$1" "$BIN/rvsadm" --socket "$work/d$1.sock" "${@:2}"; }
start_director() {
  local i=$1
  rm -f "$work/d$i.sock"
  ip netns exec "$P-d$i" "$BIN/rvsd" --socket "$work/d$i.sock" --interface eth0 \
    --announce-table 100 --announce-delay 1 --drain-time 0 --sysctl sloppy_tcp=1 \
    --sysctl rvs_mh_grace=120 --metrics-listen off >"$work/d$i.log" 2>&1 &
  pid[$i]=$!
  for _ in $(seq 100); do [ -S "$work/d$i.sock" ] && break; sleep 0.1; done
  adm "$i" -A -t "$VIP:80" -s mh -b mh-port
  for r in 21 22 23 24; do adm "$i" -a -t "$VIP:80" -r "10.30.0.$r:80" -g; done
}
stop_director() {
  local i=$1
  kill -TERM "${pid[$i]}"
  wait "${pid[$i]}" 2>/dev/null || true
  unset "pid[$i]"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
conns_of() { adm "$1" -Ln --stats | awk -v s="$VIP:80" '$1 == "TCP" && $2 == s {print $3}'; }

hz=$(getconf CLK_TCK)
declare -A rps cpu busiest split
for round in $(seq "$ROUNDS"); do
  for k in 1 2 3; do
    for i in $(seq "$k"); do [ -n "${pid[$i]:-}" ] || start_director "$i"; done
    for i in 1 2 3; do if [ "$i" -gt "$k" ] && [ -n "${pid[$i]:-}" ]; then stop_director "$i"; fi; done
    wait_hops "$k"
    # Counters before, one run, counters after.
    declare -A t0 c0
    for i in $(seq "$k"); do t0[$i]=$(cpu_ticks "${pid[$i]}"); c0[$i]=$(conns_of "$i"); done
    out=$(ip netns exec "$P-c" wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" "http://$VIP/")
    r=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    [ -z "$errs" ] || echo "round $round, $k director(s): $errs" >&2
    total=0; max=0; sp=""
    for i in $(seq "$k"); do
      d=$(( $(cpu_ticks "${pid[$i]}") - t0[$i] ))
      total=$((total + d)); [ "$d" -gt "$max" ] && max=$d
      sp="$sp${sp:+/}$(( $(conns_of "$i") - c0[$i] ))"
    done
    reqs=$(awk -v r="$r" -v t="$DUR" 'BEGIN {print r * t}')
    rps[$k]="${rps[$k]:-} $r"
    cpu[$k]="${cpu[$k]:-} $(awk -v t="$total" -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.4f", t / hz / n * 1000}')"
    busiest[$k]="${busiest[$k]:-} $(awk -v m="$max" -v t="$total" 'BEGIN {printf "%.3f", t ? m / t : 0}')"
    split[$k]="$sp"
    echo "round $round: $k director(s): $r req/s, director CPU ${total} ticks, conns $sp" >&2
  done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
r1=$(median "${rps[1]}"); c1=$(median "${cpu[1]}")
echo
echo "| directors | req/s | ratio | dir CPU s / 1000 req | busiest director's share | capacity vs 1 | connections per director (last round) |"
echo "|---|---|---|---|---|---|---|"
for k in 1 2 3; do
  r=$(median "${rps[$k]}"); c=$(median "${cpu[$k]}"); b=$(median "${busiest[$k]}")
  awk -v k="$k" -v r="$r" -v r1="$r1" -v c="$c" -v c1="$c1" -v b="$b" -v s="${split[$k]}" \
    'BEGIN {printf "| %d | %.0f | %.2f | %.4f | %.2f | %.2f | %s |\n", k, r, r / r1, c, b, (b * c > 0 ? c1 / (b * c) : 0), s}'
done
echo
echo "samples req/s: 1: ${rps[1]} | 2: ${rps[2]} | 3: ${rps[3]}"
echo "$(nproc) CPUs; load before the end: $(cut -d' ' -f1-3 /proc/loadavg); ${DUR} s per run, $ROUNDS rounds, wrk -t$THREADS -c$CONNS"
