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
# Also per run, counts the machine's load does not distort: context switches of rvsd's threads
# per 1000 delivered packets (voluntary + involuntary, /proc/PID/task/*/status), of the packet
# worker alone, and the sync thread's wake-ups per second. At the end, "sync adds": the master
# runs' rvsd CPU per packet over the off runs' (medians), and the same for the context switches.
#
# Counting modes (slow: use a low RATE; the CPU columns are then not meaningful):
#   CALLGRIND=1  rvsd runs under valgrind --tool=callgrind; the counters are zeroed before each
#                traffic window and dumped after it: "instr/pkt" is the user-space instructions
#                of all of rvsd's threads per delivered packet (kernel work is not counted);
#                CALLGRIND_DIR=dir keeps each window's dump as dir/<run>.out.
#   STRACE=1     strace -c -f is attached to rvsd for each window: "syscalls/pkt" is rvsd's
#                system calls per delivered packet; the per-call tables go to $STRACE_DIR.
#
# Usage: sudo bench/sync.sh [seconds-per-run]   RATE=conn/s PKTS=packets/conn REPEAT=N
#        RVSD_BIN=path (another rvsd build, for A/B) RVSD_ARGS=extra rvsd options
# Needs: trafgen (Debian netsniff-ng), nftables, iproute2, util-linux (taskset), curl;
#        valgrind (CALLGRIND=1), strace (STRACE=1).
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$0")/.."
. bench/common.sh
DUR=${1:-10}
RATE=${RATE:-50000}
PKTS=${PKTS:-3}
REPEAT=${REPEAT:-3}
CALLGRIND=${CALLGRIND:-0}
STRACE=${STRACE:-0}
STRACE_DIR=${STRACE_DIR:-/tmp/rvs-bench-sync-strace}
P=${PREFIX:-rvsync}
GEN_CPU=${GEN_CPU:-0}
DIR_CPU=${DIR_CPU:-1}
MPORT=9477

