"""Command line: ``agentsim run|validate|report|export|agent|models``; ``python -m agentsim X.toml`` runs X.

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
COMMANDS = (
    "run",
    "validate",
    "report",
    "export",
    "agent",
    "models",
    "compare",
    "replay",
    "explore",
    "keys",
)


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

    rep = sub.add_parser(
        "report", help="rebuild summary.json, report.md and report.html from a run's journal"
    )
    rep.add_argument("run_dir")
    rep.add_argument("--open", action="store_true", help="open report.html in the web browser")

    exp = sub.add_parser("export", help="write a run's transcripts or results for other tools")
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

    cmp_ = sub.add_parser(
        "compare", help="compare runs (or a sweep folder): table + quality-vs-cost plot"
    )
    cmp_.add_argument("run_dirs", nargs="+")
    cmp_.add_argument("--out", help="where to write comparison.md / .json / .png")

    rpl = sub.add_parser("replay", help="re-run a recorded run with its recorded completions")
    rpl.add_argument("run_dir")
    rpl.add_argument(
        "--faults", help="a TOML file whose [faults] table replaces the run's faults (fork)"
    )
    rpl.add_argument(
        "--out", help="parent folder for the new run folder (default: next to the old one)"
    )
    rpl.add_argument("--quiet", action="store_true")

    exp_ = sub.add_parser(
        "explore", help="search fault schedules that break a protocol's invariants"
    )
    exp_.add_argument("scenario")
    exp_.add_argument(
        "--budget", type=int, default=100, help="fault schedules to try (default 100)"
    )

    keys = sub.add_parser("keys", help="create CURVE key pairs for runs across hosts")
    keys.add_argument("names", nargs="+", help="one key pair per name (e.g. runner alice bob)")
    keys.add_argument(
        "--dir", default="keys", help="folder for NAME.key / NAME.key_secret (default keys/)"
    )

    from agentsim.agent.process import build_parser

    build_parser(
        sub.add_parser("agent", help="run one agent process (started by the runner or by hand)")
    )

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
            case "export":
                return cmd_export(args)
            case "agent":
                from agentsim.agent.process import main as agent_main

                return agent_main(args)
            case "models":
                return cmd_models(args)
            case "compare":
                return cmd_compare(args)
            case "replay":
                return cmd_replay(args)
            case "explore":
                return cmd_explore(args)
            case "keys":
                return cmd_keys(args)
    except UsageError as e:
        print(f"agentsim: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_BAD_INPUT


def _load(path: str) -> Any:
    from agentsim.scenario import ScenarioError
    from agentsim.scenario.validate import load_scenario

    try:
        return load_scenario(path)
    except ScenarioError as e:
        raise UsageError(str(e)) from None


def cmd_validate(args: argparse.Namespace) -> int:
    scenario = _load(args.scenario)
    from agentsim.scenario import ScenarioError
    from agentsim.scenario.sweep import expand

    base_dir = Path(args.scenario).resolve().parent
    try:
        configs = expand(Path(args.scenario).read_text(encoding="utf-8"), args.scenario, base_dir)
    except ScenarioError as e:
        raise UsageError(str(e)) from None
    for _, sc in configs:
        _work(sc, base_dir)
    if len(configs) > 1:
        print(f"{args.scenario}: sweep of {len(configs)} configurations")
    if scenario.environment:
        print(
            f"{args.scenario}: ok ({len(scenario.agents)} agents, environment {scenario.environment.get('kind')})"
        )
        return EXIT_OK
    print(f"{args.scenario}: ok ({len(scenario.agents)} agents, protocol {scenario.protocol.kind})")
    return EXIT_OK


def _work(scenario: Any, base_dir: Path) -> Any:
    from agentsim.protocols import ProtocolLoadError
    from agentsim.tasks import TaskError
    from agentsim.work import load_work

    try:
        tasks, scorer, protocol_cls = load_work(scenario, base_dir)
        protocol_cls(scenario)  # a protocol checks its own options when it is built
        return tasks, scorer, protocol_cls
    except TaskError as e:
        raise UsageError(f"tasks.suite: {e}") from None
    except ProtocolLoadError as e:
        raise UsageError(str(e)) from None
    except (ValueError, KeyError) as e:
        raise UsageError(f"protocol.options: {e} ({scenario.run.name})") from None


def _overrides(scenario: Any, args: argparse.Namespace) -> Any:
    import msgspec

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


def cmd_run(args: argparse.Namespace) -> int:
    import datetime as dt

    from agentsim.scenario import ScenarioError
    from agentsim.scenario.sweep import expand

    path = Path(args.scenario)
    _load(args.scenario)  # the whole file first: its errors name the file's own lines
    text = path.read_text(encoding="utf-8")
    base_dir = path.resolve().parent
    try:
        configs = expand(text, str(path), base_dir)
    except ScenarioError as e:
        raise UsageError(str(e)) from None
    configs = [(label, _overrides(sc, args)) for label, sc in configs]
    prepared = [(label, sc, _work(sc, base_dir)) for label, sc in configs]
    out = Path(args.out or configs[0][1].run.out)
    if len(prepared) == 1 and not prepared[0][0]:
        _, scenario, work = prepared[0]
        return _run_one(scenario, work, text, base_dir, out, quiet=args.quiet)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    parent = out / f"{path.stem}-sweep-{stamp}"
    parent.mkdir(parents=True, exist_ok=True)
    worst = EXIT_OK
    for label, scenario, work in prepared:
        print(f"== {label}", file=sys.stderr)
        code = _run_one(scenario, work, text, base_dir, parent, quiet=args.quiet)
        if code == EXIT_INTERRUPTED:
            return code
        worst = max(worst, code)
    from agentsim.report.compare import find_runs, write_comparison

    print(write_comparison(find_runs([parent]), parent))
    print(f"sweep: {parent}")
    return worst


def _run_one(
    scenario: Any, work: Any, text: str, base_dir: Path, out: Path, *, quiet: bool, name: str = ""
) -> int:
    import trio

    from agentsim.bus.faults_seeded import FaultConfigError, build_fault_layer
    from agentsim.bus.zmq_transport import RouterTransport, default_endpoint
    from agentsim.launch import ProcessLauncher
    from agentsim.logs import configure_logging
    from agentsim.report.progress import LiveProgress
    from agentsim.rundir import RunFolder
    from agentsim.runner import RunError, Runner

    tasks, scorer, protocol_cls = work
    try:
        faults = build_fault_layer(scenario)
    except FaultConfigError as e:
        raise UsageError(str(e)) from None
    folder = RunFolder.create(
        out,
        name or scenario.run.name,
        text,
        seed=scenario.run.seed,
        argv=sys.argv,
        scenario=scenario,
        base_dir=base_dir,
    )
    (folder.path / "logs").mkdir(exist_ok=True)
    log_fh = open(folder.path / "logs" / "runner.log", "a", encoding="utf-8")  # noqa: SIM115
    configure_logging(json=True, stream=log_fh)
    endpoint, cleanup = default_endpoint(scenario.run.transport, scenario.run.bind)
    curve = _curve(scenario, base_dir)
    try:
        transport = RouterTransport(endpoint, curve_secret=curve.server_secret if curve else None)
    except Exception as e:  # zmq raises ZMQError with errno text
        log_fh.close()
        raise UsageError(f"run.bind cannot be bound, got {endpoint!r}: {e}") from None
    show = not quiet and sys.stderr.isatty()
    progress = LiveProgress(len(tasks), enabled=show)
    runner = Runner(
        scenario,
        folder,
        transport=transport,
        endpoint=transport.endpoint,
        launcher=ProcessLauncher(folder.path / "logs"),
        base_dir=base_dir,
        tasks=tasks,
        scorer=scorer,
        faults=faults,
        progress=progress,
        cleanup_dir=cleanup,
        protocol_cls=protocol_cls,
        curve=curve,
    )
    summary: dict[str, Any] = {}
    try:
        with progress:
            summary = trio.run(runner.run)
    except KeyboardInterrupt:
        print(f"agentsim: interrupted; partial results in {folder.path}", file=sys.stderr)
        return EXIT_INTERRUPTED
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
    lo, hi = summary["accuracy_ci95"]
    print(
        f"{folder.path}: {summary['tasks_done']} tasks, accuracy {summary['accuracy']:.3f} "
        f"[{lo:.3f}, {hi:.3f}], completion {summary['completion_rate']:.3f}, "
        f"failures {summary['failures_total']}"
    )
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-run a recorded run with the recorded completions; report where results diverge."""
    import msgspec

    from agentsim.scenario import Scenario

    run = Path(args.run_dir)
    if not (run / "scenario.json").is_file() or not (run / "journal.jsonl").is_file():
        raise UsageError(
            f"run_dir must be a run folder with scenario.json and journal.jsonl, got {str(run)!r}"
        )
    env = json.loads((run / "env.json").read_text())
    base_dir = Path(env.get("scenario_dir") or run)
    scenario = msgspec.json.decode((run / "scenario.json").read_bytes(), type=Scenario)
    journal_path = str((run / "journal.jsonl").resolve())
    agents = {
        name: msgspec.structs.replace(
            spec, engine="replay", options={"journal": journal_path, "agent": name}, remote=False
        )
        for name, spec in scenario.agents.items()
    }
    scenario = msgspec.structs.replace(scenario, agents=agents)
    if args.faults:
        fpath = Path(args.faults)
        try:
            ftext = fpath.read_text(encoding="utf-8")
        except OSError as e:
            raise UsageError(f"--faults file cannot be read: {e}") from None
        import tomllib

        try:
            table = tomllib.loads(ftext)
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"--faults: TOML syntax error: {e} ({fpath})") from None
        faults = table.get("faults", table)
        scenario = msgspec.structs.replace(scenario, faults=faults)
        from agentsim.bus.faults_seeded import FaultConfigError, parse_faults

        try:
            parse_faults(faults, list(scenario.agents))
        except FaultConfigError as e:
            raise UsageError(f"{e} ({fpath})") from None
    work = _work(scenario, base_dir)
    out = Path(args.out) if args.out else run.parent
    before = _results(run)
    code = _run_one(
        scenario,
        work,
        (run / "scenario.toml").read_text(),
        base_dir,
        out,
        quiet=args.quiet,
        name=f"{scenario.run.name}-replay",
    )
    if code != EXIT_OK:
        return code
    newest = max(
        (d for d in out.iterdir() if d.name.startswith(f"{scenario.run.name}-replay")),
        key=lambda d: d.stat().st_mtime,
    )
    after = _results(newest)
    same = [t for t in before if t in after and before[t] == after[t]]
    print(f"replay: {len(same)}/{len(before)} task results identical to {run.name}")
    for t in before:
        if t not in same:
            b, a = before[t], after.get(t)
            print(f"  diverged {t}: {b} -> {a}")
    return EXIT_OK


