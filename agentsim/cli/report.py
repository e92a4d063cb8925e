"""``agentsim report RUN_DIR``: rebuild summary.json, report.md and report.html from the journal."""

from __future__ import annotations

import argparse
import json
import sys
import webbrowser
from pathlib import Path

from agentsim.cli.errors import EXIT_OK, UsageError
from agentsim.report.writer import write_reports


def add_arguments(rep: argparse.ArgumentParser) -> None:
    rep.add_argument("run_dir")
    rep.add_argument("--open", action="store_true", help="open report.html in the web browser")


def run_dir(arg: str) -> Path:
    """A folder holding a ``journal.jsonl`` (else ``UsageError``)."""
    path = Path(arg)
    if not (path / "journal.jsonl").is_file():
        raise UsageError(f"run_dir must hold a journal.jsonl, got {str(path)!r}")
    return path


def main(args: argparse.Namespace) -> int:
    path = run_dir(args.run_dir)
    summary = write_reports(path)
    print(
        json.dumps({k: summary[k] for k in ("tasks_done", "accuracy", "partial", "failures_total")})
    )
    if args.open:
        html = (path / "report.html").resolve()
        if not webbrowser.open(html.as_uri()):
            print(f"agentsim: no web browser found; open {html}", file=sys.stderr)
    return EXIT_OK
