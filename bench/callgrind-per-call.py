#!/usr/bin/env python3
"""Instructions per call of one function, from a callgrind output file.

    callgrind-per-call.py CALLGRIND_OUT REGEX [CALLER_REGEX]

Sums, over every call site whose callee's name matches REGEX and whose caller's does not
(so recursion and nested matches are not counted twice) — and, when CALLER_REGEX is given,
whose caller's name matches it (the benchmark's own code, not the library calling the same
function internally) — the number of calls and the inclusive instruction count (Ir) of those
calls, and prints `calls inclusive_Ir Ir_per_call`.
Exit 1 when no call matched (the function was inlined into its callers, or renamed).

Used by bench/callgrind-ab.sh: a criterion bench runs an unknown number of iterations, but
callgrind counts the calls, so the cost per call of the benchmarked function is exact and
independent of how long criterion ran or how loaded the machine was.
"""
import re
import sys


def names(path):
    """Yields (caller, callee, calls, inclusive) for each call record of the file."""
    ids = {}
    caller = None
    pending = None  # (callee, calls) waiting for its cost line

    def name(spec):
        # "(12) full::name" defines id 12; "(12)" refers to it; uncompressed files give the name.
        m = re.match(r"\((\d+)\)(?: (.*))?$", spec)
        if not m:
            return spec
        if m.group(2) is not None:
            ids[m.group(1)] = m.group(2)
        return ids.get(m.group(1), spec)

    callee = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if pending is not None:
                fields = line.split()
                if fields:
                    yield caller, pending[0], pending[1], int(fields[-1])
                pending = None
                continue
            if line.startswith("fn="):
                caller = name(line[3:])
            elif line.startswith("cfn="):
                callee = name(line[4:])
            elif line.startswith("calls="):
                pending = (callee, int(line[6:].split()[0]))


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    rx = re.compile(sys.argv[2])
    crx = re.compile(sys.argv[3]) if len(sys.argv) == 4 and sys.argv[3] else None
    calls = 0
    incl = 0
    for caller, callee, n, cost in names(sys.argv[1]):
        if not callee or not rx.search(callee) or (caller and rx.search(caller)):
            continue
        if crx is None or (caller and crx.search(caller)):
            calls += n
            incl += cost
    if calls == 0:
        print(f"no call of /{sys.argv[2]}/ in {sys.argv[1]}", file=sys.stderr)
        sys.exit(1)
    print(calls, incl, round(incl / calls))


if __name__ == "__main__":
    main()
