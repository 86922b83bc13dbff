#!/usr/bin/env python3
"""Runs shell commands interleaved, N rounds in a shuffled order each, and
prints the median (and quartiles, mean) wall time of each in milliseconds.

For start-up-bound commands (re-push, inspect), where one run is tens of
milliseconds and the machine's noise moves in spells: every command sees
the same spells.

Usage: bench/interleave.py N 'command A' 'command B' ...
"""
import random
import statistics
import subprocess
import sys
import time


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    n = int(sys.argv[1])
    cmds = sys.argv[2:]
    times = {c: [] for c in cmds}
    for _ in range(n):
        order = cmds[:]
        random.shuffle(order)
        for c in order:
            start = time.perf_counter()
            subprocess.run(c, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[c].append((time.perf_counter() - start) * 1000)
    for c in cmds:
        v = sorted(times[c])
        print("median %6.1f ms  p25 %6.1f  p75 %6.1f  mean %6.1f  %s" % (
            statistics.median(v), v[len(v) // 4], v[3 * len(v) // 4], statistics.mean(v), c))


if __name__ == "__main__":
    main()
