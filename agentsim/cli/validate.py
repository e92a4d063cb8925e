"""``agentsim validate SCENARIO``: every check that can be made without running."""

from __future__ import annotations

import argparse
from pathlib import Path

from agentsim.cli.common import checked_work, configurations
from agentsim.cli.errors import EXIT_OK
from agentsim.scenario.validate import load_scenario


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario")


def main(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    base_dir = Path(args.scenario).resolve().parent
    configs = configurations(args.scenario)
    for _, sc in configs:
        checked_work(sc, base_dir)
    if len(configs) > 1:
        print(f"{args.scenario}: sweep of {len(configs)} configurations")
    n = len(scenario.agents)
    if scenario.environment:
        print(f"{args.scenario}: ok ({n} agents, environment {scenario.environment.get('kind')})")
        return EXIT_OK
    print(f"{args.scenario}: ok ({n} agents, protocol {scenario.protocol.kind})")
    return EXIT_OK
