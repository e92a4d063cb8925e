"""``agentsim export RUN_DIR --format openai|csv|parquet``: a run's data for other tools."""

from __future__ import annotations

import argparse
from pathlib import Path

from agentsim.cli.errors import EXIT_OK, UsageError
from agentsim.cli.report import run_dir
from agentsim.journal import read_journal
from agentsim.report.export import DEFAULT_NAMES, ExportError, export


def add_arguments(exp: argparse.ArgumentParser) -> None:
    exp.add_argument("run_dir")
    exp.add_argument(
        "--format",
        required=True,
        choices=("openai", "csv", "parquet"),
        help="openai: chat transcripts (JSON lines); csv, parquet: one row per task",
    )
    exp.add_argument(
        "--out",
        help="output file (default: RUN_DIR/transcripts.openai.jsonl, results.csv or .parquet)",
    )


def main(args: argparse.Namespace) -> int:
    path = run_dir(args.run_dir)
    dest = Path(args.out) if args.out else path / DEFAULT_NAMES[args.format]
    if not dest.parent.is_dir():
        raise UsageError(f"--out must be in an existing folder, got {str(dest)!r}")
    try:
        n = export(list(read_journal(path / "journal.jsonl")), args.format, dest)
    except ExportError as e:
        raise UsageError(str(e)) from None
    print(f"{dest}: {n} {'conversations' if args.format == 'openai' else 'rows'}")
    return EXIT_OK
