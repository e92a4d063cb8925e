"""``agentsim explore SCENARIO``: search fault schedules that break a protocol's invariants.

It explores every configuration of a sweep file, shows its progress on stderr (schedules
tried, broken so far) and its findings on stdout — never the runs' own logs. Exit 0 when no
schedule broke an invariant, 1 with the shrunk counterexample printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agentsim.cli.common import checked_work, configurations, with_overrides
from agentsim.cli.errors import EXIT_OK, EXIT_RUN_FAILED, UsageError
from agentsim.run.explore import explore, stand_ins, to_toml
from agentsim.scenario.validate import load_scenario


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario")
    parser.add_argument(
        "--budget", type=int, default=100, help="fault schedules to try per configuration"
    )
    parser.add_argument("--limit", type=int, help="override [tasks].limit (tasks per run)")


class _Progress:
    """One status line on a terminal, a line per tenth of the budget otherwise."""

    def __init__(self, label: str, budget: int) -> None:
        self.label = label
        self.budget = budget
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.step = max(1, budget // 10)

    def __call__(self, phase: str, runs: int, broken: int) -> None:
        took = time.monotonic() - self.t0
        if phase == "search":
            line = f"{self.label}schedules {runs}/{self.budget}, broken {broken} ({took:.0f}s)"
            show = runs % self.step == 0 or runs == self.budget
        else:
            line = f"{self.label}shrinking: {runs} runs ({took:.0f}s)"
            show = runs % 25 == 0
        if self.tty:
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
        elif show:
            print(line, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    load_scenario(args.scenario)  # the whole file first: its errors name the file's lines
    if args.budget < 1:
        raise UsageError(f"--budget must be >= 1, got {args.budget} (command line)")
    base_dir = Path(args.scenario).resolve().parent
    args.seed = None
    configs = [(label, with_overrides(sc, args)) for label, sc in configurations(args.scenario)]
    worst = EXIT_OK
    for label, scenario in configs:
        checked_work(scenario, base_dir, args.scenario)
        explored, replaced = stand_ins(scenario)
        name = f"[{label}] " if label else ""
        if replaced:
            engines = sorted({scenario.agents[a].engine for a in replaced})
            print(
                f"explore: {name}{', '.join(replaced)} run {'/'.join(engines)}; explored with "
                "scripted stand-ins (the invariants are the protocol's and the runner's)",
                file=sys.stderr,
            )
        progress = _Progress(f"explore: {name}", args.budget)
        found = explore(explored, base_dir, budget=args.budget, progress=progress)
        progress.done()
        if found.example is None:
            print(f"explore: {name}no invariant broken in {found.tried} fault schedules")
            continue
        worst = EXIT_RUN_FAILED
        print(
            f"explore: {name}{found.broken} of {found.tried} fault schedules broke an invariant; "
            "the smallest one found:"
        )
        for v in found.violations:
            print(f"  - {v}")
        print("smallest fault schedule found (paste into the scenario):\n")
        print(to_toml(found.example))
    return worst
