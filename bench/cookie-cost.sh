#!/usr/bin/env bash
# Per-request cost of cookie persistence (issue 15), measured in units a loaded machine does
# not distort: CPU instructions (callgrind), heap allocations (calls into malloc/calloc/realloc,
# counted by callgrind) and system calls (strace -c -f), each divided by the requests wrk
# completed, for rvsd's `--pe cookie` and HAProxy's `cookie RVSID insert` in front of the same
# two nginx (bench/cookie-setup.sh; the same loads as bench/cookie.sh: `pinned` sends the
# cookie for real server 1, `unpinned` none).
# Every thread of the proxy counts (rvsd's control thread and ticker included). Only the load
# is counted: callgrind's counters are zeroed before the wrk run and dumped after it, strace is
# attached for the wrk run only.
#
# Usage: bench/cookie-cost.sh [seconds-per-run]   (needs: valgrind, strace, haproxy,
#        nginx-light, wrk, curl; root not needed)
#   CONNS=10   wrk connections (kept small: under callgrind the proxy runs ~50x slower)
#   RVS_BENCH_BIN=DIR  use DIR/rvsd and DIR/rvsadm instead of building them (a release build
#              with symbols: the workspace's release profile has `debug = 1`)
#   NAMES="rvsd haproxy"  which proxies
#   KEEP=DIR   copy the callgrind dumps to DIR (for callgrind_annotate)
set -euo pipefail
self=$(readlink -f "$0")
cd "$(dirname "$self")/.."

. bench/common.sh
DUR=${1:-5}
CONNS=${CONNS:-10}
read -r -a NAMES <<<"${NAMES:-rvsd haproxy}"
bench_workdir cookie-cost

need valgrind valgrind
need callgrind_control valgrind
need strace strace
need haproxy haproxy
need nginx nginx-light
need wrk wrk
need curl curl
need taskset util-linux
need python3 python3

BIN=${RVS_BENCH_BIN:-target/release}
[ -n "${RVS_BENCH_BIN:-}" ] || cargo build --release -q -p rvsd -p rvsadm
RVSD=$BIN/rvsd
RVSADM=$BIN/rvsadm

. bench/cookie-setup.sh
cookie_start_nginx
cookie_haproxy_conf
declare -A PORT=([rvsd]=$RVSD_PORT [haproxy]=$HAPROXY_PORT)
LOADS=(pinned unpinned)

# start NAME [WRAPPER...]: run proxy NAME on CPU 0 under the wrapper; sets PID (the proxy's
# process, not the wrapper's shell).
start() {
  local n=$1; shift
  case $n in
    haproxy) taskset -c 0 "$@" haproxy -f "$work/haproxy.cfg" -db & ;;
    rvsd)
      rm -f "$work/rvsd.sock"
      RUST_LOG=warn taskset -c 0 "$@" "$RVSD" --socket "$work/rvsd.sock" --workers 1 --metrics-listen off &
      ;;
  esac
  PID=$!
  pids+=("$PID")
  if [ "$n" = rvsd ]; then cookie_rvsd_service "$RVSADM" "$work/rvsd.sock"; fi
  for _ in $(seq 300); do curl -s -o /dev/null --max-time 20 "http://127.0.0.1:${PORT[$n]}/" && return; sleep 0.1; done
  echo "bench/cookie-cost.sh: $n does not answer" >&2
  exit 1
}

stop() {
  kill -INT "$PID" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
}

# load_args NAME LOAD: wrk's extra arguments for the load.
load_args() {
  case $2 in
    pinned) echo "-H" "Cookie: ${COOKIE[$1]}" ;;
    unpinned) ;;
  esac
}

# One wrk run against NAME with LOAD; prints the completed requests (fails on non-2xx).
wrk_run() {
  local n=$1 l=$2 out
  local -a extra=()
  [ "$l" = pinned ] && extra=(-H "Cookie: ${COOKIE[$n]}")
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --timeout 20s "${extra[@]}" "http://127.0.0.1:${PORT[$n]}/" 2>&1)
  if grep -q Non-2xx <<<"$out"; then echo "bench/cookie-cost.sh: $n $l: $(grep Non-2xx <<<"$out")" >&2; exit 1; fi
  awk '/requests in/ { print $1 }' <<<"$out"
}

