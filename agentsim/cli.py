"""Command line: ``agentsim run|validate|report|agent|models``; ``python -m agentsim X.toml`` runs X.

Exit codes: 0 success, 1 a run that could not complete, 2 bad input (one line, no traceback),
130 interrupted (Ctrl-C; the journal is flushed and a partial summary written).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
COMMANDS = ("run", "validate", "report", "agent", "models")


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agentsim",
        description="Run small-language-model agents as processes over a ZeroMQ bus, from a scenario file.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a scenario and write a run folder")
    run.add_argument("scenario", help="scenario .toml file")
    run.add_argument("--out", help="parent folder for the run folder (default: [run].out)")
    run.add_argument("--seed", type=int, help="override [run].seed")
    run.add_argument("--limit", type=int, help="override [tasks].limit")
    run.add_argument("--quiet", action="store_true", help="no progress display")

    val = sub.add_parser("validate", help="check a scenario file without running it")
    val.add_argument("scenario")

    rep = sub.add_parser("report", help="rebuild summary.json and report.md from a run's journal")
    rep.add_argument("run_dir")

    from agentsim.agent.process import build_parser

    build_parser(sub.add_parser("agent", help="run one agent process (started by the runner or by hand)"))

    models = sub.add_parser("models", help="manage models in the agentsim cache")
    models.add_argument("action", choices=("list", "pull", "path"))
    models.add_argument("name", nargs="?", default="smollm2-135m-instruct")
    return p


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in COMMANDS and not args_list[0].startswith("-"):
        args_list = ["run", *args_list]
    args = _parser().parse_args(args_list)
    try:
        match args.command:
            case "run":
                return cmd_run(args)
            case "validate":
                return cmd_validate(args)
            case "report":
                return cmd_report(args)
            case "agent":
                from agentsim.agent.process import main as agent_main

                return agent_main(args)
            case "models":
                return cmd_models(args)
    except UsageError as e:
        print(f"agentsim: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_BAD_INPUT


def _load(path: str) -> Any:
    from agentsim.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(path)
    except ScenarioError as e:
        raise UsageError(str(e)) from None


def cmd_validate(args: argparse.Namespace) -> int:
    scenario = _load(args.scenario)
    _tasks(scenario, Path(args.scenario).parent)
    print(f"{args.scenario}: ok ({len(scenario.agents)} agents, protocol {scenario.protocol.kind})")
    return EXIT_OK


def _tasks(scenario: Any, base_dir: Path) -> Any:
    from agentsim.tasks import TaskError, load_suite

    t = scenario.tasks
    try:
        return load_suite(t.suite, base_dir=base_dir, limit=t.limit, shuffle=t.shuffle,
                          seed=scenario.run.seed, offset=t.offset)
    except TaskError as e:
        raise UsageError(f"tasks.suite: {e}") from None


def cmd_run(args: argparse.Namespace) -> int:
    import msgspec
    import trio

    from agentsim.bus.zmq_transport import RouterTransport, default_endpoint
    from agentsim.launch import ProcessLauncher
    from agentsim.logs import configure_logging
    from agentsim.protocols import ProtocolLoadError, load_protocol_class
    from agentsim.report.progress import LiveProgress
    from agentsim.rundir import RunFolder
    from agentsim.runner import Runner, RunError

    scenario = _load(args.scenario)
    base_dir = Path(args.scenario).resolve().parent
    if args.seed is not None:
        scenario = msgspec.structs.replace(scenario, run=msgspec.structs.replace(scenario.run, seed=args.seed))
    if args.limit is not None:
        if args.limit < 0:
            raise UsageError(f"--limit must be >= 0, got {args.limit} (command line)")
        scenario = msgspec.structs.replace(scenario, tasks=msgspec.structs.replace(scenario.tasks, limit=args.limit))
    tasks, scorer = _tasks(scenario, base_dir)
    try:
        load_protocol_class(scenario.protocol.kind, base_dir)
    except ProtocolLoadError as e:
        raise UsageError(str(e)) from None
    from agentsim.bus.faults_seeded import FaultConfigError, build_fault_layer

    try:
        faults = build_fault_layer(scenario)
    except FaultConfigError as e:
        raise UsageError(str(e)) from None

    out = Path(args.out or scenario.run.out)
    folder = RunFolder.create(out, scenario.run.name, Path(args.scenario).read_text(encoding="utf-8"),
                              seed=scenario.run.seed, argv=sys.argv)
    (folder.path / "logs").mkdir(exist_ok=True)
    log_fh = open(folder.path / "logs" / "runner.log", "a", encoding="utf-8")  # noqa: SIM115
    configure_logging(json=True, stream=log_fh)
    endpoint, cleanup = default_endpoint(scenario.run.transport, scenario.run.bind)
    try:
        transport = RouterTransport(endpoint)
    except Exception as e:  # zmq raises ZMQError with errno text
        raise UsageError(f"run.bind cannot be bound, got {endpoint!r}: {e}") from None
    show = not args.quiet and sys.stderr.isatty()
    progress = LiveProgress(len(tasks), enabled=show)
    runner = Runner(scenario, folder, transport=transport, endpoint=transport.endpoint,
                    launcher=ProcessLauncher(folder.path / "logs"), base_dir=base_dir, tasks=tasks,
                    scorer=scorer, faults=faults, progress=progress, cleanup_dir=cleanup)
    code = EXIT_OK
    summary: dict[str, Any] = {}
    try:
        with progress:
            summary = trio.run(runner.run)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        print(f"agentsim: interrupted; partial results in {folder.path}", file=sys.stderr)
    except BaseException as exc:
        from agentsim.util import find_exception

        err = find_exception(exc, RunError)
        if err is None:
            if find_exception(exc, KeyboardInterrupt) is not None:
                print(f"agentsim: interrupted; partial results in {folder.path}", file=sys.stderr)
                return EXIT_INTERRUPTED
            raise
        print(f"agentsim: run failed: {err} ({folder.path})", file=sys.stderr)
        return EXIT_RUN_FAILED
    finally:
        log_fh.close()
    if summary:
        lo, hi = summary["accuracy_ci95"]
        print(
            f"{folder.path}: {summary['tasks_done']} tasks, accuracy {summary['accuracy']:.3f} "
            f"[{lo:.3f}, {hi:.3f}], completion {summary['completion_rate']:.3f}, "
            f"failures {summary['failures_total']}"
        )
    return code


def cmd_report(args: argparse.Namespace) -> int:
    from agentsim.rundir import write_reports

    path = Path(args.run_dir)
    if not (path / "journal.jsonl").is_file():
        raise UsageError(f"run_dir must hold a journal.jsonl, got {str(path)!r}")
    summary = write_reports(path)
    print(json.dumps({k: summary[k] for k in ("tasks_done", "accuracy", "partial", "failures_total")}))
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from agentsim.engines.base import EngineUnavailable

    try:
        from agentsim.engines.mlc import models
    except ImportError as e:
        raise UsageError(f"the mlc engine is not available: {e}") from None
    try:
        match args.action:
            case "list":
                for st in models.list_models():
                    print(st)
            case "pull":
                print(models.pull(args.name))
            case "path":
                print(models.model_path(args.name))
    except EngineUnavailable as e:
        raise UsageError(str(e)) from None
    return EXIT_OK
