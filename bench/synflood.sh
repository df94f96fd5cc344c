#!/usr/bin/env bash
# SYN flood through the rvs-lab NAT lab (issue 16): trafgen in the client namespace sends TCP
# SYNs from random source addresses and ports to VIP:80 as fast as it can (the veth limit on
# this host) for $DUR seconds, while a bounded loop of legitimate curl requests runs from the
# same namespace. Two runs, identical but for one sysctl:
#   off: rvsd as before (rvs_syn_proxy=0): every SYN that reaches the worker makes an entry;
#   on:  rvs_syn_proxy=1: the packet plane answers SYNs with cookies (docs/internals/syn-flood.md).
# Both with rvs_conn_max at its default (memory-derived) unless CONN_MAX is set.
# Reported per run: legitimate requests that succeeded / tried, connection-table entries right
# after the flood (rvsadm -Lnc), rvsd's peak RSS growth (VmHWM at the end minus VmRSS before
# the flood), SYNs trafgen sent per second, and rvsd's receive-ring drops (from its log).
#
# Usage: sudo bench/synflood.sh [seconds]   (CURL_MAX_TIME per request, default 5 s;
#        CONN_MAX=N sets rvs_conn_max; RVS_BENCH_BIN=dir of prebuilt binaries, default
#        target/release, built first; RVSD_BIN another rvsd binary)
# Needs: trafgen (Debian netsniff-ng), nginx, curl, iproute2. Prints a markdown table for
# docs/benchmarks.md with `uptime` (the numbers depend on the host's load).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
P=${PREFIX:-rvsyn}
CMT=${CURL_MAX_TIME:-5}

need() { command -v "$1" >/dev/null || { echo "bench/synflood.sh: $1 is missing (apt-get install -y $2)" >&2; exit 2; }; }
need trafgen netsniff-ng
need curl curl
need nginx nginx
[ "$(id -u)" = 0 ] || { echo "bench/synflood.sh: needs root (network namespaces)" >&2; exit 2; }

BIN=${RVS_BENCH_BIN:-target/release}
[ "$BIN" = target/release ] && cargo build --release -q -p rvsd -p rvsadm -p rvs-lab
LAB=$BIN/rvs-lab
RVSD=${RVSD_BIN:-$BIN/rvsd}
RVSADM=$BIN/rvsadm
work=$(mktemp -d /tmp/rvs-bench-synflood.XXXXXX)
rvsd_pid=
cleanup() {
  if [ -n "$rvsd_pid" ]; then kill -TERM "$rvsd_pid" 2>/dev/null || true; wait "$rvsd_pid" 2>/dev/null || true; fi
  "$LAB" down --prefix "$P" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$LAB" down --prefix "$P" >/dev/null 2>&1 || true
"$LAB" up nat --prefix "$P" >/dev/null
C=$P-client D=$P-director
VIP=10.100.0.1
DMAC=$(ip netns exec "$D" cat /sys/class/net/eth0/address)
CMAC=$(ip netns exec "$C" cat /sys/class/net/eth0/address)
# Random sources: the director must not drop them for failing its reverse-path check.
for k in all default eth0; do ip netns exec "$D" sysctl -qw "net.ipv4.conf.$k.rp_filter=0" 2>/dev/null || true; done
# The client's own stack must not answer the director's SYN-ACKs to the spoofed sources it
# happens to see (none are its address, so nothing to do there).
cat > "$work/syn.cfg" <<CFG
{ eth(da=$DMAC, sa=$CMAC), ipv4(saddr=drnd(), daddr=$VIP, ttl=64), tcp(sp=drnd(), dp=80, seq=drnd(), syn, win=65535) }
CFG

rss_kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

# One run: rvsd with "$@" as extra options. Prints
# "<ok> <tried> <entries> <rss growth KiB> <syn/s sent> <ring drops>".
run() {
  ip netns exec "$D" "$RVSD" --socket "$work/rvsd.sock" --metrics-listen off --workers 1 --drain-time 0 \
    --interface eth0 --interface eth1 "$@" 2>"$work/rvsd.log" &
  rvsd_pid=$!
  for _ in $(seq 100); do [ -S "$work/rvsd.sock" ] && break; sleep 0.1; done
  "$RVSADM" --socket "$work/rvsd.sock" -A -t $VIP:80 -s rr
  "$RVSADM" --socket "$work/rvsd.sock" -a -t $VIP:80 -r 10.2.0.11:80 -m
  "$RVSADM" --socket "$work/rvsd.sock" -a -t $VIP:80 -r 10.2.0.12:80 -m
  for _ in $(seq 100); do ip netns exec "$D" nft list table netdev rvs 2>/dev/null | grep -q "$VIP" && break; sleep 0.1; done
  # Warm up (neighbours resolved, nginx up): must work before the flood.
  for _ in $(seq 10); do ip netns exec "$C" curl -s -o /dev/null --max-time 2 "http://$VIP/" && break; sleep 0.3; done
  local rss0 t0 t1 ok=0 tried=0 end
  rss0=$(rss_kb "$rvsd_pid" VmRSS)
  t0=$(ip netns exec "$C" cat /sys/class/net/eth0/statistics/tx_packets)
  ip netns exec "$C" timeout -s INT "$DUR" trafgen --dev eth0 --conf "$work/syn.cfg" -P 1 -q >"$work/trafgen.log" 2>&1 &
  local tg=$!
  sleep 1
  # Legitimate requests while the flood runs: at most 1000, until the flood ends.
  end=$((SECONDS + DUR - 1))
  while [ $SECONDS -lt $end ] && [ $tried -lt 1000 ]; do
    tried=$((tried + 1))
    if ip netns exec "$C" curl -s -o /dev/null --max-time "$CMT" "http://$VIP/"; then ok=$((ok + 1)); fi
  done
  wait "$tg" || true
  t1=$(ip netns exec "$C" cat /sys/class/net/eth0/statistics/tx_packets)
  local entries hwm
  entries=$("$RVSADM" --socket "$work/rvsd.sock" -L -n -c | tail -n +3 | wc -l)
  hwm=$(rss_kb "$rvsd_pid" VmHWM)
  kill -TERM "$rvsd_pid"; wait "$rvsd_pid" 2>/dev/null || true; rvsd_pid=
  rm -f "$work/rvsd.sock"
  local drops
  drops=$(grep -o '[0-9]* ring drops' "$work/rvsd.log" | awk '{ n += $1 } END { print n + 0 }')
  echo "$ok $tried $entries $((hwm - rss0)) $(( (t1 - t0) / DUR )) $drops"
}

extra=()
[ -n "${CONN_MAX:-}" ] && extra+=(--sysctl "rvs_conn_max=$CONN_MAX")
off=$(run --sysctl rvs_syn_proxy=0 "${extra[@]}")
on=$(run --sysctl rvs_syn_proxy=1 "${extra[@]}")

echo "SYN flood, ${DUR} s, NAT lab, $(nproc) CPUs; $(uptime | sed 's/.*load/load/')"
echo
echo "| rvs_syn_proxy | legitimate requests ok | entries after the flood | rvsd peak RSS growth | SYNs sent/s | ring drops |"
echo "|---|---|---|---|---|---|"
for r in "0|$off" "1|$on"; do
  IFS='|' read -r mode nums <<<"$r"
  read -r ok tried entries rss sps drops <<<"$nums"
  pct=$(awk -v a="$ok" -v b="$tried" 'BEGIN { printf "%.1f", b ? 100 * a / b : 0 }')
  echo "| $mode | $ok / $tried ($pct %) | $entries | $((rss / 1024)) MiB | $sps | $drops |"
done