declare -A COOKIE REQ_CG REQ_ST
for n in "${NAMES[@]}"; do
  # Instructions and allocations.
  start "$n" valgrind -q --tool=callgrind --callgrind-out-file="$work/cg.$n.%p"
  COOKIE[$n]=$(cookie_for_rs1 "$n" "${PORT[$n]}")
  for l in "${LOADS[@]}"; do
    # callgrind acts on a command when the process next runs: zero in the background (done
    # when the load wakes the proxy), dump after the load.
    callgrind_control -z "$PID" >/dev/null &
    z=$!
    REQ_CG[$n,$l]=$(wrk_run "$n" "$l")
    wait "$z"
    callgrind_control -d "$l" "$PID" >/dev/null
  done
  stop
  # System calls (a new rvsd has a new cookie key: ask for its cookie again).
  start "$n"
  COOKIE[$n]=$(cookie_for_rs1 "$n" "${PORT[$n]}")
  for l in "${LOADS[@]}"; do
    strace -c -f -q -o "$work/st.$n.$l" -p "$PID" &
    st=$!
    sleep 1
    REQ_ST[$n,$l]=$(wrk_run "$n" "$l")
    kill -INT "$st"
    wait "$st" || true
  done
  stop
done

[ -z "${KEEP:-}" ] || { mkdir -p "$KEEP"; cp "$work"/cg.* "$KEEP"/; }
echo
echo "| proxy | load | instructions / request | heap allocations / request | system calls / request | top system calls / request |"
echo "|---|---|---:|---:|---:|---|"
for l in "${LOADS[@]}"; do
  for n in "${NAMES[@]}"; do
    python3 - "$n" "$l" "${REQ_CG[$n,$l]}" "${REQ_ST[$n,$l]}" "$work" <<'PY'
import glob, re, sys
name, load, req_cg, req_st, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
# The callgrind dump made for this load (its "desc: Trigger: dump LOAD" line).
ir = allocs = 0
for f in glob.glob(f"{work}/cg.{name}.*"):
    text = open(f, errors="replace").read()
    if f"Trigger: dump {load}\n" not in text:
        continue
    m = re.search(r"^totals: (\d+)", text, re.M)
    ir = int(m.group(1)) if m else 0
    names, cur = {}, None
    for line in text.splitlines():
        if line.startswith(("fn=", "cfn=")):
            # Names are compressed: "(id) name" at first use (in fn= or cfn=), "(id)" later.
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                cur = names.get(m.group(1)) if line.startswith("cfn=") else None
        elif line.startswith("calls=") and cur is not None:
            if cur in ("malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign"):
                allocs += int(line.split()[0][6:])
            cur = None
calls, top = 0, []
for line in open(f"{work}/st.{name}.{load}"):
    p = line.split()
    if len(p) >= 5 and p[-1] == "total":
        calls = int(p[3])
    elif len(p) >= 5 and p[0][0].isdigit() and p[-1] != "syscall":
        top.append((int(p[3]), p[-1]))
top.sort(reverse=True)
tops = ", ".join(f"{s} {c / req_st:.2f}" for c, s in top[:6])
print(f"| {name} | {load} | {ir / req_cg:,.0f} | {allocs / req_cg:.1f} | {calls / req_st:.2f} | {tops} |")
PY
  done
done
echo
echo "($(date -u '+%F %H:%M UTC'), wrk -t1 -c$CONNS, ${DUR}s per run; requests under callgrind:" \
  "$(for k in "${!REQ_CG[@]}"; do printf '%s=%s ' "$k" "${REQ_CG[$k]}"; done)" \
  "under strace: $(for k in "${!REQ_ST[@]}"; do printf '%s=%s ' "$k" "${REQ_ST[$k]}"; done))"
