"""``assemble()``: the one place a run is built — for the CLI, simulation, replay and sweeps.

It makes the run folder, the bus (ZeroMQ ROUTER, or the in-memory hub for a simulation),
the launcher (agent processes, or in-process agents), the fault layer and the runner, and
returns them as an ``AssembledRun``; the caller runs it (``trio.run(made.run)`` or
``await made.run()``) and then knows exactly which folder it made.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import msgspec
import zmq

from agentsim.bus.auth import CurveSetup, KeyFileError, ZapHandler, allowed_keys, load_secret
from agentsim.bus.broker import Transport
from agentsim.bus.faults import FaultLayer
from agentsim.bus.faults_seeded import build_fault_layer
from agentsim.bus.faults_spec import FaultConfigError
from agentsim.bus.memory import MemoryHub
from agentsim.bus.zmq_transport import RouterTransport, default_endpoint
from agentsim.engines import Engine, EngineConfig, make_engine
from agentsim.logs import configure_logging
from agentsim.run.config import engine_config
from agentsim.run.errors import RunSetupError
from agentsim.run.folder import Reporter, RunFolder
from agentsim.run.launchers import forkserver
from agentsim.run.launchers.base import Launcher
from agentsim.run.launchers.inprocess import InProcessLauncher
from agentsim.run.launchers.local import ProcessLauncher
from agentsim.run.launchers.ray import launcher as ray_launcher
from agentsim.run.runner import ProgressHook, Runner
from agentsim.run.work import Work, load_work
from agentsim.scenario.schema import Scenario


class AssembledRun:
    """What ``assemble`` made: the run folder, the runner, the work; the summary once run."""

    def __init__(
        self, folder: RunFolder, runner: Runner, work: Work, log: IO[str] | None = None
    ) -> None:
        self.folder = folder
        self.runner = runner
        self.work = work
        self.summary: dict[str, Any] = {}
        self._log = log

    @property
    def path(self) -> Path:
        return self.folder.path

    async def run(self) -> dict[str, Any]:
        """Run it to the end; returns the summary (``{}`` without a reporter)."""
        self.summary = await self.runner.run()
        return self.summary

    def close(self) -> None:
        """Close the runner's log file (processes mode); safe to call twice."""
        if self._log is not None:
            self._log.close()
            self._log = None


def assemble(
    scenario: Scenario,
    out: Path,
    *,
    base_dir: Path,
    source: str | None = None,
    work: Work | None = None,
    name: str = "",
    argv: Sequence[str] = (),
    simulated: bool = False,
    engine_factory: Callable[[EngineConfig], Engine] = make_engine,
    faults: FaultLayer | None = None,
    progress: ProgressHook | None = None,
    reporter: Reporter | None = None,
) -> AssembledRun:
    """Build one run of ``scenario`` in a new folder under ``out``.

    Args:
        scenario: the effective scenario (one sweep configuration, overrides applied).
        out: parent folder of the run folder.
        base_dir: where the scenario's relative paths point (its file's folder).
        source: the scenario text to keep as ``scenario.toml`` (default: ``scenario`` as JSON).
        work: tasks, scorer and protocol (loaded from the scenario when omitted).
        name: run folder name prefix (default ``run.name``).
        argv: the command line, recorded in ``env.json``.
        simulated: in-process agents over the in-memory bus (no processes, no sockets; works
            under ``trio.testing.MockClock``) instead of agent processes over ZeroMQ.
        engine_factory: builds each in-process agent's engine (simulation only).
        faults: a fault layer to use instead of the scenario's ``[faults]``.
        progress: called after each task (the CLI's progress bar).
        reporter: builds the reports at the end (``agentsim.report.writer.write_reports``).

    Raises:
        RunSetupError: the fault table, the CURVE keys or the bind endpoint are unusable.
        TaskError, ProtocolLoadError: ``work`` was omitted and cannot be loaded.
    """
    work = work if work is not None else load_work(scenario, base_dir)
    if faults is None:
        try:
            faults = build_fault_layer(scenario)
        except FaultConfigError as e:
            raise RunSetupError(str(e)) from None
    folder = RunFolder.create(
        out,
        name or scenario.run.name,
        source if source is not None else msgspec.json.encode(scenario).decode(),
        seed=scenario.run.seed,
        argv=list(argv),
        scenario=scenario,
        base_dir=base_dir,
    )
    log: IO[str] | None = None
    transport: Transport
    launcher: Launcher
    cleanup: str | None = None
    curve: CurveSetup | None = None
    if simulated:
        transport = hub = MemoryHub()
        endpoint = "memory://"
        launcher = InProcessLauncher(hub, engine_factory)
    else:
        (folder.path / "logs").mkdir(exist_ok=True)
        log = open(folder.path / "logs" / "runner.log", "a", encoding="utf-8")  # noqa: SIM115 - closed by AssembledRun.close
        configure_logging(json=True, stream=log)
        started: Launcher | None = None
        try:
            started, bind = _launcher(scenario, folder)
            transport, endpoint, cleanup, curve = _bus(scenario, base_dir, bind)
            if isinstance(started, ray_launcher.RayLauncher):
                endpoint = started.reachable(endpoint)
        except BaseException:
            if started is not None:
                started.close()
            log.close()
            raise
        launcher = started
    runner = Runner(
        scenario,
        folder,
        transport=transport,
        endpoint=endpoint,
        launcher=launcher,
        work=work,
        faults=faults,
        progress=progress,
        reporter=reporter,
        cleanup_dir=cleanup,
        curve=curve,
    )
    return AssembledRun(folder, runner, work, log)


