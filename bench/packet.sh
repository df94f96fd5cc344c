#!/usr/bin/env bash
# The packet data plane against the kernel's nftables DNAT, with the director's work on ONE
# core and the generator on another (issue 13's goals), the same way for every contender.
#
# Topology: the rvs-lab NAT lab. client eth0 <-veth-> director eth0; director eth1 <-veth->
# the switch's bridge with the two real servers. 64-byte IPv4 frames to VIP:9 (UDP) or VIP:80
# (TCP SYN), NAT to the two real servers under round robin. Nothing reaches the real servers
# and nothing flows back: the sink (below) counts and drops the frames as they leave the
# director.
#
# Where the work runs (CPU $DIR_CPU = the director's, CPU $GEN_CPU = the generator's):
#  - The generator is `rvs-lab trafficgen` (crates/bpf/bpf/trafficgen.c): BPF_PROG_TEST_RUN in
#    live-frames mode, each frame handed by the client veth's ndo_xdp_xmit straight into the
#    director eth0's receive ring; no socket, no skb on its CPU. ONE kernel call per run (a
#    call's teardown costs an RCU grace period, tens of ms here), paced, when paced, by the
#    program itself (it drops repetitions before the next frame is due). It runs on CPU
#    $GEN_CPU as SCHED_IDLE, so the far side preempts it the moment it has work. (trafgen cannot be used: see
#    docs/benchmarks.md.)
#  - The director's eth0 runs NAPI (GRO on, which is what gives a veth a NAPI instance) in
#    THREADED mode, its kthread pinned to CPU $DIR_CPU: the frame's receive (the skb built from
#    the frame, as a NIC driver builds it), the XDP program, the kernel's DNAT and forwarding,
#    the AF_PACKET tap and the transmit on eth1 all run there, for every contender. rvsd (all
#    its threads) is pinned to CPU $DIR_CPU too.
#  - The far side is the sink: `rvs-lab sink` (crates/bpf/bpf/sink.c), an XDP program on the
#    switch's end of eth1 that counts and drops the UDP datagrams to port 9 (and TCP to port
#    80) addressed to a real server (10.2.0.0/24: a frame the director did not rewrite is not
#    counted) and passes the rest (ARP) to the bridge. It runs in that veth's threaded NAPI
#    kthread, pinned to CPU $FAR_CPU: not the director's work, and a few tens of ns per packet
#    (the real servers' own receive, the earlier method, cost CPU $GEN_CPU as much per packet
#    as the director's work and left the generator too little). TSO is off on eth1 so the
#    kernel's forwarded skbs take that NAPI path too.
#
# Measured per run: offered = frames the generator produced; delivered = datagrams the sink
# counted (UDP to port 9 to a real server only, so not the SYNs); loss = 1 -
# delivered / offered; "ring full" = frames the director's eth0 receive ring had no room
# for (the client veth's xdp_xmit_errors: the director was saturated); CPU $DIR_CPU busy time
# (wall time less /proc/stat's idle + iowait, which a tickless kernel measures exactly) as a
# share of the run and per
# delivered packet; the capacity estimate delivered / busy share when CPU $DIR_CPU was not
# saturated; and the whole machine's busy time less the generator's own (its schedstat), per
# delivered packet, which contains the far side and would show director work escaping to the
# other CPU.
#
# Runs: a baseline where the director drops everything at ingress (nft netdev), rvsd on
# AF_PACKET (--xdp off), rvsd with the XDP fast path in generic mode with its slow path on
# AF_PACKET and on AF_XDP, rvsd with the program in native mode (AF_XDP slow path), and the
# kernel's nftables DNAT; each with $FLOWS steady flows at the generator's full rate, then
# with a new source address per frame (new connections). Then each XDP contender at twice
# the kernel's delivered steady rate (the goal's "2x with no loss"). Then established flows
# during a SYN flood: $FLOWS steady flows at half the kernel's steady rate alone, and again
# with a second generator flooding SYNs from 2^28 source addresses (a new one per SYN) to
# VIP:80 as fast as it can,
# for rvsd XDP (generic, AF_XDP) and the kernel.
#
# Usage: sudo bench/packet.sh [seconds-per-run]   (default 10; 17 runs and three 1-second
#        bursts, so 10 s fits in about 5 minutes once built)
#   FLOWS=N steady flows (source ports, default 256); PACKET_WORKERS=N rvsd workers per
#   interface (default 1); RVSD_ARGS extra rvsd options; RVSD_BIN another rvsd build (A/B);
#   GEN_CPU / DIR_CPU (default 0 / 1); FAR_CPU the far side's CPU (default GEN_CPU; with a
#   third CPU, FAR_CPU=2 keeps the generator from pausing for it); BR_NF=1 leaves the switch
#   bridge's netfilter on; PERF_DIR=DIR records `perf record -g` of the director's CPU during
#   each table run into DIR/<row>.data (those runs' figures then include perf's own cost: a
#   run for profiles, not for the table; needs perf).
# Needs: nftables, iproute2, ethtool, util-linux (taskset, chrt), a kernel with BPF live frames
# (5.18+) and threaded NAPI. Prints a markdown table for docs/benchmarks.md.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$0")/.."
. bench/common.sh
DUR=${1:-10}
FLOWS=${FLOWS:-256}
P=${PREFIX:-rvbench}
PW=${PACKET_WORKERS:-1}
BR_NF=${BR_NF:-0}
GEN_CPU=${GEN_CPU:-0}
DIR_CPU=${DIR_CPU:-1}
FAR_CPU=${FAR_CPU:-$GEN_CPU}

