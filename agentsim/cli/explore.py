"""``agentsim explore SCENARIO``: search fault schedules that break a protocol's invariants.

Exit 0 when no schedule broke an invariant, 1 with the shrunk counterexample printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agentsim.cli.common import checked_work
from agentsim.cli.errors import EXIT_OK, EXIT_RUN_FAILED, UsageError
from agentsim.run.explore import explore, to_toml
from agentsim.scenario.validate import load_scenario


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario")
    parser.add_argument(
        "--budget", type=int, default=100, help="fault schedules to try (default 100)"
    )


def main(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    if args.budget < 1:
        raise UsageError(f"--budget must be >= 1, got {args.budget} (command line)")
    heavy = [a for a, s in scenario.agents.items() if s.engine not in ("scripted", "replay")]
    if heavy:
        raise UsageError(
            f"agents.{heavy[0]}.engine must be scripted or replay for explore (it runs hundreds of "
            f"simulated runs), got {scenario.agents[heavy[0]].engine!r} ({args.scenario})"
        )
    base_dir = Path(args.scenario).resolve().parent
    checked_work(scenario, base_dir)
    example, broken = explore(scenario, base_dir, budget=args.budget)
    if example is None:
        print(f"explore: no invariant broken in {args.budget} fault schedules")
        return EXIT_OK
    print("explore: invariant broken:")
    for v in broken:
        print(f"  - {v}")
    print("smallest fault schedule found (paste into the scenario):\n")
    print(to_toml(example))
    return EXIT_RUN_FAILED
