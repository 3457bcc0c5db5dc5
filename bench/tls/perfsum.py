#!/usr/bin/env python3
"""perfsum.py: where one process's time went, from a system-wide
`perf record -a --call-graph dwarf` (bench/tls/run).  mdmd serves each
connection on a thread of its own, started when the connection is: a
recording of the process (-p) misses those threads, and perf report's
--pid/--tid filters drop some shared objects, so this reads
`perf script` and counts the process's samples itself.

usage: perf script -i perf.data -F pid,ip,sym,dso | perfsum.py PID [N]

Prints the process's share of the machine's samples; its self time by
shared object; the system calls its time was spent in (inclusive); and
the N (default 30) named user-space functions with the most samples in
them or below (inclusive; each counted once per sample).
"""
import collections
import os
import re
import sys

PID = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 30
FRAME = re.compile(r"^\t\s*[0-9a-f]+ (.*?) \((.*)\)$")
SKIP = {"start_thread", "clone3", "[unknown]", "__libc_start_main",
        "__libc_start_call_main", "_start"}


def samples(f):
    pid, frames = None, []
    for line in f:
        if not line.strip():
            if pid is not None:
                yield pid, frames
            pid, frames = None, []
        elif not line.startswith("\t"):  # a sample: " PID" (frames: tab)
            if pid is not None:
                yield pid, frames
            pid, frames = line.split()[0], []
        else:
            m = FRAME.match(line.rstrip("\n"))
            if m:
                frames.append((m.group(1), m.group(2)))
    if pid is not None:
        yield pid, frames


total = mine = 0
by_dso = collections.Counter()
by_sys = collections.Counter()
by_fn = collections.Counter()
for pid, frames in samples(sys.stdin):
    total += 1
    if pid != PID:
        continue
    mine += 1
    dso = next((d for _, d in frames if d != "inlined"), "?")
    by_dso["kernel" if dso.startswith("[kernel") else os.path.basename(dso)] += 1
    seen_sys, seen_fn = set(), set()
    for sym, d in frames:
        if d.startswith("[kernel"):
            if sym.startswith("__x64_sys_"):
                seen_sys.add(sym[len("__x64_sys_"):])
            continue
        sym = re.sub(r" \(inlined\)$", "", sym)
        if sym in SKIP or sym.startswith("0x"):
            continue
        seen_fn.add(sym)
    by_sys.update(seen_sys)
    by_fn.update(seen_fn)

if not mine:
    print("no samples of process %s (of %d)" % (PID, total))
    sys.exit(0)
print("%d samples of mdmd, %.0f %% of the machine's %d" % (
    mine, 100.0 * mine / total, total))
print()
print("self, by shared object:")
for k, v in by_dso.most_common(8):
    print("  %6.1f %%  %s" % (100.0 * v / mine, k))
print()
print("in system calls (inclusive):")
for k, v in by_sys.most_common(8):
    print("  %6.1f %%  %s" % (100.0 * v / mine, k))
print()
print("in these functions or below (inclusive):")
for k, v in by_fn.most_common(N):
    print("  %6.1f %%  %s" % (100.0 * v / mine, k))
