#!/usr/bin/env bash
# Whole-system benchmark of the packet data plane against the kernel, in one run and in the
# identical topology (issue 4 "Benchmarks"): the rvs-lab NAT lab, 64-byte UDP frames from
# trafgen in the client namespace to VIP:9, NAT to two real servers under round robin;
#   1. rvsd --interface eth0 --interface eth1 (one worker per interface) in the director,
#   2. the director's own kernel: nftables `dnat to numgen inc mod 2` (rvs-lab's
#      kernel_nat_baseline, conntrack per flow), rvsd stopped.
# Measured: packets delivered at the real servers per second (sum of the rx_packets counters
# of their interfaces over the run; an nft rule on each real server then drops the datagrams,
# so no ICMP port-unreachable flows back). trafgen sends as fast as it can on one CPU.
#
# CPU pinning (PIN=1, the default; needs 2+ CPUs): trafgen is pinned to CPU $GEN_CPU (default
# 0) and rvsd (all its threads) to CPU $DIR_CPU (default 1), the same in both runs. What the
# pinning cannot equalise: on the kernel path the director's forwarding runs in the softirq of
# the sender, i.e. inline on the generator's CPU (veth delivers in the sender's context), and
# so do the server-side bridge and the real servers' receive path; on the rvsd path the
# generator's CPU also pays the AF_PACKET tap (the copy into rvsd's ring) and the nft ingress
# drop, while rvsd's CPU pays the forwarding, the transmit and, inline in its `sendmmsg`, the
# server-side bridge and the real servers' receive path. (Steering the director's receive to
# its own CPU with RPS does not work here: the queued skbs keep their trafgen socket reference,
# trafgen's send buffer fills, and trafgen aborts on EAGAIN.) PIN=0 leaves placement to the
# scheduler (trafgen -P 1 still pins itself to CPU 0). The CPUs are shared with whatever else
# runs on the host: note the load.
#
# The lab's switch is a Linux bridge in its own namespace. On a host with br_netfilter loaded
# (this one), a bridge hands every frame to that namespace's netfilter hooks too, which a real
# switch does not do and which costs the same on both paths; BR_NF=0 (the default) turns that
# off in the switch namespace only (net.bridge.bridge-nf-call-*=0), BR_NF=1 leaves it on.
#
# Also reported: rvsd's receive-ring drops (frames the kernel could not queue to rvsd) and, for
# both runs, the host's softnet backlog drops (/proc/net/softnet_stat, column 2).
#
# Contenders, in one run (issue 13): a baseline where the director drops everything at
# ingress, rvsd on AF_PACKET alone, rvsd with the XDP fast path (`--xdp generic`: the lab's
# links are veths) and its slow path on AF_PACKET, the same with the slow path on AF_XDP
# (`--xdp-slow-path xsk`), the kernel's nftables DNAT; each first with $FLOWS steady flows, then with
# a new connection per packet. Reported per contender: offered and delivered packets per
# second, loss, and the CPU time of the WHOLE MACHINE (/proc/stat, every CPU) above the
# baseline's, per delivered packet — so a contender gains nothing by using another core.
#
# Usage: sudo bench/packet.sh [seconds-per-run]  (FLOWS=N source ports, default 256;
#        PACKET_WORKERS=N rvsd workers per interface, default 1; RVSD_ARGS extra rvsd options;
#        RVSD_BIN=path another rvsd binary, e.g. an older build, for A/B runs)
# Needs: trafgen (Debian netsniff-ng), nftables, iproute2, util-linux (taskset). Prints a
# markdown table for docs/benchmarks.md with `uptime` (the numbers depend on the host's load).
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$0")/.."
. bench/common.sh
DUR=${1:-10}
FLOWS=${FLOWS:-256}
P=${PREFIX:-rvbench}
PW=${PACKET_WORKERS:-1}
PIN=${PIN:-1}
BR_NF=${BR_NF:-0}
GEN_CPU=${GEN_CPU:-0}
DIR_CPU=${DIR_CPU:-1}

need trafgen netsniff-ng
need nft nftables
need ip iproute2
need taskset util-linux
[ "$(id -u)" = 0 ] || { echo "bench/packet.sh: needs root (network namespaces)" >&2; exit 2; }

bench_lab_build
bench_nat_lab packet
if [ "$BR_NF" = 0 ]; then
  bench_switch_without_netfilter
fi
brnf="switch bridge netfilter $([ "$BR_NF" = 0 ] && echo off || echo on) (BR_NF=$BR_NF)"
if [ "$PIN" = 1 ]; then
  GEN_PIN=(taskset -c "$GEN_CPU") DIR_PIN=(taskset -c "$DIR_CPU")
  pin="trafgen pinned to CPU $GEN_CPU, rvsd to CPU $DIR_CPU"