def local_launcher(scenario: Scenario, log_dir: Path) -> Launcher:
    """``run.launcher``: the forkserver (warmed with each distinct engine the local agents
    use) where the host supports it, else one ``python -m agentsim agent`` per agent."""
    if scenario.run.launcher == "forkserver" and forkserver.available():
        warm: list[dict[str, object]] = []
        for name, spec in scenario.agents.items():
            if spec.remote:
                continue
            cfg = msgspec.to_builtins(engine_config(scenario, name))
            cfg.pop("seed", None)
            if cfg not in warm:
                warm.append(cfg)
        return forkserver.ForkServerLauncher(log_dir, warm=warm)
    return ProcessLauncher(log_dir)


def _launcher(scenario: Scenario, folder: RunFolder) -> tuple[Launcher, str]:
    """The run's launcher (``run.launcher``) and the bind it implies (``""``: the default)."""
    logs = folder.path / "logs"
    if scenario.run.launcher == "ray":
        used = (
            list(scenario.protocol.agents)
            if not scenario.environment and scenario.protocol.agents
            else list(scenario.agents)
        )  # the agents the runner starts (as Runner decides)
        on_ray = ray_launcher.RayLauncher(scenario, logs, used)
        on_ray.connect()
        return on_ray, scenario.run.bind or ray_launcher.default_bind(on_ray)
    return local_launcher(scenario, logs), scenario.run.bind


def _bus(
    scenario: Scenario, base_dir: Path, bind: str
) -> tuple[Transport, str, str | None, CurveSetup | None]:
    endpoint, cleanup = default_endpoint(scenario.run.transport, bind)
    try:
        curve = curve_setup(scenario, base_dir)
        transport = RouterTransport(endpoint, curve_secret=curve.server_secret if curve else None)
    except Exception as e:  # zmq raises ZMQError with errno text
        if cleanup:  # no runner will remove the socket folder: do it now
            shutil.rmtree(cleanup, ignore_errors=True)
        if isinstance(e, RunSetupError):
            raise
        raise RunSetupError(f"run.bind cannot be bound, got {endpoint!r}: {e}") from None
    return transport, transport.endpoint, cleanup, curve


def curve_setup(scenario: Scenario, base_dir: Path) -> CurveSetup | None:
    """The run's CURVE set-up when it has keys (``run.server_key`` / ``allowed_keys``) or
    places agents on Ray (always CURVE: a server key pair made for the run, one agent key
    pair per agent name, made when it starts)."""
    run = scenario.run
    if not (run.server_key or run.allowed_keys or run.launcher == "ray"):
        return None

    def here(p: str) -> Path:
        return Path(p) if Path(p).is_absolute() or Path(p).exists() else base_dir / p

    try:
        public, secret = (
            load_secret(here(run.server_key)) if run.server_key else zmq.curve_keypair()
        )
        allowed = allowed_keys(here(p) for p in run.allowed_keys)
    except KeyFileError as e:
        raise RunSetupError(f"run.server_key / run.allowed_keys: {e}") from None
    zap = ZapHandler(zmq.Context.instance(), allowed, on_refused=lambda address, reason: None)
    return CurveSetup(public, secret, zap)
