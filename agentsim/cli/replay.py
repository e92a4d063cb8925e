"""``agentsim replay RUN_DIR``: re-run a recorded run with its recorded completions and tool
results, and compare the whole message sequence with the recorded one.

``--fork-at TASK --faults F.toml`` replays exactly up to TASK, then runs from TASK on under F's
faults (the agents' own engines answer what the recording does not hold). Exit 0 when the
replayed part is identical, 1 when it diverged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agentsim.bus.faults_seeded import build_fault_layer
from agentsim.cli.common import checked_work, execute
from agentsim.cli.errors import EXIT_OK, EXIT_RUN_FAILED
from agentsim.run.replay import diverged, outcomes, plan_replay
from agentsim.run.sequence import compare, message_sequence


def add_arguments(rpl: argparse.ArgumentParser) -> None:
    rpl.add_argument("run_dir")
    rpl.add_argument(
        "--faults", help="a TOML file whose [faults] table replaces the run's faults (a fork)"
    )
    rpl.add_argument(
        "--fork-at",
        metavar="TASK",
        help="replay exactly up to this task, then run it and the rest under --faults",
    )
    rpl.add_argument(
        "--out", help="parent folder for the new run folder (default: next to the old one)"
    )
    rpl.add_argument("--quiet", action="store_true")


def main(args: argparse.Namespace) -> int:
    run = Path(args.run_dir)
    plan = plan_replay(run, Path(args.faults) if args.faults else None, args.fork_at)
    work = checked_work(plan.scenario, plan.base_dir)
    out = Path(args.out) if args.out else run.parent
    before = outcomes(run)
    fork = plan.fork
    code, folder = execute(
        plan.scenario,
        work,
        plan.source,
        plan.base_dir,
        out,
        quiet=args.quiet,
        name=f"{plan.scenario.run.name}-{'fork' if fork else 'replay'}",
        faults=build_fault_layer(plan.scenario, fork) if fork else None,
    )
    if code != EXIT_OK:
        return code
    replayed = set(plan.tasks) if fork is None else set(fork.before)
    old = message_sequence(run / "journal.jsonl", replayed)
    new = message_sequence(folder.path / "journal.jsonl", replayed)
    same = compare(old, new)
    what = "message sequence" if fork is None else f"message sequence before {fork.task}"
    if same.identical:
        print(
            f"replay: {what} identical to {run.name} "
            f"({same.messages} messages in {same.streams} streams)"
        )
    else:
        print(f"replay: {what} differs from {run.name}: {same.difference}")
    after = outcomes(folder.path)
    changed = diverged(before, after)
    if fork is not None:
        later = [t for t in plan.tasks if t not in fork.before]
        moved = [t for t in changed if t in later]
        print(f"fork at {fork.task}: {len(moved)}/{len(later)} task results differ")
    else:
        print(
            f"replay: {len(before) - len(changed)}/{len(before)} task results identical "
            f"to {run.name}"
        )
    for t in changed:
        print(f"  diverged {t}: {before[t]} -> {after.get(t)}")
    return EXIT_OK if same.identical else EXIT_RUN_FAILED
