"""``agentsim run SCENARIO`` (also ``agentsim SCENARIO``): one run folder, or a sweep folder.

A sweep runs its configurations one after another, or ``--parallel N`` at a time (each its
own runner process; Ray tasks when the scenario uses ``launcher = "ray"``), into one parent
folder, then writes the comparison. ``--config LABEL`` runs one configuration of a sweep
straight into ``--out`` (what each parallel child does).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from agentsim.cli.common import checked_work, configurations, execute, with_overrides
from agentsim.cli.errors import EXIT_INTERRUPTED, EXIT_OK, UsageError
from agentsim.report.compare import find_runs, write_comparison
from agentsim.report.writer import write_reports
from agentsim.run.parallel import Configuration, Outcome, run_parallel
from agentsim.run.work import Work
from agentsim.scenario.schema import Scenario
from agentsim.scenario.validate import load_scenario


def add_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("scenario", help="scenario .toml file")
    run.add_argument("--out", help="parent folder for the run folder (default: [run].out)")
    run.add_argument("--seed", type=int, help="override [run].seed")
    run.add_argument("--limit", type=int, help="override [tasks].limit")
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.add_argument(
        "--parallel",
        type=int,
        default=1,
        metavar="N",
        help="run up to N sweep configurations at once (processes; Ray tasks with launcher = 'ray')",
    )
    run.add_argument(
        "--config", metavar="LABEL", help="run only this configuration of a sweep, into --out"
    )


def main(args: argparse.Namespace) -> int:
    path = Path(args.scenario)
    load_scenario(path)  # the whole file first: its errors name the file's own lines
    if args.parallel < 1:
        raise UsageError(f"--parallel must be >= 1, got {args.parallel} (command line)")
    text = path.read_text(encoding="utf-8")
    base_dir = path.resolve().parent
    configs = [(label, with_overrides(sc, args)) for label, sc in configurations(str(path))]
    if args.config is not None:
        configs = [(label, sc) for label, sc in configs if label == args.config]
        if not configs:
            labels = ", ".join(label for label, _ in configurations(str(path)) if label)
            raise UsageError(
                f"--config must name a configuration of {path}, got {args.config!r}; "
                f"it has: {labels or 'none (not a sweep)'}"
            )
        configs = [("", configs[0][1])]
    prepared = [(label, sc, checked_work(sc, base_dir, str(path))) for label, sc in configs]
    out = Path(args.out or configs[0][1].run.out)
    if len(prepared) == 1 and not prepared[0][0]:
        _, scenario, work = prepared[0]
        code, _ = execute(scenario, work, text, base_dir, out, quiet=args.quiet)
        return code
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    parent = out / f"{path.stem}-sweep-{stamp}"
    parent.mkdir(parents=True, exist_ok=True)
    if args.parallel > 1:
        worst = _parallel(args, path, prepared, text, base_dir, parent)
        if worst == EXIT_INTERRUPTED:
            return worst
    else:
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


def _parallel(
    args: argparse.Namespace,
    path: Path,
    prepared: list[tuple[str, Scenario, Work]],
    text: str,
    base_dir: Path,
    parent: Path,
) -> int:
    cli = ["run", str(path.resolve())]
    if args.seed is not None:
        cli += ["--seed", str(args.seed)]
    if args.limit is not None:
        cli += ["--limit", str(args.limit)]

    def progress(outcome: Outcome, done: int, total: int) -> None:
        print(f"== [{done}/{total}] {outcome.label}: {outcome.line}", file=sys.stderr)

    print(
        f"sweep: {len(prepared)} configurations, {args.parallel} at a time, into {parent}",
        file=sys.stderr,
    )
    outcomes = run_parallel(
        [Configuration(label=label, scenario=sc, work=work) for label, sc, work in prepared],
        parallel=args.parallel,
        cli=cli,
        parent=parent,
        source=text,
        base_dir=base_dir,
        reporter=write_reports,
        progress=progress,
    )
    codes = [o.code for o in outcomes]
    if EXIT_INTERRUPTED in codes:
        print(f"agentsim: interrupted; partial results in {parent}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return max(codes, default=EXIT_OK)
