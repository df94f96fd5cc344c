#!/usr/bin/env bash
# Instructions per operation of the hot paths at two revisions, counted by callgrind: an A/B
# that a loaded or noisy machine does not distort (instruction counts do not depend on other
# load; times do).
#
# For each revision, a detached worktree is checked out under $WORK and the criterion benches
# of rvs-core (sched, conn), rvs-packet (plane) and rvsd (balancer) are built in release mode
# into one shared target directory. Each case below runs one criterion benchmark under
# `valgrind --tool=callgrind` (`--profile-time`, so criterion does no analysis), and
# bench/callgrind-per-call.py divides the inclusive instruction count (Ir) of the benchmarked
# function by the number of times it was called: instructions per call, exact, whatever number
# of iterations criterion chose. A function that is inlined into the bench at one revision
# cannot be counted there; the case then prints "-".
#
# Usage: bench/callgrind-ab.sh REV_A REV_B      (git revisions; e.g. ffd5583 main)
#        WORK=dir (default /tmp/rvs-callgrind-ab; removed at the end unless KEEP=1)
#        CASES="regex": the cases to run (default "Plane::process"; CASES=. runs all, but the
#        sched and conn benches build every table of every size before criterion filters, which
#        under callgrind takes well over 10 minutes); PROFILE_TIME=s (default 1)
#        PACKAGES="rvs-packet" to build fewer benches (default rvs-core rvs-packet rvsd)
# Needs: valgrind, python3, git, cargo. Not root. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
[ $# = 2 ] || { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
need() { command -v "$1" >/dev/null || { echo "bench/callgrind-ab.sh: $1 is missing (apt-get install -y $2)" >&2; exit 2; }; }
need valgrind valgrind
need python3 python3
WORK=${WORK:-/tmp/rvs-callgrind-ab}
PROFILE_TIME=${PROFILE_TIME:-1}
CASES=${CASES:-Plane::process}
mkdir -p "$WORK"
cleanup() {
  for d in "$WORK"/src-*; do
    [ -d "$d" ] && git -C "$repo" worktree remove --force "$d" 2>/dev/null || true
  done
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# name | package | bench target | criterion benchmark (exact) | function (regex) | caller (regex)
# The caller regex keeps calls made inside the library (insert calling a lookup, say) out. It
# must also admit criterion's `Bencher::iter`: the measured closure is inlined into it, so a
# filter on the bench's own module alone matched only the set-up calls (the plane rows read
# ~3 900 instructions for every case that way, 2026-12-05). `Plane::process` is never called
# by the library itself, so its rows need no filter.
CASES_TABLE='
sched rr, 1000 dests|rvs-core|sched|sched/rr/1000|ServiceTable::schedule$|^(sched::|criterion::)
sched wlc, 1000 dests|rvs-core|sched|sched/wlc/1000|ServiceTable::schedule$|^(sched::|criterion::)
sched sh, 1000 dests|rvs-core|sched|sched/sh/1000|ServiceTable::schedule$|^(sched::|criterion::)
sched mh, 1000 dests|rvs-core|sched|sched/mh/1000|ServiceTable::schedule$|^(sched::|criterion::)
conn lookup_in hit, 1M entries|rvs-core|conn|conn/1000000/lookup_in hit latency|ConnTable::lookup_in$|^(conn::|criterion::)
Plane::process, known NAT flow|rvs-packet|plane|plane/known_flow/nat|Plane<.*>::process$|
Plane::process, known DR flow|rvs-packet|plane|plane/known_flow/dr|Plane<.*>::process$|
Plane::process, new NAT flow|rvs-packet|plane|plane/new_flow/nat|Plane<.*>::process$|
Plane::process, new DR flow|rvs-packet|plane|plane/new_flow/dr|Plane<.*>::process$|
proxy open (route lookup + schedule)|rvsd|balancer|balancer/connection_one_thread|DirectorBalancer as .*>::open$|^(balancer::|criterion::)
proxy connection event|rvsd|balancer|balancer/connection_one_thread|DirectorBalancer as .*>::event$|^(balancer::|criterion::)
'

# build SIDE REV: checks REV out in $WORK/src-SIDE (SIDE a or b) and builds its benches; fills
# bins[REV/target] with the bench executables.
declare -A bins
build() {
  local side=$1 rev=$2 src="$WORK/src-$1"
  if [ ! -d "$src" ]; then
    git -C "$repo" worktree add --detach "$src" "$rev" >/dev/null
  else
    git -C "$src" checkout -q --detach "$rev"
  fi
  local pkgs=() p
  for p in ${PACKAGES:-rvs-core rvs-packet rvsd}; do pkgs+=(-p "$p"); done
  (cd "$src" && CARGO_TARGET_DIR="$WORK/target" cargo bench --no-run --benches "${pkgs[@]}" \
     --message-format=json 2>"$WORK/build-$rev.log") |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "bench" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])
' > "$WORK/bins-$rev" || { echo "build of $rev failed: $WORK/build-$rev.log" >&2; tail -20 "$WORK/build-$rev.log" >&2; exit 1; }
  # Cargo names a workspace bench the same at every revision: keep this side's copy.
  mkdir -p "$WORK/bins-$side"
  while read -r name exe; do
    cp "$exe" "$WORK/bins-$side/$name"
    bins[$rev/$name]=$WORK/bins-$side/$name
  done < "$WORK/bins-$rev"
}

measure() {
  local rev=$1 target=$2 bench=$3 fn=$4 caller=$5 exe out
  exe=${bins[$rev/$target]:-}
  [ -n "$exe" ] || { echo "-"; return; }
  out="$WORK/cg-$rev-$(echo "$target-$bench" | tr -c 'a-zA-Z0-9' _).out"
  if [ ! -s "$out" ]; then
    valgrind --tool=callgrind --callgrind-out-file="$out" "$exe" --bench --profile-time "$PROFILE_TIME" \
      --exact "$bench" >/dev/null 2>"$out.log" || { echo "-"; return; }
  fi
  python3 bench/callgrind-per-call.py "$out" "$fn" "$caller" 2>/dev/null | awk '{print $3}' || echo "-"
}

A=$(git -C "$repo" rev-parse --short "$1") B=$(git -C "$repo" rev-parse --short "$2")
build a "$A"
build b "$B"
printf '| instructions per call | %s | %s | change |\n|---|---:|---:|---:|\n' "$A" "$B"
echo "$CASES_TABLE" | while IFS='|' read -r name pkg target bench fn caller; do
  [ -n "$name" ] || continue
  [[ $name =~ $CASES ]] || continue
  a=$(measure "$A" "$target" "$bench" "$fn" "$caller")
  b=$(measure "$B" "$target" "$bench" "$fn" "$caller")
  if [[ $a =~ ^[0-9]+$ && $b =~ ^[0-9]+$ ]]; then
    change=$(python3 -c "print(f'{($b - $a) / $a * 100:+.1f} %')")
  else
    change="-"
  fi
  printf '| %s | %s | %s | %s |\n' "$name" "$a" "$b" "$change"
done
