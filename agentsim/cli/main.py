"""Parse the command line and run one subcommand; ``agentsim X.toml`` means ``agentsim run X.toml``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Protocol

from agentsim.cli.errors import explain, fail

COMMANDS: dict[str, str] = {
    "run": "run a scenario and write a run folder",
    "validate": "check a scenario file without running it",
    "report": "rebuild summary.json, report.md and report.html from a run's journal",
    "export": "write a run's transcripts or results for other tools",
    "agent": "run one agent process (started by the runner or by hand)",
    "models": "manage models in the agentsim cache",
    "compare": "compare runs (or a sweep folder): table + quality-vs-cost plot",
    "replay": "re-run a recorded run with its recorded completions",
    "explore": "search fault schedules that break a protocol's invariants",
    "keys": "create CURVE key pairs for runs across hosts",
}


class Command(Protocol):
    """A subcommand module."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def main(self, args: argparse.Namespace) -> int: ...


def _command(name: str) -> Command:
    """The module of one subcommand, imported only when it runs."""
    match name:
        case "run":
            from agentsim.cli import run

            return run
        case "validate":
            from agentsim.cli import validate

            return validate
        case "report":
            from agentsim.cli import report

            return report
        case "export":
            from agentsim.cli import export

            return export
        case "agent":
            from agentsim.cli import agent

            return agent
        case "models":
            from agentsim.cli import models

            return models
        case "compare":
            from agentsim.cli import compare

            return compare
        case "replay":
            from agentsim.cli import replay

            return replay
        case "explore":
            from agentsim.cli import explore

            return explore
        case "keys":
            from agentsim.cli import keys

            return keys
    raise KeyError(name)


def _parser(selected: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agentsim",
        description="Run small-language-model agents as processes over a ZeroMQ bus, from a scenario file.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in COMMANDS.items():
        parser = sub.add_parser(name, help=help_)
        if name == selected:
            _command(name).add_arguments(parser)
    return p


def main(argv: list[str] | None = None) -> int:
    """The ``agentsim`` entry point; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in COMMANDS and not args_list[0].startswith("-"):
        args_list = ["run", *args_list]
    selected = args_list[0] if args_list and args_list[0] in COMMANDS else None
    args = _parser(selected).parse_args(args_list)
    if args.command != "agent":
        # Set by an agent's runtime-only TVM (engines/mlc/tvm_api.py) and inherited by what it
        # starts; any other command may need TVM's compiler (models check, builds).
        os.environ.pop("TVM_USE_RUNTIME_LIB", None)
    try:
        return _command(args.command).main(args)
    except Exception as exc:
        found = explain(exc)
        if found is None:
            raise
        return fail(*found)
