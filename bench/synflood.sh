#!/usr/bin/env bash
# SYN flood through the rvs-lab NAT lab (issue 16): trafgen in the client namespace sends TCP
# SYNs from random source addresses and ports to VIP:80 as fast as it can (the veth limit on
# this host) for $DUR seconds, while a bounded loop of legitimate curl requests runs from the
# same namespace. Three runs, identical but for the defence:
#   off:       rvs_syn_proxy=0, AF_PACKET: every SYN that reaches the worker makes an entry;
#   userspace: rvs_syn_proxy=1, AF_PACKET: the packet worker answers SYNs with cookies;
#   xdp:       rvs_syn_proxy=1, --xdp generic: the XDP program answers SYNs with the same
#              cookies before they reach a ring (docs/internals/syn-flood.md).
# Both with rvs_conn_max at its default (memory-derived) unless CONN_MAX is set.
# Reported per run: legitimate requests that succeeded / tried, connection-table entries right
# after the flood (rvsadm -Lnc), rvsd's peak RSS growth (VmHWM at the end minus VmRSS before
# the flood), SYNs trafgen offered per second, SYN-ACKs sent per second (XDP program +
# userspace proxy, from rvsd's metrics), and the frames lost before userspace (AF_PACKET ring
# drops, AF_XDP ring-full and fill-ring-empty drops, from its log).
#
# Usage: sudo bench/synflood.sh [seconds]   (default 10; CURL_MAX_TIME per request, default
#        10 s, room for SYN retransmits; CONN_MAX=N sets rvs_conn_max; MODES="off userspace
#        xdp" the runs; RVS_BENCH_BIN=dir of prebuilt binaries, default target/release, built
#        first; RVSD_BIN another rvsd binary). Three runs of 10 s take about 1.5 minutes.
# Needs: trafgen (Debian netsniff-ng), nginx, curl, iproute2. Prints a markdown table for
# docs/benchmarks.md with `uptime` (the numbers depend on the host's load).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
P=${PREFIX:-rvsyn}
CMT=${CURL_MAX_TIME:-10}
MODES=${MODES:-off userspace xdp}

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
# The lab's client is also a router: it would route the director's SYN-ACKs to the spoofed
# sources back to the director, doubling the load in a way no real network does.
ip netns exec "$C" sysctl -qw net.ipv4.ip_forward=0
cat > "$work/syn.cfg" <<CFG
{ eth(da=$DMAC, sa=$CMAC), ipv4(saddr=drnd(), daddr=$VIP, ttl=64), tcp(sp=drnd(), dp=80, seq=drnd(), syn, win=65535) }
CFG

rss_kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

metric() { awk -v m="$2" '$1 == m || index($1, m"{") == 1 { n += $2 } END { printf "%d", n }' "$1"; }

# One run: rvsd with "$@" as extra options. Prints
# "<ok> <tried> <entries> <rss growth KiB> <syn/s offered> <synack/s> <lost before userspace>".
run() {
  local mport=$((9300 + RANDOM % 500))
  ip netns exec "$D" "$RVSD" --socket "$work/rvsd.sock" --metrics-listen "127.0.0.1:$mport" --workers 1 --drain-time 0 \
    --interface eth0 --interface eth1 "$@" 2>"$work/rvsd.log" &
  rvsd_pid=$!
  for _ in $(seq 100); do [ -S "$work/rvsd.sock" ] && break; sleep 0.1; done
  "$RVSADM" --socket "$work/rvsd.sock" -A -t $VIP:80 -s rr
  "$RVSADM" --socket "$work/rvsd.sock" -a -t $VIP:80 -r 10.2.0.11:80 -m
  "$RVSADM" --socket "$work/rvsd.sock" -a -t $VIP:80 -r 10.2.0.12:80 -m
  for _ in $(seq 100); do ip netns exec "$D" nft list table netdev rvs 2>/dev/null | grep -q "$VIP" && break; sleep 0.1; done
  # Warm up (neighbours resolved, nginx up): must work before the flood.
  for _ in $(seq 10); do ip netns exec "$C" curl -s -o /dev/null --max-time 2 "http://$VIP/" && break; sleep 0.3; done
  sleep 0.3
  ip netns exec "$D" curl -s "http://127.0.0.1:$mport/metrics" >"$work/m0" || true
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
    if ip netns exec "$C" curl -s -o /dev/null --connect-timeout "$CMT" --max-time "$CMT" "http://$VIP/"; then ok=$((ok + 1)); fi
  done
  wait "$tg" || true
  t1=$(ip netns exec "$C" cat /sys/class/net/eth0/statistics/tx_packets)
  ip netns exec "$D" curl -s "http://127.0.0.1:$mport/metrics" >"$work/m1" || true
  local entries hwm
  entries=$("$RVSADM" --socket "$work/rvsd.sock" -L -n -c | tail -n +3 | wc -l)
  hwm=$(rss_kb "$rvsd_pid" VmHWM)
  kill -TERM "$rvsd_pid"; wait "$rvsd_pid" 2>/dev/null || true; rvsd_pid=
  rm -f "$work/rvsd.sock"
  # The program's verdicts and the workers' summaries, for the record (stderr).
  grep -hE "XDP SYN answering:|XDP fast path: [0-9]|packet worker|XDP slow path on .*received" "$work/rvsd.log" | sed "s/^/  [$*] /" >&2 || true
  local lost sa
  lost=$(grep -oE '[0-9]+ ring drops|[0-9]+ ring full|[0-9]+ fill ring empty' "$work/rvsd.log" | awk '{ n += $1 } END { print n + 0 }')
  sa=$(( $(metric "$work/m1" rvs_syn_proxy_cookies_sent_total) - $(metric "$work/m0" rvs_syn_proxy_cookies_sent_total) ))
  echo "$ok $tried $entries $((hwm - rss0)) $(( (t1 - t0) / DUR )) $(( sa / DUR )) $lost"
}

extra=()
[ -n "${CONN_MAX:-}" ] && extra+=(--sysctl "rvs_conn_max=$CONN_MAX")
declare -A res
for m in $MODES; do
  case $m in
    off) res[$m]=$(run --sysctl rvs_syn_proxy=0 "${extra[@]}") ;;
    userspace) res[$m]=$(run --sysctl rvs_syn_proxy=1 "${extra[@]}") ;;
    xdp) res[$m]=$(run --sysctl rvs_syn_proxy=1 --xdp generic "${extra[@]}") ;;
    *) echo "bench/synflood.sh: unknown mode $m (off, userspace, xdp)" >&2; exit 2 ;;
  esac
done

echo "SYN flood, ${DUR} s, NAT lab, $(nproc) CPUs; $(uptime | sed 's/.*load/load/')"
echo
echo "| defence | legitimate requests ok | entries after the flood | rvsd peak RSS growth | SYNs offered/s | SYN-ACKs sent/s | frames lost before userspace |"
echo "|---|---|---|---|---|---|---|"
for m in $MODES; do
  read -r ok tried entries rss sps sas lost <<<"${res[$m]}"
  pct=$(awk -v a="$ok" -v b="$tried" 'BEGIN { printf "%.1f", b ? 100 * a / b : 0 }')
  echo "| $m | $ok / $tried ($pct %) | $entries | $((rss / 1024)) MiB | $sps | $sas | $lost |"
done