else
  GEN_PIN=() DIR_PIN=()
  pin="unpinned (PIN=0): trafgen -P 1 pins itself to CPU 0, rvsd runs where the scheduler puts it"
fi
# 14 + 20 + 8 + 18 = 60 bytes + FCS = a 64-byte frame.
cat > "$work/udp64.cfg" <<CFG
{ eth(da=$DMAC, sa=$CMAC), ipv4(saddr=10.1.0.2, daddr=$VIP, ttl=64), udp(sp=dinc(10000, $((10000 + FLOWS - 1))), dp=9), fill(0x41, 18) }
CFG

# Backlog drops (all CPUs).
softnet_drops() {
  local n=0 _p d _r
  while read -r _p d _r; do
    n=$((n + 16#$d))
  done </proc/net/softnet_stat
  echo "$n"
}


# One run with trafgen config $1: prints
# "<sent pps> <delivered pps> <softnet drops> <busy CPU ns of the machine> <delivered total>".
run() {
  local cfg=$1 b0 t0 s0 c0 b1 t1 s1 c1
  b0=$(rx_total); t0=$(tx_client); s0=$(softnet_drops); c0=$(busy_ns)
  ip netns exec "$C" "${GEN_PIN[@]}" timeout -s INT "$DUR" trafgen --dev eth0 --conf "$cfg" -P 1 -C -q >"$work/trafgen.log" 2>&1 || true
  # trafgen gives up on a send error (e.g. EAGAIN): say so rather than report a short run.
  grep -i 'fail' "$work/trafgen.log" >&2 || true
  sleep 0.5
  b1=$(rx_total); t1=$(tx_client); s1=$(softnet_drops); c1=$(busy_ns)
  echo "$(( (t1 - t0) / DUR )) $(( (b1 - b0) / DUR )) $((s1 - s0)) $((c1 - c0)) $((b1 - b0))"
}

# New connections: every packet from another source address (trafgen increments it per
# packet), so every packet makes a connection (rvsd: a new rvs-core entry scheduled in
# userspace, with XDP too; kernel: a new conntrack entry). Replies never come (the real
# servers drop the datagrams), so the director's reverse-path filter is off for these.
cat > "$work/newconn.cfg" <<CFG
{ eth(da=$DMAC, sa=$CMAC), ipv4(saddr=dinc(), daddr=$VIP, ttl=64), udp(sp=10000, dp=9), fill(0x41, 18) }
CFG
for k in all default eth0; do ip netns exec "$D" sysctl -qw "net.ipv4.conf.$k.rp_filter=0" 2>/dev/null || true; done

rvsd_start() {
  ip netns exec "$D" "${DIR_PIN[@]}" "$RVSD" --socket "$work/rvsd.sock" --metrics-listen off --workers 1 --drain-time 0 \
    --interface eth0 --interface eth1 --packet-workers "$PW" "$@" ${RVSD_ARGS:-} 2>"$work/rvsd.log" &
  rvsd_pid=$!
  for _ in $(seq 100); do [ -S "$work/rvsd.sock" ] && break; sleep 0.1; done
  bench_nat_service
}
kernel_nat_on() {
  ip netns exec "$D" nft -f - <<NFT
table ip rvslab_baseline {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $VIP meta l4proto { tcp, udp } dnat to numgen inc mod 2 map { 0 : 10.2.0.11, 1 : 10.2.0.12 }
  }
}
NFT
}
kernel_nat_off() { ip netns exec "$D" nft delete table ip rvslab_baseline; ip netns exec "$D" conntrack -F >/dev/null 2>&1 || true; }

# Results, one row per run: name, and the five numbers of run().
rows=()
measure() {
  local name=$1 cfg=$2
  rows+=("$name|$(run "$cfg")")
}

# 0. Baseline: the director drops everything at ingress (netdev ingress hook on eth0): what
# the generator, the links and the director's receive cost without any forwarding.
ip netns exec "$D" nft -f - <<NFT
table netdev rvsbench_drop {
  chain in { type filter hook ingress device eth0 priority -500; policy accept; udp dport 9 drop; }
}
NFT
measure "baseline: dropped at the director's ingress" "$work/udp64.cfg"
base_new=$(run "$work/newconn.cfg")
ip netns exec "$D" nft delete table netdev rvsbench_drop

# 1. rvsd, AF_PACKET alone
rvsd_start --xdp off
measure "rvsd AF_PACKET ($PW worker(s)/interface)" "$work/udp64.cfg"
"$RVSADM" --socket "$work/rvsd.sock" -L -n --stats > "$work/rvsd.stats"
rvsd_stop
workers=$(grep -o 'packet worker.*' "$work/rvsd.log" | sed 's/\x1b\[[0-9;]*m//g' || true)
rvsd_start --xdp off
measure "new connections: rvsd AF_PACKET" "$work/newconn.cfg"
rvsd_stop

# 2. rvsd with the XDP fast path (generic mode: the lab's links are veths, see
# docs/internals/packet-plane.md; XDP_MODE=native to force native), the slow path (what the
# program does not forward) on AF_PACKET
rvsd_start --xdp "${XDP_MODE:-generic}" --xdp-slow-path af_packet
measure "rvsd XDP (${XDP_MODE:-generic}) + AF_PACKET" "$work/udp64.cfg"
"$RVSADM" --socket "$work/rvsd.sock" -L -n --stats > "$work/rvsd-xdp.stats"
rvsd_stop
xdp_log=$(grep -o 'XDP fast path.*' "$work/rvsd.log" | sed 's/\x1b\[[0-9;]*m//g' || true)
rvsd_start --xdp "${XDP_MODE:-generic}" --xdp-slow-path af_packet
measure "new connections: rvsd XDP (${XDP_MODE:-generic}) + AF_PACKET" "$work/newconn.cfg"
rvsd_stop
xdp_new_log=$(grep -o 'XDP fast path.*' "$work/rvsd.log" | sed 's/\x1b\[[0-9;]*m//g' || true)

# 3. the same with the slow path over AF_XDP (an XSK per worker; required, so a run that
# could not bind one fails rather than measuring AF_PACKET twice)
rvsd_start --xdp "${XDP_MODE:-generic}" --xdp-slow-path xsk
measure "rvsd XDP (${XDP_MODE:-generic}) + AF_XDP" "$work/udp64.cfg"
rvsd_stop
rvsd_start --xdp "${XDP_MODE:-generic}" --xdp-slow-path xsk
measure "new connections: rvsd XDP (${XDP_MODE:-generic}) + AF_XDP" "$work/newconn.cfg"
rvsd_stop
xsk_log=$(grep -o 'XDP \(fast\|slow\) path.*' "$work/rvsd.log" | sed 's/\x1b\[[0-9;]*m//g' || true)

# 4. the kernel's nftables DNAT (what rvs-lab's kernel_nat_baseline installs), rvsd stopped
kernel_nat_on
measure "kernel nftables DNAT (numgen inc mod 2)" "$work/udp64.cfg"
kernel_nat_off
kernel_nat_on
measure "new connections: kernel nftables DNAT" "$work/newconn.cfg"
kernel_nat_off

read -r _ _ _ base_cpu _ <<<"$(cut -d'|' -f2 <<<"${rows[0]}")"
read -r _ _ _ base_new_cpu _ <<<"$base_new"
echo "| path | offered pkt/s | delivered pkt/s | loss | softnet drops | machine CPU ns / delivered pkt above the drop baseline |"
echo "|---|---:|---:|---:|---:|---:|"
for r in "${rows[@]}"; do
  name=${r%%|*}
  read -r sent pps snd cpu total <<<"${r#*|}"
  case "$name" in
    baseline*) per="(baseline: $(awk -v c="$cpu" -v d="$DUR" 'BEGIN { printf "%.0f%% of the machine", 100 * c / ((d + 0.5) * 1e9 * '"$(nproc)"') }'))" ;;
    new*) per=$(awk -v c="$cpu" -v b="$base_new_cpu" -v n="$total" 'BEGIN { printf (n > 0) ? "%.0f" : "n/a", (c - b) / n }') ;;
    *) per=$(awk -v c="$cpu" -v b="$base_cpu" -v n="$total" 'BEGIN { printf (n > 0) ? "%.0f" : "n/a", (c - b) / n }') ;;
  esac
  loss=$(awk -v s="$sent" -v p="$pps" 'BEGIN { if (s > 0) printf "%.1f %%", 100 * (s - p) / s; else print "n/a" }')
  echo "| $name | $sent | $pps | $loss | $snd | $per |"
done
echo
echo "$DUR s per run, $FLOWS flows (new connections: a new source address per packet), 64-byte UDP; $pin; $brnf; $(nproc) CPUs; $(uptime)"
ring_drops=$(sed -n 's/.* \([0-9][0-9]*\) ring drops.*/\1/p' <<<"$workers" | awk '{ n += $1 } END { print n + 0 }')
echo "rvsd AF_PACKET ring drops: $ring_drops"
echo "rvsd: $workers" | head -5
echo "$xdp_log" | head -5
echo "new connections, XDP + AF_PACKET: $xdp_new_log" | tail -2
echo "new connections, XDP + AF_XDP:"; echo "$xsk_log" | tail -5
echo "rvsd AF_PACKET --stats:"; sed -n '3,6p' "$work/rvsd.stats"
echo "rvsd XDP --stats:"; sed -n '3,6p' "$work/rvsd-xdp.stats"
