#!/usr/bin/env bash
# What connection synchronisation costs the MASTER (issue 11 "bench/"): the real packet plane
# in the rvs-lab NAT lab, new connections at a fixed rate, with no sync daemon and with a master
# sync daemon, in alternating runs.
#
# Traffic: trafgen in the client namespace sends UDP to VIP:9 at $RATE new connections per
# second (default 50 000), each connection $PKTS packets (default 3: the kernel's default
# sync_threshold "3 50" announces a UDP connection at its 3rd packet, so every connection is
# synced exactly once, as a short TCP connection is). Three packet templates with their own
# counters are sent in turn, so three consecutive packets carry the same client address and
# port and the next three a new one (client addresses 10.64.0.0 + n, source port 10000 + n mod
# 256: no tuple repeats within a run). The real servers drop the datagrams (nft), so no
# replies flow. NAT (-m) to two real servers under rr.
#
# Runs (each with a fresh rvsd, one packet worker per interface, all rvsd threads pinned to
# CPU $DIR_CPU, trafgen to CPU $GEN_CPU):
#   baseline  the director drops everything at ingress (what generator, links and receive cost)
#   off       rvsd forwarding, no sync daemon
#   master    rvsd forwarding, `rvsadm --start-daemon master --mcast-interface eth1` (the sync
#             datagrams go to the server LAN, where nobody listens)
# off and master alternate $REPEAT times (the machine is shared: alternation spreads the
# drift of the other load over both).
#
# Reported per run: offered and delivered packets per second; the CPU time of the WHOLE
# MACHINE (/proc/stat, all CPUs) above the baseline per delivered packet; rvsd's own CPU
# (utime + stime of every thread, /proc/PID/stat) per delivered packet, and of its sync master
# thread alone; for the master runs, from rvsd's metrics: datagrams/s, bytes per synced
# connection, connections synced, and the sync lag (rvs_sync_lag_seconds histogram: for every
# datagram, the age of its oldest record from the packet that announced it to the send) as
# mean and p99 bucket bound.
#
# Usage: sudo bench/sync.sh [seconds-per-run]   RATE=conn/s PKTS=packets/conn REPEAT=N
#        RVSD_BIN=path (another rvsd build, for A/B) RVSD_ARGS=extra rvsd options
# Needs: trafgen (Debian netsniff-ng), nftables, iproute2, util-linux (taskset), curl.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$0")/.."
. bench/common.sh
DUR=${1:-10}
RATE=${RATE:-50000}
PKTS=${PKTS:-3}
REPEAT=${REPEAT:-2}
P=${PREFIX:-rvsync}
GEN_CPU=${GEN_CPU:-0}
DIR_CPU=${DIR_CPU:-1}
MPORT=9477

need trafgen netsniff-ng
need nft nftables
need ip iproute2
need taskset util-linux
need curl curl
[ "$(id -u)" = 0 ] || { echo "bench/sync.sh: needs root (network namespaces)" >&2; exit 2; }

bench_lab_build
bench_nat_lab sync
bench_switch_without_netfilter
for k in all default eth0; do ip netns exec "$D" sysctl -qw "net.ipv4.conf.$k.rp_filter=0" 2>/dev/null || true; done

# $PKTS templates, each with its own counters, sent in turn: one connection per round.
: >"$work/conn.cfg"
for _ in $(seq "$PKTS"); do
  cat >>"$work/conn.cfg" <<CFG
{ eth(da=$DMAC, sa=$CMAC), ipv4(saddr=10.64.0.0, saddr=dinc(), daddr=$VIP, ttl=64), udp(sp=10000, sp[1]=dinc(), dp=9), fill(0x41, 18) }
CFG
done

