"""``agentsim agent --connect ENDPOINT --name NAME``: one agent process (``agentsim.agent.process``)."""

from __future__ import annotations

import argparse

from agentsim.agent import process


def add_arguments(parser: argparse.ArgumentParser) -> None:
    process.build_parser(parser)


def main(args: argparse.Namespace) -> int:
    return process.main(args)
