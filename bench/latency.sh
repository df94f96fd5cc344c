#!/usr/bin/env bash
# Latency-aware scheduling benchmark (issue 15): three real servers behind rvsd's socket proxy,
# one of them answering 20 ms slower (SLOW_MS), clients through rvsd with wlc and with pewma.
# Prints, per scheduler, the requests each real server got, the client's request rate and p99.
#
# Real servers: the same python3 asyncio HTTP server three times (one request per connection,
# `Connection: close`), the third one sleeping SLOW_MS before it answers. Client: wrk with
# `Connection: close`, so every request is a new connection the scheduler places.
#
# Usage: bench/latency.sh [seconds-per-run]   (needs: python3, wrk)
#   ROUNDS=3   rounds; each round runs wlc then pewma (medians are printed)
#   CONNS=30   wrk connections
#   SLOW_MS=20 extra delay of the slow server
#   RVS_BENCH_BIN=DIR  use DIR/rvsd and DIR/rvsadm instead of building them
set -euo pipefail
self=$(readlink -f "$0")
cd "$(dirname "$self")/.."

DUR=${1:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-30}
SLOW_MS=${SLOW_MS:-20}
work=$(mktemp -d /tmp/rvs-bench-latency.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() { command -v "$1" >/dev/null || { echo "bench/latency.sh: $1 is missing (apt-get install -y $2)" >&2; exit 2; }; }
need python3 python3
need wrk wrk

BIN=${RVS_BENCH_BIN:-target/release}
[ -n "${RVS_BENCH_BIN:-}" ] || cargo build --release -q -p rvsd -p rvsadm
RVSD=$BIN/rvsd
RVSADM=$BIN/rvsadm

VIP=127.0.0.41:18291
RS=(127.0.0.42:18292 127.0.0.43:18292 127.0.0.44:18292)
DELAY=(0 0 "$SLOW_MS")

cat > "$work/rs.py" <<'PY'
import asyncio, sys
host, port, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1000.0
BODY = b"hello from a real server\n"
RESP = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY)) + BODY
async def serve(r, w):
    try:
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = await r.read(4096)
            if not chunk:
                return
            data += chunk
        if delay:
            await asyncio.sleep(delay)
        w.write(RESP)
        await w.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        w.close()
async def main():
    s = await asyncio.start_server(serve, host, port, backlog=1024, reuse_address=True)
    async with s:
        await s.serve_forever()
asyncio.run(main())
PY
for i in 0 1 2; do
  python3 "$work/rs.py" "${RS[$i]%:*}" "${RS[$i]#*:}" "${DELAY[$i]}" &
  pids+=($!)
done

SOCK=$work/rvsd.sock
RUST_LOG=warn "$RVSD" --socket "$SOCK" --workers 1 --metrics-listen off &
pids+=($!)
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
adm() { "$RVSADM" --socket "$SOCK" "$@"; }
adm -A -t "$VIP" -s wlc
for r in "${RS[@]}"; do adm -a -t "$VIP" -r "$r" -m; done
sleep 0.5
for r in "${RS[@]}"; do
  for _ in $(seq 50); do curl -sf "http://$r/" >/dev/null && break; sleep 0.1; done
  curl -sf "http://$r/" >/dev/null || { echo "bench/latency.sh: real server $r does not answer" >&2; exit 1; }
done
curl -sf "http://$VIP/" >/dev/null || { echo "bench/latency.sh: rvsd does not answer on $VIP" >&2; exit 1; }

# Connections each real server got since the last zeroing, in RS order.
per_server() {
  local out
  out=$(adm -L -n --stats)
  for r in "${RS[@]}"; do
    awk -v r="$r" '$1 == "->" && $2 == r { print $3 }' <<<"$out"
  done | tr '\n' ' '
}

# One run: "req/s p99_ms n1 n2 n3".
run() {
  local sched=$1 out
  adm -E -t "$VIP" -s "$sched"
  adm -Z
  out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -H "Connection: close" "http://$VIP/" 2>&1)
  local counts
  counts=$(per_server)
  awk -v counts="$counts" '
    /Requests\/sec/ { rps = $2 }
    $1 == "99%" { v = $2
      if (v ~ /us$/) { sub(/us/, "", v); v = v / 1000 }
      else if (v ~ /ms$/) { sub(/ms/, "", v) }
      else if (v ~ /s$/) { sub(/s/, "", v); v = v * 1000 }
      p99 = v }
    END { printf "%s %s %s\n", rps + 0, p99 + 0, counts }' <<<"$out"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

SCHEDS=(wlc pewma)
declare -A RPS P99 N1 N2 N3
# Warm-up, not measured.
wrk -t1 -c"$CONNS" -d2s -H "Connection: close" "http://$VIP/" >/dev/null 2>&1
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
  for s in "${SCHEDS[@]}"; do
    read -r rps p99 n1 n2 n3 < <(run "$s")
    RPS[$s]+=" $rps"; P99[$s]+=" $p99"; N1[$s]+=" $n1"; N2[$s]+=" $n2"; N3[$s]+=" $n3"
  done
  echo "bench/latency.sh: round $round/$ROUNDS done, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "| scheduler | fast RS 1 | fast RS 2 | slow RS (+${SLOW_MS} ms) | slow share | req/s | client p99 ms |"
echo "|---|---|---|---|---|---|---|"
for s in "${SCHEDS[@]}"; do
  a=$(median <<<"${N1[$s]}"); b=$(median <<<"${N2[$s]}"); c=$(median <<<"${N3[$s]}")
  share=$(awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN { t = a + b + c; printf "%.2f %%", t ? 100 * c / t : 0 }')
  printf '| %s | %s | %s | %s | %s | %.0f | %s |\n' "$s" "$a" "$b" "$c" "$share" \
    "$(median <<<"${RPS[$s]}")" "$(median <<<"${P99[$s]}")"
done
echo
echo "samples per round (req/s; p99 ms; requests per real server):"
for s in "${SCHEDS[@]}"; do
  echo "  $s:${RPS[$s]};${P99[$s]}; RS1${N1[$s]}; RS2${N2[$s]}; slow${N3[$s]}"
done
echo "($(date -u '+%F %H:%M UTC'), $ROUNDS rounds of ${DUR}s per scheduler (medians), $CONNS connections," \
  "Connection: close, load at start: $load_start, at end: $load_end)"
