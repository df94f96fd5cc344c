#!/usr/bin/env bash
# Latency-aware scheduling benchmark (issue 15): three real servers behind rvsd's socket proxy,
# one of them answering 20 ms slower (SLOW_MS), clients through rvsd with wlc, with pewma, and
# with the slow server at weight 0 (`ideal`: what the two fast servers give alone at this load).
# Prints, per scheduler, the slow server's share of the requests, the request rate and the
# client's mean, p50, p90 and p99 latency: medians over the rounds with their min–max.
#
# What to expect: a request that reaches the slow server takes >= SLOW_MS longer, so a
# latency percentile p shows the slow server whenever its share is above 100 - p percent. wlc
# gives it a sixth to a third, so p90 and p99 both include it; pewma a few percent, so p90 (and
# the mean) drop to the fast servers' figures while p99 still includes it — p99 only falls if
# the share drops below 1 %, which pewma's 1-in-64 exploration and relaxation do not aim at.
#
# Real servers: the same python3 asyncio HTTP server three times (crates/testkit/src/slow_http.py,
# the one the tests use; one request per connection, `Connection: close`), the third one
# sleeping SLOW_MS before it answers. Client: wrk with
# `Connection: close`, so every request is a new connection the scheduler places.
#
# Usage: bench/latency.sh [seconds-per-run]   (needs: python3, wrk)
#   ROUNDS=5   rounds; each round runs wlc, pewma and ideal, in a rotating order
#   CONNS=10   wrk connections (few enough that the fast servers do not queue: compare
#              ideal's p50 with a single request's time)
#   RVS_BENCH_NICE=-15 autogroup nice of the run (0 = off), as in bench/proxy.sh
#   SLOW_MS=20 extra delay of the slow server
#   RVS_BENCH_BIN=DIR  use DIR/rvsd and DIR/rvsadm instead of building them
set -euo pipefail
self=$(readlink -f "$0")
cd "$(dirname "$self")/.."

. bench/common.sh
bench_own_session "$@"

DUR=${1:-10}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-10}
SLOW_MS=${SLOW_MS:-20}
NICE=${RVS_BENCH_NICE:--15}
bench_workdir latency

need python3 python3
need wrk wrk

BIN=${RVS_BENCH_BIN:-target/release}
[ -n "${RVS_BENCH_BIN:-}" ] || cargo build --release -q -p rvsd -p rvsadm
RVSD=$BIN/rvsd
RVSADM=$BIN/rvsadm

if [ "$NICE" != 0 ]; then
  if echo "$NICE" 2>/dev/null >/proc/self/autogroup; then
    echo "bench/latency.sh: $(cat /proc/self/autogroup) for this run (RVS_BENCH_NICE=0 to turn off)" >&2
  else
    echo "bench/latency.sh: cannot set the autogroup nice (not root?); running without it" >&2
    NICE=0
  fi
fi

# One service per scheduler, so that one run's leftover connection entries (TIME_WAIT
# counts as inactive, which wlc weighs) never skew the next run of another scheduler.
declare -A VIPS=([wlc]=127.0.0.41:18291 [pewma]=127.0.0.41:18292 [ideal]=127.0.0.41:18293)
VIP=${VIPS[wlc]}
RS=(127.0.0.42:18292 127.0.0.43:18292 127.0.0.44:18292)
DELAY=(0 0 "$SLOW_MS")

for i in 0 1 2; do
  python3 crates/testkit/src/slow_http.py "${RS[$i]%:*}" "${RS[$i]#*:}" "${DELAY[$i]}" \
    "hello from a real server" &
  pids+=($!)
done

SOCK=$work/rvsd.sock
RUST_LOG=warn "$RVSD" --socket "$SOCK" --workers 1 --metrics-listen off &
pids+=($!)
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
adm() { "$RVSADM" --socket "$SOCK" "$@"; }
for s in wlc pewma ideal; do
  adm -A -t "${VIPS[$s]}" -s "$([ "$s" = pewma ] && echo pewma || echo wlc)"
  for r in "${RS[@]}"; do adm -a -t "${VIPS[$s]}" -r "$r" -m; done
done
# ideal: the slow server quiesced.
adm -e -t "${VIPS[ideal]}" -r "${RS[2]}" -m -w 0
sleep 0.5
for r in "${RS[@]}"; do
  for _ in $(seq 50); do curl -sf "http://$r/" >/dev/null && break; sleep 0.1; done
  curl -sf "http://$r/" >/dev/null || { echo "bench/latency.sh: real server $r does not answer" >&2; exit 1; }
