"""Python tool benchmark: start-up cost per call of the OS sandbox vs a bare subprocess.

All measured in one run, interleaved, on the same snippets:

- ``bare``: ``subprocess.run([sys.executable, "-I", "-c", code])`` — how a snippet runs with
  no sandbox at all (the baseline);
- ``weak``: the opt-in audit-hook sandbox (temp dir, rlimits, ``unshare -n``, audit hook);
- ``os``: the default OS sandbox (bubblewrap namespaces, minimal root, tmpfs, seccomp);
- ``userns``: of ``os``, the part spent making the per-call user namespace (agent is root).

    python bench/python_sandbox.py [--n 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from agentsim.tools.python import SandboxUnavailable, isolation, osbox, run_sandboxed

SNIPPETS = {
    "print(1)": "print(1)",
    "stdlib": "import json, math, statistics\nprint(json.dumps([math.pi, statistics.mean([1, 2])]))",
}


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q / 100 * len(s)))]


def bare(code: str) -> None:
    subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    args = ap.parse_args()
    try:
        iso = isolation()
    except SandboxUnavailable as e:
        sys.exit(f"no OS sandbox here: {e}")
    print(f"isolation: {iso.describe()}\n")
    ways: dict[str, Callable[[str], object]] = {
        "bare": bare,
        "weak": lambda c: run_sandboxed(c, mode="weak"),
        "os": run_sandboxed,
    }
    if iso.as_root:
        ways["userns"] = lambda c: os.close(osbox._root_userns(osbox.SANDBOX_ID))
    print("| snippet | way | median ms | p95 ms | × bare |")
    print("|---|---|---|---|---|")
    for label, code in SNIPPETS.items():
        times: dict[str, list[float]] = {w: [] for w in ways}
        for _ in range(args.n):
            for way, fn in ways.items():
                t0 = time.perf_counter()
                fn(code)
                times[way].append(time.perf_counter() - t0)
        base = statistics.median(times["bare"])
        for way, xs in times.items():
            med = statistics.median(xs)
            print(
                f"| {label} | {way} | {med * 1e3:.1f} | {pct(xs, 95) * 1e3:.1f} | {med / base:.2f} |"
            )


if __name__ == "__main__":
    main()