need trafgen netsniff-ng
need nft nftables
need ip iproute2
need taskset util-linux
need curl curl
[ "$CALLGRIND" = 0 ] || { need valgrind valgrind; need callgrind_control valgrind; }
[ "$STRACE" = 0 ] || need strace strace
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
# Context switches (voluntary + involuntary) of rvsd's threads: "<all> <packet workers>
# <sync master thread>".
ctx_switches() {
  local t all=0 pkt=0 syn=0 n comm
  [ -n "$rvsd_pid" ] || { echo "0 0 0"; return; }
  for t in /proc/"$rvsd_pid"/task/*; do
    n=$(awk '/^(voluntary|nonvoluntary)_ctxt_switches/ { s += $2 } END { print s + 0 }' "$t/status" 2>/dev/null || echo 0)
    comm=$(cat "$t/comm" 2>/dev/null || true)
    all=$((all + n))
    case "$comm" in rvs-pkt-*) pkt=$((pkt + n)) ;; rvs-sync-master) syn=$((syn + n)) ;; esac
  done
  echo "$all $pkt $syn"
}
# Instructions callgrind counted in rvsd since the last zeroing: dump, read the totals line.
cg_dump() {
  local f
  callgrind_control -d "$rvsd_pid" >/dev/null 2>&1 || { echo 0; return; }
  f=$(ls -t "$work"/cg."$rvsd_pid"* 2>/dev/null | head -1)
  # CALLGRIND_DIR=dir keeps each window's dump (for callgrind_annotate).
  if [ -n "${CALLGRIND_DIR:-}" ] && [ -n "$f" ]; then mkdir -p "$CALLGRIND_DIR"; cp "$f" "$CALLGRIND_DIR/$1.out"; fi
  awk '/^(totals|summary):/ { print $2; exit }' "$f" 2>/dev/null || echo 0
}
metrics() { ip netns exec "$D" curl -s --max-time 5 "http://127.0.0.1:$MPORT/metrics"; }
metric() { awk -v n="$1" '$1 == n { print $2 }' "$2"; }

rvsd_start() {
  ip netns exec "$D" ip link set lo up
  local wrap=()
  # Dumps go to $work (removed at exit); the counters are zeroed before each window.
  [ "$CALLGRIND" = 0 ] || wrap=(valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" --dump-instr=no --collect-atstart=yes)
  ip netns exec "$D" taskset -c "$DIR_CPU" "${wrap[@]}" "$RVSD" --socket "$work/rvsd.sock" --metrics-listen "127.0.0.1:$MPORT" \
    --workers 1 --drain-time 0 --interface eth0 --interface eth1 --packet-workers 1 --xdp off \
    ${RVSD_ARGS:-} 2>"$work/rvsd.log" &
  rvsd_pid=$!
  for _ in $(seq 600); do [ -S "$work/rvsd.sock" ] && break; sleep 0.1; done
  bench_nat_service
}

# One traffic window: prints "<offered pkt/s> <delivered pkt/s> <machine busy ns> <delivered>
# <rvsd ns> <sync thread ns> <seconds> <ctx sw all> <ctx sw workers> <ctx sw sync thread>
# <instructions (CALLGRIND=1) or 0> <syscalls (STRACE=1) or 0>" and leaves the metrics
# before/after in $work/m0, m1.
run() {
  local b0 t0 c0 p0 s0 b1 t1 c1 p1 s1 st ms0 ms1 x0 x1 xa xb xc ins=0 sys=0 spid= tag=$1
  st=$(sync_thread_stat)
  [ -n "$rvsd_pid" ] && metrics >"$work/m0" || : >"$work/m0"
  if [ -n "$rvsd_pid" ] && [ "$CALLGRIND" != 0 ]; then callgrind_control -z "$rvsd_pid" >/dev/null 2>&1 || true; fi
  if [ -n "$rvsd_pid" ] && [ "$STRACE" != 0 ]; then
    mkdir -p "$STRACE_DIR"
    strace -c -f -p "$rvsd_pid" -o "$STRACE_DIR/$tag.txt" 2>/dev/null &
    spid=$!
    sleep 1
  fi
  x0=$(ctx_switches)
  b0=$(rx_total); t0=$(tx_client); c0=$(busy_ns); ms0=$(date +%s%N)
  p0=$( [ -n "$rvsd_pid" ] && proc_ns /proc/"$rvsd_pid"/stat || echo 0); s0=$(proc_ns "${st:-/nonexistent}")
  ip netns exec "$C" taskset -c "$GEN_CPU" timeout -s INT "$DUR" trafgen --dev eth0 --conf "$work/conn.cfg" \
    -P 1 -C -q -b "$((RATE * PKTS))pps" >"$work/trafgen.log" 2>&1 || true
  grep -i 'fail' "$work/trafgen.log" >&2 || true
  sleep 0.5
  b1=$(rx_total); t1=$(tx_client); c1=$(busy_ns); ms1=$(date +%s%N)
  p1=$( [ -n "$rvsd_pid" ] && proc_ns /proc/"$rvsd_pid"/stat || echo 0); s1=$(proc_ns "${st:-/nonexistent}")
  x1=$(ctx_switches)
  read -r xa xb xc <<<"$(paste -d' ' <(tr ' ' '\n' <<<"$x0") <(tr ' ' '\n' <<<"$x1") | awk '{ printf "%d ", $2 - $1 }')"
  if [ -n "$rvsd_pid" ] && [ "$CALLGRIND" != 0 ]; then ins=$(cg_dump "$tag"); fi
  if [ -n "$spid" ]; then
    kill -INT "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    sys=$(awk '$NF == "total" { print $4 }' "$STRACE_DIR/$tag.txt" 2>/dev/null || echo 0)
  fi
  [ -n "$rvsd_pid" ] && metrics >"$work/m1" || : >"$work/m1"
  echo "$(( (t1 - t0) / DUR )) $(( (b1 - b0) / DUR )) $((c1 - c0)) $((b1 - b0)) $((p1 - p0)) $((s1 - s0)) $(( (ms1 - ms0) / 1000000 )) $xa $xb $xc ${ins:-0} ${sys:-0}"
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
base=$(run baseline)
ip netns exec "$D" nft delete table netdev rvsbench_drop
rows+=("baseline|$base|")

for i in $(seq "$REPEAT"); do
  rvsd_start
  rows+=("off #$i|$(run "off-$i")|")
  conns=$("$RVSADM" --socket "$work/rvsd.sock" -L -n --stats | awk '$1 == "UDP" { print $3 }')
  rvsd_stop
  rvsd_start
  "$RVSADM" --socket "$work/rvsd.sock" --start-daemon master --mcast-interface eth1
  sleep 0.3
  r=$(run "master-$i")
  rows+=("master #$i|$r|$(sync_figures)")
  rvsd_stop
done

read -r _ _ base_cpu _ _ _ _ <<<"$(cut -d'|' -f2 <<<"${rows[0]}")"
extra_h="" extra_s=""
[ "$CALLGRIND" = 0 ] || { extra_h+=" instr/pkt |"; extra_s+="---:|"; }
[ "$STRACE" = 0 ] || { extra_h+=" syscalls/pkt |"; extra_s+="---:|"; }
echo "| run | offered pkt/s | delivered pkt/s | machine CPU ns/pkt above baseline | rvsd CPU ns/pkt | sync thread ns/pkt | ctx sw/1000 pkt (rvsd / worker) | sync thread wake-ups/s | sync datagrams/s | bytes/conn | conns synced | lag mean ms | lag p99 ms (bucket) |$extra_h"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|$extra_s"
# "<kind> <rvsd ns/pkt> <ctx sw/1000 pkt> <instr/pkt> <syscalls/pkt>" per forwarding run, for the summary.
summary=()
for r in "${rows[@]}"; do
  name=${r%%|*}; rest=${r#*|}; nums=${rest%%|*}; syn=${rest#*|}
  read -r sent pps cpu total rv st secs xa xb xc ins sys <<<"$nums"
  if [ "$name" = baseline ]; then
    echo "| baseline (dropped at ingress) | $sent | $pps | ($(awk -v c="$cpu" -v d="$DUR" -v n="$(nproc)" 'BEGIN { printf "%.0f%% of the machine", 100 * c / ((d + 0.5) * 1e9 * n) }')) | | | | | | | | | |$(sed 's/[^|]*|/ |/g' <<<"$extra_h")"
    continue
  fi
  per() { awk -v c="$1" -v n="$total" -v k="${2:-1}" 'BEGIN { printf (n > 0) ? "%.0f" : "n/a", k * c / n }'; }
  per1() { awk -v c="$1" -v n="$total" 'BEGIN { printf (n > 0) ? "%.1f" : "n/a", 1000 * c / n }'; }
  mach=$(awk -v c="$cpu" -v b="$base_cpu" -v n="$total" 'BEGIN { printf (n > 0) ? "%.0f" : "n/a", (c - b) / n }')
  ex=""
  [ "$CALLGRIND" = 0 ] || ex+=" $(per "$ins") |"
  [ "$STRACE" = 0 ] || ex+=" $(awk -v c="$sys" -v n="$total" 'BEGIN { printf (n > 0) ? "%.3f" : "n/a", c / n }') |"
  ctx="$(per1 "$xa") / $(per1 "$xb")"
  kind=off; [ -n "$syn" ] && kind=master
  summary+=("$kind $(per "$rv") $(per1 "$xa") $(per "$ins") $(awk -v c="$sys" -v n="$total" 'BEGIN { printf (n > 0) ? "%.4f" : "0", c / n }')")
  if [ -n "$syn" ]; then
    read -r dps bpc nsy lmean lp99 err drop <<<"$syn"
    wk=$(awk -v c="$xc" -v s="$secs" 'BEGIN { printf (s > 0) ? "%.0f" : "n/a", c * 1000 / s }')
    echo "| $name | $sent | $pps | $mach | $(per "$rv") | $(per "$st") | $ctx | $wk | $dps | $bpc | $nsy | $lmean | $lp99 |$ex"
    [ "$err$drop" = 00 ] || echo "sync send errors $err, dropped $drop in $name" >&2
  else
    echo "| $name | $sent | $pps | $mach | $(per "$rv") | | $ctx | | | | | | |$ex"
  fi
done
echo
# What the master daemon adds: medians of the master runs over medians of the off runs.
printf '%s\n' "${summary[@]}" | awk -v cg="$CALLGRIND" -v stc="$STRACE" '
  function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function pct(m, o) { return (o > 0) ? sprintf("%+.1f %%", 100 * (m - o) / o) : "n/a" }
  $2 == "n/a" { next }
  $1 == "off" { no++; oc[no] = $2; ox[no] = $3; oi[no] = $4; os[no] = $5 }
  $1 == "master" { nm++; mc[nm] = $2; mx[nm] = $3; mi[nm] = $4; ms[nm] = $5 }
  END {
    if (!no || !nm) { print "sync adds: n/a (no complete off/master pair)"; exit }
    c0 = median(oc, no); c1 = median(mc, nm); x0 = median(ox, no); x1 = median(mx, nm)
    printf "sync adds (median of %d master runs over median of %d off runs): rvsd CPU per packet %.0f -> %.0f ns (%s); rvsd context switches per 1000 packets %.1f -> %.1f (%s)", nm, no, c0, c1, pct(c1, c0), x0, x1, pct(x1, x0)
    if (cg) { i0 = median(oi, no); i1 = median(mi, nm); printf "; user-space instructions per packet %.0f -> %.0f (%s)", i0, i1, pct(i1, i0) }
    if (stc) { s0 = median(os, no); s1 = median(ms, nm); printf "; system calls per packet %.4f -> %.4f (%s)", s0, s1, pct(s1, s0) }
    printf "\n"
  }'
echo
echo "$DUR s per run, target $RATE new connections/s x $PKTS packets (64-byte UDP, NAT, rr over 2 real servers); one packet worker per interface; trafgen on CPU $GEN_CPU, rvsd on CPU $DIR_CPU; $(nproc) CPUs; connections in the last 'off' table: ${conns:-?}; $(uptime)"
