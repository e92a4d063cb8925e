"""``agentsim compare RUN_DIR...``: one table and a quality-vs-cost plot over runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from agentsim.cli.errors import EXIT_OK, UsageError
from agentsim.report.compare import find_runs, write_comparison
from agentsim.report.writer import write_reports


def add_arguments(cmp_: argparse.ArgumentParser) -> None:
    cmp_.add_argument("run_dirs", nargs="+")
    cmp_.add_argument("--out", help="where to write comparison.md / .json / .png")


def main(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.run_dirs]
    for p in paths:
        if not p.is_dir():
            raise UsageError(f"run_dirs must be run folders, got {str(p)!r} (not a folder)")
    runs = find_runs(paths)
    if not runs:
        raise UsageError(f"run_dirs hold no run folder with a journal.jsonl, got {args.run_dirs!r}")
    for r in runs:
        if not (r / "summary.json").is_file():
            write_reports(r)
    out = Path(args.out) if args.out else (paths[0] if len(paths) == 1 else Path("."))
    print(write_comparison(runs, out))
    print(f"wrote {out / 'comparison.md'} and {out / 'quality_vs_cost.png'}")
    return EXIT_OK