def _results(run: Path) -> dict[str, tuple[str, bool, bool]]:
    out: dict[str, tuple[str, bool, bool]] = {}
    for line in (run / "results.jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out[r["task_id"]] = (r["answer"], r["correct"], r["completed"])
    return out


def cmd_explore(args: argparse.Namespace) -> int:
    """Exit 0 when no schedule broke an invariant, 1 with the shrunk counterexample printed."""
    from agentsim.explore import explore, to_toml

    scenario = _load(args.scenario)
    if args.budget < 1:
        raise UsageError(f"--budget must be >= 1, got {args.budget} (command line)")
    heavy = [a for a, s in scenario.agents.items() if s.engine not in ("scripted", "replay")]
    if heavy:
        raise UsageError(
            f"agents.{heavy[0]}.engine must be scripted or replay for explore (it runs hundreds of "
            f"simulated runs), got {scenario.agents[heavy[0]].engine!r} ({args.scenario})"
        )
    base_dir = Path(args.scenario).resolve().parent
    _work(scenario, base_dir)
    example, broken = explore(scenario, base_dir, budget=args.budget)
    if example is None:
        print(f"explore: no invariant broken in {args.budget} fault schedules")
        return EXIT_OK
    print("explore: invariant broken:")
    for v in broken:
        print(f"  - {v}")
    print("smallest fault schedule found (paste into the scenario):\n")
    print(to_toml(example))
    return EXIT_RUN_FAILED


def _curve(scenario: Any, base_dir: Path) -> Any:
    """The run's CURVE set-up when it has keys (or binds beyond loopback), else None."""
    import zmq

    from agentsim.bus.auth import CurveSetup, KeyFileError, ZapHandler, allowed_keys, load_secret

    run = scenario.run
    if not (run.server_key or run.allowed_keys):
        return None

    def here(p: str) -> Path:
        return Path(p) if Path(p).is_absolute() or Path(p).exists() else base_dir / p

    try:
        public, secret = (
            load_secret(here(run.server_key)) if run.server_key else zmq.curve_keypair()
        )
        allowed = allowed_keys(here(p) for p in run.allowed_keys)
    except KeyFileError as e:
        raise UsageError(f"run.server_key / run.allowed_keys: {e}") from None
    zap = ZapHandler(zmq.Context.instance(), allowed, on_refused=lambda address, reason: None)
    return CurveSetup(public, secret, zap)


def cmd_keys(args: argparse.Namespace) -> int:
    from agentsim.bus.auth import create_keys

    for name in args.names:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise UsageError(f"keys: name must be letters, digits, - and _, got {name!r}")
        public, secret = create_keys(Path(args.dir), name)
        print(f"{name}: public {public}  secret {secret} (keep it private)")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from agentsim.report.compare import find_runs, write_comparison

    paths = [Path(p) for p in args.run_dirs]
    for p in paths:
        if not p.is_dir():
            raise UsageError(f"run_dirs must be run folders, got {str(p)!r} (not a folder)")
    runs = find_runs(paths)
    if not runs:
        raise UsageError(f"run_dirs hold no run folder with a journal.jsonl, got {args.run_dirs!r}")
    for r in runs:
        if not (r / "summary.json").is_file():
            from agentsim.rundir import write_reports

            write_reports(r)
    out = Path(args.out) if args.out else (paths[0] if len(paths) == 1 else Path("."))
    print(write_comparison(runs, out))
    print(f"wrote {out / 'comparison.md'} and {out / 'quality_vs_cost.png'}")
    return EXIT_OK


def _run_dir(arg: str) -> Path:
    path = Path(arg)
    if not (path / "journal.jsonl").is_file():
        raise UsageError(f"run_dir must hold a journal.jsonl, got {str(path)!r}")
    return path


def cmd_report(args: argparse.Namespace) -> int:
    from agentsim.rundir import write_reports

    path = _run_dir(args.run_dir)
    summary = write_reports(path)
    print(
        json.dumps({k: summary[k] for k in ("tasks_done", "accuracy", "partial", "failures_total")})
    )
    if args.open:
        import webbrowser

        html = (path / "report.html").resolve()
        if not webbrowser.open(html.as_uri()):
            print(f"agentsim: no web browser found; open {html}", file=sys.stderr)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from agentsim.journal import read_journal
    from agentsim.report.export import DEFAULT_NAMES, ExportError, export

    path = _run_dir(args.run_dir)
    dest = Path(args.out) if args.out else path / DEFAULT_NAMES[args.format]
    if not dest.parent.is_dir():
        raise UsageError(f"--out must be in an existing folder, got {str(dest)!r}")
    try:
        n = export(list(read_journal(path / "journal.jsonl")), args.format, dest)
    except ExportError as e:
        raise UsageError(str(e)) from None
    print(f"{dest}: {n} {'conversations' if args.format == 'openai' else 'rows'}")
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
                    state = (
                        f"present, {st.size_bytes / 2**20:.0f} MiB" if st.present else "not pulled"
                    )
                    print(f"{st.name}  ({state})  {st.description}")
                    if st.present:
                        print(f"    {st.path}")
            case "pull":
                print(models.pull(args.name))
            case "path":
                print(models.model_path(args.name))
    except EngineUnavailable as e:
        raise UsageError(str(e)) from None
    return EXIT_OK
