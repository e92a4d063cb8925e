"""Fault-layer overhead: broker throughput with each fault kind configured vs none, one run.

With probability 0 the layer still inspects every delivery (scope matching, RNG draws), so
this measures its cost; the target is ≥ 0.8× the fault-free throughput. A second column
shows each kind switched on at p = 0.05 for scale (drops and delays change what is measured).

    python bench/faults.py [--n 5000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bus import run_agentsim

KINDS: dict[str, dict[str, object]] = {
    "drop": {"drop": {"p": 0.0}},
    "delay": {"delay": {"p": 0.0, "dist": "uniform", "low_s": 0.0, "high_s": 0.001}},
    "duplicate": {"duplicate": {"p": 0.0}},
    "reorder": {"reorder": {"p": 0.0, "window_s": 0.001}},
    "partition": {"partition": [{"groups": [["ping"], ["pong"]], "start_s": 1e9}]},
    "all five": {
        "drop": {"p": 0.0},
        "delay": {"p": 0.0},
        "duplicate": {"p": 0.0},
        "reorder": {"p": 0.0},
        "partition": [{"groups": [["ping"], ["pong"]], "start_s": 1e9}],
    },
}
ON = {
    "delay": {"delay": {"p": 0.05, "dist": "fixed", "value_s": 0.0005}},
    "duplicate": {"duplicate": {"p": 0.05}},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
    base = run_agentsim(args.n, 64)
    rows = []
    for name, faults in KINDS.items():
        r = run_agentsim(args.n, 64, faults)
        rows.append((name, r["msgs_per_s"], r["msgs_per_s"] / base["msgs_per_s"]))
    print(
        f"fault layer overhead: {args.n} round trips per side, window 64, faults configured with p = 0"
    )
    print(f"| {'faults':<12} | {'msgs/s':>9} | {'× fault-free':>12} | target ≥ 0.8 |")
    print(f"|{'-' * 14}|{'-' * 11}|{'-' * 14}|{'-' * 14}|")
    print(f"| {'none':<12} | {base['msgs_per_s']:>9.0f} | {1.0:>12.2f} |              |")
    for name, rate, ratio in rows:
        print(
            f"| {name:<12} | {rate:>9.0f} | {ratio:>12.2f} | {'met' if ratio >= 0.8 else 'NOT met':>12} |"
        )
    print()
    for name, faults in ON.items():
        r = run_agentsim(args.n, 64, faults)
        print(
            f"with {name} at p = 0.05: {r['msgs_per_s']:.0f} msgs/s ({r['msgs_per_s'] / base['msgs_per_s']:.2f}×)"
        )


if __name__ == "__main__":
    main()
