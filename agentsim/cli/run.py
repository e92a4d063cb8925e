"""``agentsim run SCENARIO`` (also ``agentsim SCENARIO``): one run folder, or a sweep folder."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from agentsim.cli.common import checked_work, configurations, execute, with_overrides
from agentsim.cli.errors import EXIT_INTERRUPTED, EXIT_OK
from agentsim.report.compare import find_runs, write_comparison
from agentsim.scenario.validate import load_scenario


def add_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("scenario", help="scenario .toml file")
    run.add_argument("--out", help="parent folder for the run folder (default: [run].out)")
    run.add_argument("--seed", type=int, help="override [run].seed")
    run.add_argument("--limit", type=int, help="override [tasks].limit")
    run.add_argument("--quiet", action="store_true", help="no progress display")


def main(args: argparse.Namespace) -> int:
    path = Path(args.scenario)
    load_scenario(path)  # the whole file first: its errors name the file's own lines
    text = path.read_text(encoding="utf-8")
    base_dir = path.resolve().parent
    configs = [(label, with_overrides(sc, args)) for label, sc in configurations(str(path))]
    prepared = [(label, sc, checked_work(sc, base_dir)) for label, sc in configs]
    out = Path(args.out or configs[0][1].run.out)
    if len(prepared) == 1 and not prepared[0][0]:
        _, scenario, work = prepared[0]
        code, _ = execute(scenario, work, text, base_dir, out, quiet=args.quiet)
        return code
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    parent = out / f"{path.stem}-sweep-{stamp}"
    parent.mkdir(parents=True, exist_ok=True)
    worst = EXIT_OK
    for label, scenario, work in prepared:
        print(f"== {label}", file=sys.stderr)
        code, _ = execute(scenario, work, text, base_dir, parent, quiet=args.quiet)
        if code == EXIT_INTERRUPTED:
            return code
        worst = max(worst, code)
    print(write_comparison(find_runs([parent]), parent))
    print(f"sweep: {parent}")
    return worst