# utime + stime of a process or thread, ns.
proc_ns() {
  [ -r "$1" ] || { echo 0; return; }
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.0f\n", ($12 + $13) * 1e9 / hz }' "$1"
}
sync_thread_stat() {
  local t
  [ -n "$rvsd_pid" ] || return 0
  for t in /proc/"$rvsd_pid"/task/*; do
    if [ "$(cat "$t/comm" 2>/dev/null)" = rvs-sync-master ]; then echo "$t/stat"; return 0; fi
  done
}
metrics() { ip netns exec "$D" curl -s --max-time 5 "http://127.0.0.1:$MPORT/metrics"; }
metric() { awk -v n="$1" '$1 == n { print $2 }' "$2"; }

rvsd_start() {
  ip netns exec "$D" ip link set lo up
  ip netns exec "$D" taskset -c "$DIR_CPU" "$RVSD" --socket "$work/rvsd.sock" --metrics-listen "127.0.0.1:$MPORT" \
    --workers 1 --drain-time 0 --interface eth0 --interface eth1 --packet-workers 1 --xdp off \
    ${RVSD_ARGS:-} 2>"$work/rvsd.log" &
  rvsd_pid=$!
  for _ in $(seq 100); do [ -S "$work/rvsd.sock" ] && break; sleep 0.1; done
  bench_nat_service
}

# One traffic window: prints "<offered pkt/s> <delivered pkt/s> <machine busy ns> <delivered>
# <rvsd ns> <sync thread ns> <seconds>" and leaves the metrics before/after in $work/m0, m1.
run() {
  local b0 t0 c0 p0 s0 b1 t1 c1 p1 s1 st ms0 ms1
  st=$(sync_thread_stat)
  [ -n "$rvsd_pid" ] && metrics >"$work/m0" || : >"$work/m0"
  b0=$(rx_total); t0=$(tx_client); c0=$(busy_ns); ms0=$(date +%s%N)
  p0=$( [ -n "$rvsd_pid" ] && proc_ns /proc/"$rvsd_pid"/stat || echo 0); s0=$(proc_ns "${st:-/nonexistent}")
  ip netns exec "$C" taskset -c "$GEN_CPU" timeout -s INT "$DUR" trafgen --dev eth0 --conf "$work/conn.cfg" \
    -P 1 -C -q -b "$((RATE * PKTS))pps" >"$work/trafgen.log" 2>&1 || true
  grep -i 'fail' "$work/trafgen.log" >&2 || true
  sleep 0.5
  b1=$(rx_total); t1=$(tx_client); c1=$(busy_ns); ms1=$(date +%s%N)
  p1=$( [ -n "$rvsd_pid" ] && proc_ns /proc/"$rvsd_pid"/stat || echo 0); s1=$(proc_ns "${st:-/nonexistent}")
  [ -n "$rvsd_pid" ] && metrics >"$work/m1" || : >"$work/m1"
  echo "$(( (t1 - t0) / DUR )) $(( (b1 - b0) / DUR )) $((c1 - c0)) $((b1 - b0)) $((p1 - p0)) $((s1 - s0)) $(( (ms1 - ms0) / 1000000 ))"
}

# The sync figures of the last window, from the metrics deltas: "<datagrams/s> <bytes/conn>
# <conns synced> <lag mean ms> <lag p99 bound ms> <send errors> <dropped>".
sync_figures() {
  local d0 d1 by0 by1 n0 n1 ls0 ls1 lc0 lc1 e0 e1
  d0=$(metric rvs_sync_sent_datagrams_total "$work/m0"); d1=$(metric rvs_sync_sent_datagrams_total "$work/m1")
  by0=$(metric rvs_sync_sent_bytes_total "$work/m0"); by1=$(metric rvs_sync_sent_bytes_total "$work/m1")
  n0=$(metric rvs_sync_sent_connections_total "$work/m0"); n1=$(metric rvs_sync_sent_connections_total "$work/m1")
  ls0=$(metric rvs_sync_lag_seconds_sum "$work/m0"); ls1=$(metric rvs_sync_lag_seconds_sum "$work/m1")
  lc0=$(metric rvs_sync_lag_seconds_count "$work/m0"); lc1=$(metric rvs_sync_lag_seconds_count "$work/m1")
  e0=$(metric rvs_sync_send_errors_total "$work/m0"); e1=$(metric rvs_sync_send_errors_total "$work/m1")
  # p99 over this window: the first bucket whose count delta reaches 99 % of the total delta.
  local p99
  p99=$(awk '
    FNR == NR && /^rvs_sync_lag_seconds_bucket/ { a[$1] = $2; next }
    /^rvs_sync_lag_seconds_bucket/ { le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le); b[++n] = le; d[n] = $2 - a[$1] }
    END { t = d[n]; for (i = 1; i <= n; i++) if (t > 0 && d[i] >= 0.99 * t) { print (b[i] == "+Inf") ? "inf" : b[i] * 1000; exit } print "n/a" }' \
    "$work/m0" "$work/m1")
  local drop
  drop=$(awk '/^rvs_sync_dropped_(connections|datagrams)_total\{.*(tap_full|queue_full)/ { n += $2 } END { print n + 0 }' "$work/m1")
  awk -v d="$((d1 - d0))" -v by="$((by1 - by0))" -v n="$((n1 - n0))" -v ls0="$ls0" -v ls1="$ls1" \
    -v lc="$((lc1 - lc0))" -v dur="$DUR" -v p99="$p99" -v e="$((e1 - e0))" -v drop="$drop" \
    'BEGIN { printf "%.0f %.1f %d %.1f %s %d %d\n", d / dur, (n > 0) ? by / n : 0, n, (lc > 0) ? (ls1 - ls0) * 1000 / lc : 0, p99, e, drop }'
}

rows=()
# Baseline: the director drops the traffic at ingress.
ip netns exec "$D" nft -f - <<NFT
table netdev rvsbench_drop {
  chain in { type filter hook ingress device eth0 priority -500; policy accept; udp dport 9 drop; }
}
NFT
base=$(run)
ip netns exec "$D" nft delete table netdev rvsbench_drop
rows+=("baseline|$base|")

for i in $(seq "$REPEAT"); do
  rvsd_start
  rows+=("off #$i|$(run)|")
  conns=$("$RVSADM" --socket "$work/rvsd.sock" -L -n --stats | awk '$1 == "UDP" { print $3 }')
  rvsd_stop
  rvsd_start
  "$RVSADM" --socket "$work/rvsd.sock" --start-daemon master --mcast-interface eth1
  sleep 0.3
  r=$(run)
  rows+=("master #$i|$r|$(sync_figures)")
  rvsd_stop
done

read -r _ _ base_cpu _ _ _ _ <<<"$(cut -d'|' -f2 <<<"${rows[0]}")"
echo "| run | offered pkt/s | delivered pkt/s | machine CPU ns/pkt above baseline | rvsd CPU ns/pkt | sync thread ns/pkt | sync datagrams/s | bytes/conn | conns synced | lag mean ms | lag p99 ms (bucket) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${rows[@]}"; do
  name=${r%%|*}; rest=${r#*|}; nums=${rest%%|*}; syn=${rest#*|}
  read -r sent pps cpu total rv st _ <<<"$nums"
  if [ "$name" = baseline ]; then
    echo "| baseline (dropped at ingress) | $sent | $pps | ($(awk -v c="$cpu" -v d="$DUR" -v n="$(nproc)" 'BEGIN { printf "%.0f%% of the machine", 100 * c / ((d + 0.5) * 1e9 * n) }')) | | | | | | | |"
    continue
  fi
  per() { awk -v c="$1" -v n="$total" 'BEGIN { printf (n > 0) ? "%.0f" : "n/a", c / n }'; }
  mach=$(awk -v c="$cpu" -v b="$base_cpu" -v n="$total" 'BEGIN { printf (n > 0) ? "%.0f" : "n/a", (c - b) / n }')
  if [ -n "$syn" ]; then
    read -r dps bpc nsy lmean lp99 err drop <<<"$syn"
    echo "| $name | $sent | $pps | $mach | $(per "$rv") | $(per "$st") | $dps | $bpc | $nsy | $lmean | $lp99 |"
    [ "$err$drop" = 00 ] || echo "sync send errors $err, dropped $drop in $name" >&2
  else
    echo "| $name | $sent | $pps | $mach | $(per "$rv") | | | | | | |"
  fi
done
echo
echo "$DUR s per run, target $RATE new connections/s x $PKTS packets (64-byte UDP, NAT, rr over 2 real servers); trafgen on CPU $GEN_CPU, rvsd on CPU $DIR_CPU; $(nproc) CPUs; connections in the last 'off' table: ${conns:-?}; $(uptime)"
