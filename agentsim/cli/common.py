"""What several subcommands share: a scenario and its work loaded with one-line errors, the
configurations of a (sweep) file, and one assembled run executed with its exit code."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import trio

from agentsim.bus.faults import FaultLayer
from agentsim.cli.errors import EXIT_OK, UsageError, fail
from agentsim.protocols import ProtocolLoadError
from agentsim.report.progress import LiveProgress
from agentsim.report.writer import write_reports
from agentsim.run.assemble import assemble
from agentsim.run.errors import RunError
from agentsim.run.folder import RunFolder
from agentsim.run.work import Work, load_work
from agentsim.scenario.errors import where_line
from agentsim.scenario.schema import Scenario
from agentsim.scenario.sweep import expand
from agentsim.tasks import TaskError
from agentsim.util import find_exception


def configurations(path: str) -> list[tuple[str, Scenario]]:
    """The file's configurations: ``[("", scenario)]``, or one labelled entry per sweep config."""
    p = Path(path)
    return expand(p.read_text(encoding="utf-8"), str(p), p.resolve().parent)


def checked_work(scenario: Scenario, base_dir: Path, where: str = "") -> Work:
    """Tasks, scorer and protocol for ``scenario``; a protocol checks its options when built.

    ``where`` (the scenario file) places a bad protocol option at its line.
    """
    try:
        work = load_work(scenario, base_dir)
    except TaskError as e:
        raise UsageError(f"tasks.suite: {e}") from None
    except ProtocolLoadError as e:
        raise UsageError(str(e)) from None
    try:
        work.protocol(scenario)
    except ProtocolLoadError as e:
        raise UsageError(str(e)) from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        # a protocol's own option checks, or an option of the wrong shape it tripped over
        place = scenario.run.name
        if where:
            text = Path(where).read_text(encoding="utf-8")
            place = where_line(text, ["protocol", "options"], where)
        detail = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
        raise UsageError(f"protocol.options: {detail} ({place})") from None
    return work


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


async def _until_signalled(run: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """``run()``, with SIGTERM and SIGHUP handled like Ctrl-C: the run stops the way it does
    on an interrupt (agents stopped, journal flushed, partial summary, temp folder removed)
    instead of the process dying on the spot."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for _ in signals:
                    raise KeyboardInterrupt

            nursery.start_soon(watch)
            summary = await run()
            nursery.cancel_scope.cancel()
    return summary


def execute(
    scenario: Scenario,
    work: Work,
    source: str,
    base_dir: Path,
    out: Path,
    *,
    quiet: bool,
    name: str = "",
    faults: FaultLayer | None = None,
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
        faults=faults,
    )
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # started as a background job of a script (SIGINT ignored from birth): Ctrl-C / kill
        # -INT must still stop the run cleanly rather than be lost
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with progress:
            summary = trio.run(_until_signalled, made.run)
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
