"""``agentsim replay RUN_DIR``: re-run a recorded run with its recorded completions and say
which task results diverge (``--faults``: fork it with another fault table)."""

from __future__ import annotations

import argparse
from pathlib import Path

from agentsim.cli.common import checked_work, execute
from agentsim.cli.errors import EXIT_OK
from agentsim.run.replay import diverged, outcomes, plan_replay


def add_arguments(rpl: argparse.ArgumentParser) -> None:
    rpl.add_argument("run_dir")
    rpl.add_argument(
        "--faults", help="a TOML file whose [faults] table replaces the run's faults (fork)"
    )
    rpl.add_argument(
        "--out", help="parent folder for the new run folder (default: next to the old one)"
    )
    rpl.add_argument("--quiet", action="store_true")


def main(args: argparse.Namespace) -> int:
    run = Path(args.run_dir)
    plan = plan_replay(run, Path(args.faults) if args.faults else None)
    work = checked_work(plan.scenario, plan.base_dir)
    out = Path(args.out) if args.out else run.parent
    before = outcomes(run)
    code, folder = execute(
        plan.scenario,
        work,
        plan.source,
        plan.base_dir,
        out,
        quiet=args.quiet,
        name=f"{plan.scenario.run.name}-replay",
    )
    if code != EXIT_OK:
        return code
    after = outcomes(folder.path)
    changed = diverged(before, after)
    print(
        f"replay: {len(before) - len(changed)}/{len(before)} task results identical to {run.name}"
    )
    for t in changed:
        print(f"  diverged {t}: {before[t]} -> {after.get(t)}")
    return EXIT_OK