done
curl -sf "http://$VIP/" >/dev/null || { echo "bench/latency.sh: rvsd does not answer on $VIP" >&2; exit 1; }

# Connections each real server got since the last zeroing, in RS order.
per_server() {
  local out
  out=$(adm -L -n --stats -t "$1")
  for r in "${RS[@]}"; do
    awk -v r="$r" '$1 == "->" && $2 == r { print $3 }' <<<"$out"
  done | tr '\n' ' '
}

# Milliseconds of a wrk latency figure (`812.00us`, `3.21ms`, `1.02s`).
ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us/, "", v); v = v / 1000 }
  else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v = v * 1000 }
  print v + 0 }'; }

# One run: "req/s mean_ms p50_ms p90_ms p99_ms n1 n2 n3". `ideal` is wlc with the slow server
# at weight 0: the fast servers alone at the same load, the best any scheduler could do (and
# the check that the fast servers do not queue at this load).
run() {
  local sched=$1 out
  local vip=${VIPS[$sched]}
  adm -Z -t "$vip"
  out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -H "Connection: close" "http://$vip/" 2>&1)
  local counts rps mean p50 p90 p99
  counts=$(per_server "$vip")
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  mean=$(ms "$(awk '$1 == "Latency" { print $2; exit }' <<<"$out")")
  p50=$(ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
  p90=$(ms "$(awk '$1 == "90%" { print $2 }' <<<"$out")")
  p99=$(ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
  echo "${rps:-0} $mean $p50 $p90 $p99 $counts"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# "median [min–max]" of a list.
spread() {
  local sorted
  sorted=$(tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g)
  printf '%s [%s–%s]' "$(median <<<"$1")" "$(head -1 <<<"$sorted")" "$(tail -1 <<<"$sorted")"
}

SCHEDS=(wlc pewma ideal)
declare -A RPS MEAN P50 P90 P99 N1 N2 N3 SHARE
# Warm-up, not measured.
for s in wlc pewma ideal; do
  wrk -t1 -c"$CONNS" -d2s -H "Connection: close" "http://${VIPS[$s]}/" >/dev/null 2>&1
done
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
  # Rotate the order, so no scheduler always inherits the previous run's TIME_WAIT sockets.
  for i in 0 1 2; do
    s=${SCHEDS[$(((round + i) % 3))]}
    read -r rps mean p50 p90 p99 n1 n2 n3 < <(run "$s")
    RPS[$s]+=" $rps"; MEAN[$s]+=" $mean"; P50[$s]+=" $p50"; P90[$s]+=" $p90"; P99[$s]+=" $p99"
    N1[$s]+=" $n1"; N2[$s]+=" $n2"; N3[$s]+=" $n3"
    SHARE[$s]+=" $(awk -v a="$n1" -v b="$n2" -v c="$n3" 'BEGIN { t = a + b + c; printf "%.2f", t ? 100 * c / t : 0 }')"
  done
  echo "bench/latency.sh: round $round/$ROUNDS done, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "Medians of $ROUNDS rounds, [min–max] over the rounds; the slow real server answers ${SLOW_MS} ms later;"
echo "\`ideal\` = wlc with the slow server at weight 0 (the two fast servers alone at this load)."
echo
echo "| scheduler | slow server's share % | req/s | mean ms | p50 ms | p90 ms | p99 ms |"
echo "|---|---|---|---|---|---|---|"
for s in "${SCHEDS[@]}"; do
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$s" "$(spread "${SHARE[$s]}")" "$(spread "${RPS[$s]}")" \
    "$(spread "${MEAN[$s]}")" "$(spread "${P50[$s]}")" "$(spread "${P90[$s]}")" "$(spread "${P99[$s]}")"
done
echo
echo "samples per round (req/s; mean; p50; p90; p99 ms; requests to RS1, RS2, slow):"
for s in "${SCHEDS[@]}"; do
  echo "  $s:${RPS[$s]};${MEAN[$s]};${P50[$s]};${P90[$s]};${P99[$s]}; RS1${N1[$s]}; RS2${N2[$s]}; slow${N3[$s]}"
done
echo "($(date -u '+%F %H:%M UTC'), $ROUNDS rounds of ${DUR}s per scheduler, $CONNS connections," \
  "Connection: close, autogroup nice $NICE, load at start: $load_start, at end: $load_end)"