need nft nftables
need ip iproute2
need ethtool ethtool
need taskset util-linux
need chrt util-linux
[ "$(id -u)" = 0 ] || { echo "bench/packet.sh: needs root (network namespaces)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "bench/packet.sh: needs 2 CPUs (generator and director apart)" >&2; exit 2; }

bench_lab_build
bench_nat_lab packet
# prog_cost turns the kernel's BPF statistics on for a moment: put them back on any exit.
bpf_stats_old=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -qw kernel.bpf_stats_enabled="$bpf_stats_old"; bench_nat_lab_cleanup' EXIT
if [ "$BR_NF" = 0 ]; then
  bench_switch_without_netfilter
fi
SW=$P-switch
# The switch's end of the director's eth1 (the lab names it after its node and device).
SWPORT=director-eth1
brnf="switch bridge netfilter $([ "$BR_NF" = 0 ] && echo off || echo on) (BR_NF=$BR_NF)"
# The real servers also drop the SYN flood (no SYN-ACK, no RST flows back).
for rs in "${RS[@]}"; do
  ip netns exec "$rs" nft add rule ip sink in tcp dport 80 drop
done
for k in all default eth0 eth1; do ip netns exec "$D" sysctl -qw "net.ipv4.conf.$k.rp_filter=0" 2>/dev/null || true; done

# Threaded NAPI: `threaded_napi NS DEV CPU` gives DEV a NAPI instance (GRO on), runs it in
# its own kthread and pins that to CPU. The kthreads are named napi/DEV-ID, and eth0 is
# common, so they are found as the ones that appear.
threaded_napi() {
  local ns=$1 dev=$2 cpu=$3 before after p found=
  before=$(pgrep -x 'napi/.*' | sort || true)
  ip netns exec "$ns" ethtool -K "$dev" gro on
  ip netns exec "$ns" sh -c "echo 1 > /sys/class/net/$dev/threaded"
  for _ in $(seq 20); do
    after=$(pgrep -x 'napi/.*' | sort || true)
    found=$(comm -13 <(echo "$before") <(echo "$after"))
    [ -n "$found" ] && break
    sleep 0.05
  done
  [ -n "$found" ] || { echo "bench/packet.sh: no NAPI kthread appeared for $dev in $ns" >&2; exit 1; }
  for p in $found; do taskset -pc "$cpu" "$p" >/dev/null; done
  echo "$found"
}
# TSO off on eth1: a veth sends an skb through its peer's NAPI only when it cannot be a TSO
# super-frame (veth_skb_is_eligible_for_gro).
ip netns exec "$D" ethtool -K eth1 tso off >/dev/null
# The sink on the switch's end of eth1 (native XDP: a veth has it), before its NAPI is made
# threaded (the program gives the veth its NAPI too).
ip netns exec "$SW" "$LAB" sink --dev "$SWPORT" --prefix 10.2.0.0/24 --count-file "$work/sink.count" \
  --seconds 7200 2>"$work/sink.log" &
# The lab's teardown kills it (every process in the lab's namespaces): no job notice for that.
disown
for _ in $(seq 100); do [ -s "$work/sink.count" ] && break; sleep 0.05; done
[ -s "$work/sink.count" ] || { cat "$work/sink.log" >&2; echo "bench/packet.sh: the sink did not start" >&2; exit 1; }
dir_napi=$(threaded_napi "$D" eth0 "$DIR_CPU")
far_napi=$(threaded_napi "$SW" "$SWPORT" "$FAR_CPU")
napi_note="director eth0 NAPI threaded (kthread $(cat /proc/$dir_napi/comm) on CPU $DIR_CPU), far side $(cat /proc/$far_napi/comm) on CPU $FAR_CPU"

# The generator: gen SECONDS [trafficgen options...], on CPU $GEN_CPU. Flat out (no --rate)
# or paced (--rate: the program drops repetitions before the next frame is due, and after it
# was preempted it sends at most 32 frames back to back and skips the rest: the offered column
# is what it sent), always SCHED_IDLE: the far side's NAPI kthread on the same CPU preempts it
# as soon as it is woken. (At nice 19 it did not: a woken kthread waited for the generator's
# time slice, and the far side's 256-frame ring overflowed — 8 % of the frames at 1.15 Mpps,
# 11 % at 290 kpps, measured 23:30 on the quiet machine; SCHED_IDLE: 0.2 % at 1.15 Mpps.)
# Prints "<frames produced> <its CPU ns>".
gen() {
  local secs=$1 log="$work/gen.$BASHPID"
  shift
  ip netns exec "$C" taskset -c "$GEN_CPU" chrt --idle 0 "$LAB" trafficgen --dev eth0 --dst-mac "$DMAC" \
    --src 10.1.0.2 --dst "$VIP" --seconds "$secs" "$@" >"$log" 2>&1 || {
    cat "$log" >&2
    exit 1
  }
  sed -n 's/^produced \([0-9]*\) frames .* cpu \([0-9]*\) ns.*/\1 \2/p' "$log"
}
STEADY=(--flows "$FLOWS")
# 2^28 source addresses each (16/4 and 32/4, no lab address among them): flat out the generator
# makes ~9 million frames a second, so 2^24 wrapped within 2 s and ~5 % of the frames the
# director got in a 10 s run were a known flow's second packet, not a new connection.
NEWCONN=(--sources 268435456 --first-source 16.0.0.0)
FLOOD=(--proto syn --dport 80 --sources 268435456 --first-source 32.0.0.0)

# Counters.
xmit_errors() { ip netns exec "$C" ethtool -S eth0 | awk '/xdp_xmit_errors/ { n += $2 } END { print n + 0 }'; }
# The sink's count of UDP datagrams to port 9 at a real server, read after its next 20 ms
# update.
udp_sunk() {
  sleep 0.05
  sed -n 's/^udp9 //p' "$work/sink.count"
}
# Idle ns of CPU $1 ("" = every CPU) from /proc/stat: idle + iowait. On a tickless kernel
# these come from the idle loop's own clock, while the busy fields are sampled at ticks and
# miss a CPU that wakes for less than a tick at a time (a NAPI kthread draining a ring, here:
# the busy fields showed 1 % for a CPU forwarding 100 000 packets a second). So busy time is
# wall time less idle time.
cpu_idle_ns() {
  awk -v hz="$(getconf CLK_TCK)" -v c="cpu$1" '$1 == c { printf "%.0f\n", ($5 + $6) * 1e9 / hz }' /proc/stat
}
# Steal ns of CPU $1: time the hypervisor ran something else while this vCPU wanted to run.
# It is inside the busy time above (wall less idle) and, while it lasts, nothing drains the
# director's ring: reported per run so a ring overflow with CPU $DIR_CPU half idle can be
# told apart from the director's own doing.
cpu_steal_ns() {
  awk -v hz="$(getconf CLK_TCK)" -v c="cpu$1" '$1 == c { printf "%.0f\n", $9 * 1e9 / hz }' /proc/stat
}
NCPU=$(nproc)

# One run: run NAME [trafficgen options...] appends a row:
# "NAME|offered delivered ring-drops cpu1-busy-ns machine-busy-ns gen-ns wall-ns"
rows=()
run() {
  local name=$1 b0 x0 c0 m0 s0 t0 b1 x1 c1 m1 s1 t1 out w
  shift
  b0=$(udp_sunk); x0=$(xmit_errors); c0=$(cpu_idle_ns "$DIR_CPU"); m0=$(cpu_idle_ns ""); s0=$(cpu_steal_ns "$DIR_CPU"); t0=$(date +%s%N)
  local prof=
  if [ -n "${PERF_DIR:-}" ] && [ "$DUR" -ge 3 ]; then
    # CPU $DIR_CPU's profile over the middle of the run (call graphs), named after the row.
    (sleep 1; perf record -q -g -C "$DIR_CPU" -o "$PERF_DIR/$(tr -c 'a-zA-Z0-9\n' _ <<<"$name").data" \
      -- sleep $((DUR - 2)) >/dev/null 2>&1) &
    prof=$!
  fi
  out=$(gen "$DUR" "$@")
  [ -z "$prof" ] || wait "$prof"
  sleep 0.3
  b1=$(udp_sunk); x1=$(xmit_errors); c1=$(cpu_idle_ns "$DIR_CPU"); m1=$(cpu_idle_ns ""); s1=$(cpu_steal_ns "$DIR_CPU"); t1=$(date +%s%N)
  read -r produced gen_ns <<<"$out"
  w=$((t1 - t0))
  rows+=("$name|$produced $((b1 - b0)) $((x1 - x0)) $((w - (c1 - c0))) $((NCPU * w - (m1 - m0))) $gen_ns $w $((s1 - s0))")
}
# Established flows during a SYN flood: flood NAME RATE runs $FLOWS steady UDP flows at RATE
# with (flood NAME RATE syn) or without a second generator flooding SYNs; delivered counts
# only the UDP datagrams (the sink's counter).
flood() {
  local name=$1 rate=$2 syn=${3:-} u0 x0 c0 m0 s0 t0 u1 x1 c1 m1 s1 t1 out fpid w fout=
  u0=$(udp_sunk); x0=$(xmit_errors); c0=$(cpu_idle_ns "$DIR_CPU"); m0=$(cpu_idle_ns ""); s0=$(cpu_steal_ns "$DIR_CPU"); t0=$(date +%s%N)
  if [ -n "$syn" ]; then
    (gen "$DUR" "${FLOOD[@]}" >"$work/flood.out") &
    fpid=$!
  fi
  out=$(gen "$DUR" "${STEADY[@]}" --rate "$rate")
  if [ -n "$syn" ]; then wait "$fpid"; fout=$(cat "$work/flood.out"); fi
  sleep 0.3
  u1=$(udp_sunk); x1=$(xmit_errors); c1=$(cpu_idle_ns "$DIR_CPU"); m1=$(cpu_idle_ns ""); s1=$(cpu_steal_ns "$DIR_CPU"); t1=$(date +%s%N)
  read -r produced gen_ns <<<"$out"
  if [ -n "$fout" ]; then
    read -r fprod fgen <<<"$fout"
    flood_note+=("$name: the SYN flood offered $((fprod / DUR)) SYN/s")
    gen_ns=$((gen_ns + fgen))
  fi
  w=$((t1 - t0))
  rows+=("$name|$produced $((u1 - u0)) $((x1 - x0)) $((w - (c1 - c0))) $((NCPU * w - (m1 - m0))) $gen_ns $w $((s1 - s0))")
}
flood_note=()

rvsd_start() {
  ip netns exec "$D" taskset -c "$DIR_CPU" "$RVSD" --socket "$work/rvsd.sock" --metrics-listen off --workers 1 --drain-time 0 \
    --interface eth0 --interface eth1 --packet-workers "$PW" "$@" ${RVSD_ARGS:-} 2>"$work/rvsd.log" &
  rvsd_pid=$!
  for _ in $(seq 100); do [ -S "$work/rvsd.sock" ] && break; sleep 0.1; done
  bench_nat_service
  "$RVSADM" --socket "$work/rvsd.sock" -A -t $VIP:80 -s rr
  "$RVSADM" --socket "$work/rvsd.sock" -a -t $VIP:80 -r 10.2.0.11:80 -m
  "$RVSADM" --socket "$work/rvsd.sock" -a -t $VIP:80 -r 10.2.0.12:80 -m
}
# rvsd's log lines worth keeping, without colour codes: log_lines LABEL PATTERN
logs=()
log_lines() {
  local l
  while IFS= read -r l; do logs+=("$1: $l"); done < <(grep -o "$2" "$work/rvsd.log" | sed 's/\x1b\[[0-9;]*m//g' | awk 'NR <= 6' || true)
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
  ip netns exec "$D" ping -c1 -W1 10.2.0.11 >/dev/null 2>&1 || true
  ip netns exec "$D" ping -c1 -W1 10.2.0.12 >/dev/null 2>&1 || true
}
kernel_nat_off() { ip netns exec "$D" nft delete table ip rvslab_baseline; ip netns exec "$D" conntrack -F >/dev/null 2>&1 || true; }

# The XDP program's own cost per packet in the steady flows: the kernel's BPF run-time
# statistics (kernel.bpf_stats_enabled, host-wide, so on only for this 1-second extra burst
# after the measured run and restored at once) give the program's run time and run count on
# eth0. Not part of the table's runs (the statistics cost a little per run themselves).
prog_cost() {
  local id line
  id=$(ip netns exec "$D" ip -d link show eth0 2>/dev/null | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' | sed -n 1p)
  if [ -z "$id" ] || ! command -v bpftool >/dev/null; then
    logs+=("$1: XDP program alone: not measured (no program id on eth0 or no bpftool)")
    return
  fi
  sysctl -qw kernel.bpf_stats_enabled=1
  gen 1 "${STEADY[@]}" >/dev/null
  line=$(bpftool prog show id "$id" | sed -n 1p)
  sysctl -qw kernel.bpf_stats_enabled="$bpf_stats_old"
  logs+=("$1: XDP program on eth0 during a 1 s burst of the steady flows (kernel BPF stats): $(awk '{ for (i = 1; i < NF; i++) { if ($i == "run_time_ns") t = $(i + 1); if ($i == "run_cnt") n = $(i + 1) } } END { if (n > 0) printf "%d runs, %.0f ns per run", n, t / n; else print "no runs counted" }' <<<"$line")")
}

# rvsd contenders: name and options.
contenders=(
  "rvsd AF_PACKET|--xdp off"
  "rvsd XDP generic + AF_PACKET|--xdp generic --xdp-slow-path af_packet"
  "rvsd XDP generic + AF_XDP|--xdp generic --xdp-slow-path xsk"
  "rvsd XDP native + AF_XDP|--xdp native --xdp-slow-path xsk"
)

# 0. Baseline: the director drops everything at ingress (netdev ingress hook on eth0): what
# the receive alone costs CPU $DIR_CPU.
ip netns exec "$D" nft -f - <<NFT
table netdev rvsbench_drop {
  chain in { type filter hook ingress device eth0 priority -500; policy accept; udp dport 9 drop; }
}
NFT
run "baseline: dropped at the director's ingress (costs per frame received)" "${STEADY[@]}"
ip netns exec "$D" nft delete table netdev rvsbench_drop

# 1. The kernel first: its steady rate sets the XDP runs' "2x" and the flood runs' rate.
kernel_nat_on
run "kernel nftables DNAT" "${STEADY[@]}"
kernel_rate=$(( $(cut -d' ' -f2 <<<"${rows[-1]#*|}") / DUR ))
# The paced runs below take their rate from it (--rate 0 would mean flat out).
[ "$kernel_rate" -ge 2 ] || { echo "bench/packet.sh: the kernel's DNAT delivered $kernel_rate pkt/s; the lab is broken" >&2; exit 1; }
kernel_nat_off
kernel_nat_on
run "new connections: kernel nftables DNAT" "${NEWCONN[@]}"
kernel_nat_off

# 2. rvsd, each contender: steady flows, then new connections (a fresh rvsd each).
for c in "${contenders[@]}"; do
  name=${c%%|*} opts=${c#*|}
  # shellcheck disable=SC2086
  rvsd_start $opts
  run "$name" "${STEADY[@]}"
  "$RVSADM" --socket "$work/rvsd.sock" -L -n --stats | grep -A2 '^UDP' > "$work/stats.$name" || true
  case "$opts" in *generic*|*native*) prog_cost "$name" ;; esac
  rvsd_stop
  log_lines "$name" 'XDP \(fast\|slow\) path.*\|packet worker.*'
  # shellcheck disable=SC2086
  rvsd_start $opts
  run "new connections: $name" "${NEWCONN[@]}"
  rvsd_stop
  log_lines "new connections, $name" 'XDP slow path.*frames received.*\|.*flow entries written.*'
done

# 3. The goal's rate: twice the kernel's delivered steady rate, for the XDP contenders.
for c in "${contenders[@]:1}"; do
  name=${c%%|*} opts=${c#*|}
  # shellcheck disable=SC2086
  rvsd_start $opts
  run "$name at 2x the kernel's rate" "${STEADY[@]}" --rate $((2 * kernel_rate))
  rvsd_stop
done

# 4. Established flows during a SYN flood, at half the kernel's steady rate.
half=$((kernel_rate / 2))
kernel_nat_on
flood "steady flows alone: kernel nftables DNAT" "$half"
flood "steady flows + SYN flood: kernel nftables DNAT" "$half" syn
kernel_nat_off
rvsd_start --xdp generic --xdp-slow-path xsk
flood "steady flows alone: rvsd XDP generic + AF_XDP" "$half"
flood "steady flows + SYN flood: rvsd XDP generic + AF_XDP" "$half" syn
rvsd_stop

echo "| path | offered pkt/s | delivered pkt/s | loss | director's ring full, pkt/s | CPU $DIR_CPU busy | CPU $DIR_CPU ns / delivered pkt | capacity estimate, pkt/s | machine CPU less the generator, ns / delivered pkt | CPU $DIR_CPU stolen by the host |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${rows[@]}"; do
  name=${r%%|*}
  read -r sent got ring cpu mach genns wall steal <<<"${r#*|}"
  awk -v name="$name" -v s="$sent" -v g="$got" -v r="$ring" -v c="$cpu" -v m="$mach" -v x="$genns" -v d="$DUR" -v w="$wall" -v st="$steal" '
    function num(v,   s1, out) { s1 = sprintf("%.0f", v); out = ""; while (length(s1) > 3) { out = " " substr(s1, length(s1) - 2) out; s1 = substr(s1, 1, length(s1) - 3) } return s1 out }
    BEGIN {
      busy = c / w
      # The baseline delivers nothing: its costs are per frame the director received.
      base = (name ~ /^baseline/)
      n = base ? s - r : g
      loss = base ? "(all dropped)" : ((s > 0) ? sprintf("%.1f %%", 100 * (s - g) / s) : "n/a")
      per = (n > 0) ? num(c / n) : "n/a"
      cap = (n > 0 && busy < 0.95) ? "~" num(n / (w / 1e9) / busy) : (n > 0 ? "saturated" : "n/a")
      rest = (n > 0) ? num((m - x) / n) : "n/a"
      printf "| %s | %s | %s | %s | %s | %.0f %% | %s | %s | %s | %.2f %% |\n", name, num(s / d), base ? "—" : num(g / d), loss, num(r / d), 100 * busy, per, cap, rest, 100 * st / w
    }'
done
echo
echo "$DUR s per run; $FLOWS steady flows (new connections: a new source address per frame); 64-byte frames from rvs-lab trafficgen (BPF live frames) on CPU $GEN_CPU (SCHED_IDLE; one kernel call per run, paced by the program); rvsd and the director's NAPI on CPU $DIR_CPU; $napi_note; $brnf; the kernel's steady rate $kernel_rate pkt/s (the 2x runs offer $((2 * kernel_rate)), the flood runs' steady flows $half); $(nproc) CPUs; $(uname -r); $(uptime)"
for n in "${flood_note[@]}"; do echo "$n"; done
for l in "${logs[@]}"; do echo "$l"; done
for c in "${contenders[@]}"; do
  name=${c%%|*}
  echo "$name --stats:"; cat "$work/stats.$name"
done
