"""What several subcommands share: a scenario and its work loaded with one-line errors, the
configurations of a (sweep) file, and one assembled run executed with its exit code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec
import trio

from agentsim.cli.errors import EXIT_OK, UsageError, fail
from agentsim.protocols import ProtocolLoadError
from agentsim.report.progress import LiveProgress
from agentsim.report.writer import write_reports
from agentsim.run.assemble import assemble
from agentsim.run.errors import RunError
from agentsim.run.folder import RunFolder
from agentsim.run.work import Work, load_work
from agentsim.scenario.schema import Scenario
from agentsim.scenario.sweep import expand
from agentsim.tasks import TaskError
from agentsim.util import find_exception


def configurations(path: str) -> list[tuple[str, Scenario]]:
    """The file's configurations: ``[("", scenario)]``, or one labelled entry per sweep config."""
    p = Path(path)
    return expand(p.read_text(encoding="utf-8"), str(p), p.resolve().parent)


def checked_work(scenario: Scenario, base_dir: Path) -> Work:
    """Tasks, scorer and protocol for ``scenario``; a protocol checks its options when built."""
    try:
        work = load_work(scenario, base_dir)
        work.protocol(scenario)
        return work
    except TaskError as e:
        raise UsageError(f"tasks.suite: {e}") from None
    except ProtocolLoadError as e:
        raise UsageError(str(e)) from None
    except (ValueError, KeyError) as e:
        raise UsageError(f"protocol.options: {e} ({scenario.run.name})") from None


def with_overrides(scenario: Scenario, args: argparse.Namespace) -> Scenario:
    """``--seed`` and ``--limit`` applied."""
    if args.seed is not None:
        scenario = msgspec.structs.replace(
            scenario, run=msgspec.structs.replace(scenario.run, seed=args.seed)
        )
    if args.limit is not None:
        if args.limit < 0:
            raise UsageError(f"--limit must be >= 0, got {args.limit} (command line)")
        scenario = msgspec.structs.replace(
            scenario, tasks=msgspec.structs.replace(scenario.tasks, limit=args.limit)
        )
    return scenario


def execute(
    scenario: Scenario,
    work: Work,
    source: str,
    base_dir: Path,
    out: Path,
    *,
    quiet: bool,
    name: str = "",
) -> tuple[int, RunFolder]:
    """Assemble one run with agent processes, run it with a progress bar, print its line.

    Returns the exit code and the run folder it made (also when the run failed).
    """
    show = not quiet and sys.stderr.isatty()
    progress = LiveProgress(len(work.tasks), enabled=show)
    made = assemble(
        scenario,
        out,
        base_dir=base_dir,
        source=source,
        work=work,
        name=name,
        argv=sys.argv,
        progress=progress,
        reporter=write_reports,
    )
    try:
        with progress:
            summary = trio.run(made.run)
    except KeyboardInterrupt:
        return fail("interrupted", f"partial results in {made.path}"), made.folder
    except BaseException as exc:
        err = find_exception(exc, RunError)
        if err is None:
            if find_exception(exc, KeyboardInterrupt) is not None:
                return fail("interrupted", f"partial results in {made.path}"), made.folder
            raise
        return fail("run failed", f"{err} ({made.path})"), made.folder
    finally:
        made.close()
    lo, hi = summary["accuracy_ci95"]
    print(
        f"{made.path}: {summary['tasks_done']} tasks, accuracy {summary['accuracy']:.3f} "
        f"[{lo:.3f}, {hi:.3f}], completion {summary['completion_rate']:.3f}, "
        f"failures {summary['failures_total']}"
    )
    return EXIT_OK, made.folder
