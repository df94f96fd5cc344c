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
# Usage: sudo bench/packet.sh [seconds-per-run]  (FLOWS=N source ports, default 256;
#        PACKET_WORKERS=N rvsd workers per interface, default 1)
# Needs: trafgen (Debian netsniff-ng), nftables, iproute2. Prints a markdown table for
# docs/benchmarks.md; note `uptime` with it (the numbers depend on the host's load).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
FLOWS=${FLOWS:-256}
P=${PREFIX:-rvbench}
PW=${PACKET_WORKERS:-1}

need() { command -v "$1" >/dev/null || { echo "bench/packet.sh: $1 is missing (apt-get install -y $2)" >&2; exit 2; }; }
need trafgen netsniff-ng
need nft nftables
need ip iproute2
[ "$(id -u)" = 0 ] || { echo "bench/packet.sh: needs root (network namespaces)" >&2; exit 2; }

cargo build --release -q -p rvsd -p rvsadm -p rvs-lab
LAB=target/release/rvs-lab
RVSD=target/release/rvsd
RVSADM=target/release/rvsadm
work=$(mktemp -d /tmp/rvs-bench-packet.XXXXXX)
rvsd_pid=
cleanup() {
  if [ -n "$rvsd_pid" ]; then kill -TERM "$rvsd_pid" 2>/dev/null || true; wait "$rvsd_pid" 2>/dev/null || true; fi
  "$LAB" down --prefix "$P" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$LAB" down --prefix "$P" >/dev/null 2>&1 || true
"$LAB" up nat --prefix "$P" --no-nginx >/dev/null
C=$P-client D=$P-director RS=("$P-rs1" "$P-rs2")
VIP=10.100.0.1
DMAC=$(ip netns exec "$D" cat /sys/class/net/eth0/address)
CMAC=$(ip netns exec "$C" cat /sys/class/net/eth0/address)
for rs in "${RS[@]}"; do
  ip netns exec "$rs" nft -f - <<NFT
table ip sink {
  chain in { type filter hook input priority 0; policy accept; udp dport 9 counter drop; }
}
NFT
done
# 14 + 20 + 8 + 18 = 60 bytes + FCS = a 64-byte frame.
cat > "$work/udp64.cfg" <<CFG
{ eth(da=$DMAC, sa=$CMAC), ipv4(saddr=10.1.0.2, daddr=$VIP, ttl=64), udp(sp=dinc(10000, $((10000 + FLOWS - 1))), dp=9), fill(0x41, 18) }
CFG

rx_total() {
  local n=0 r
  for rs in "${RS[@]}"; do
    r=$(ip netns exec "$rs" cat /sys/class/net/eth0/statistics/rx_packets)
    n=$((n + r))
  done
  echo "$n"
}
tx_client() { ip netns exec "$C" cat /sys/class/net/eth0/statistics/tx_packets; }

# One run: prints "<sent pps> <delivered pps>".
run() {
  local b0 t0 b1 t1
  b0=$(rx_total); t0=$(tx_client)
  ip netns exec "$C" timeout -s INT "$DUR" trafgen --dev eth0 --conf "$work/udp64.cfg" -P 1 -C -q >/dev/null 2>&1 || true
  sleep 0.5
  b1=$(rx_total); t1=$(tx_client)
  echo "$(( (t1 - t0) / DUR )) $(( (b1 - b0) / DUR ))"
}

# 1. rvsd
ip netns exec "$D" "$RVSD" --socket "$work/rvsd.sock" --metrics-listen off --workers 1 --drain-time 0 \
  --interface eth0 --interface eth1 --packet-workers "$PW" 2>"$work/rvsd.log" &
rvsd_pid=$!
for _ in $(seq 100); do [ -S "$work/rvsd.sock" ] && break; sleep 0.1; done
"$RVSADM" --socket "$work/rvsd.sock" -A -u $VIP:9 -s rr
"$RVSADM" --socket "$work/rvsd.sock" -a -u $VIP:9 -r 10.2.0.11:9 -m
"$RVSADM" --socket "$work/rvsd.sock" -a -u $VIP:9 -r 10.2.0.12:9 -m
for _ in $(seq 100); do ip netns exec "$D" nft list table netdev rvs 2>/dev/null | grep -q "$VIP" && break; sleep 0.1; done
ip netns exec "$D" ping -c1 -W1 10.2.0.11 >/dev/null 2>&1 || true
ip netns exec "$D" ping -c1 -W1 10.2.0.12 >/dev/null 2>&1 || true
read -r rvsd_sent rvsd_pps < <(run)
"$RVSADM" --socket "$work/rvsd.sock" -L -n --stats > "$work/rvsd.stats"
kill -TERM "$rvsd_pid"; wait "$rvsd_pid" 2>/dev/null || true; rvsd_pid=
workers=$(grep -o 'packet worker.*' "$work/rvsd.log" | sed 's/\x1b\[[0-9;]*m//g' || true)

# 2. the kernel's nftables DNAT (what rvs-lab's kernel_nat_baseline installs)
ip netns exec "$D" nft -f - <<NFT
table ip rvslab_baseline {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $VIP meta l4proto { tcp, udp } dnat to numgen inc mod 2 map { 0 : 10.2.0.11, 1 : 10.2.0.12 }
  }
}
NFT
read -r kern_sent kern_pps < <(run)
ip netns exec "$D" nft delete table ip rvslab_baseline

ratio=$(awk -v a="$rvsd_pps" -v b="$kern_pps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
echo "| path | offered pkt/s | delivered pkt/s | ratio |"
echo "|---|---:|---:|---:|"
echo "| rvsd packet plane ($PW worker(s)/interface) | $rvsd_sent | $rvsd_pps | $ratio |"
echo "| kernel nftables DNAT (numgen inc mod 2) | $kern_sent | $kern_pps | 1.00 |"
echo
echo "$DUR s per run, $FLOWS flows, 64-byte UDP; $(uptime)"
echo "rvsd: $workers" | head -5
sed -n '3,6p' "$work/rvsd.stats"
