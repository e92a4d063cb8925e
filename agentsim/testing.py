"""Test doubles shipped with the package: the in-memory bus, in-process agents, helpers.

``simulate`` runs a whole scenario in one process — broker, journal, fault layer, protocol
and detectors exactly as in a real run, but agents are trio tasks over a ``MemoryHub`` — so
it works under ``trio.testing.MockClock`` (virtual time, no sockets, no processes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from agentsim.bus.faults import FaultLayer
from agentsim.bus.faults_seeded import build_fault_layer
from agentsim.bus.memory import MemoryHub
from agentsim.engines import Engine, EngineConfig, make_engine
from agentsim.engines.scripted import ScriptedEngine
from agentsim.launch import InProcessLauncher
from agentsim.rundir import RunFolder
from agentsim.runner import Runner
from agentsim.scenario import Scenario
from agentsim.scenario.validate import parse_scenario
from agentsim.tasks.base import Scorer, Task
from agentsim.work import load_work

__all__ = [
    "MemoryHub",
    "ScriptedEngine",
    "journal",
    "only_run_dir",
    "pid_alive",
    "run_scenario",
    "scenario_from_toml",
    "simulate",
    "start_run",
    "wait_for",
]


def scenario_from_toml(
    text: str, where: str = "test.toml", base_dir: Path | None = None
) -> Scenario:
    return parse_scenario(text, where, base_dir=base_dir)


async def simulate(
    scenario: Scenario,
    out: Path,
    *,
    tasks: list[Task] | None = None,
    scorer: Scorer | None = None,
    faults: FaultLayer | None = None,
    engine_factory: Callable[[EngineConfig], Engine] = make_engine,
    base_dir: Path | None = None,
) -> tuple[dict[str, Any], Runner]:
    """Run ``scenario`` in-process; returns the summary and the runner (for its journal)."""
    base = base_dir or Path.cwd()
    loaded, loaded_scorer, protocol_cls = load_work(scenario, base)
    tasks = tasks if tasks is not None else loaded
    scorer = scorer or loaded_scorer
    folder = RunFolder.create(
        out,
        scenario.run.name,
        msgspec.json.encode(scenario).decode(),
        seed=scenario.run.seed,
        argv=["simulate"],
    )
    hub = MemoryHub()
    runner = Runner(
        scenario,
        folder,
        transport=hub,
        endpoint="memory://",
        launcher=InProcessLauncher(hub, engine_factory),
        base_dir=base,
        tasks=tasks,
        scorer=scorer,
        faults=faults if faults is not None else build_fault_layer(scenario),
        protocol_cls=protocol_cls,
    )
    summary = await runner.run()
    return summary, runner


def journal(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run's journal so far ([] before it exists)."""
    if not (run_dir / "journal.jsonl").exists():
        return []
    out = []
    for line in (run_dir / "journal.jsonl").read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def only_run_dir(out: Path) -> Path:
    dirs = [d for d in out.iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def run_scenario(
    scenario: Path, out: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m agentsim SCENARIO --out OUT --quiet ARGS`` with real processes, to completion."""
    return subprocess.run(
        [sys.executable, "-m", "agentsim", str(scenario), "--out", str(out), "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_run(
    scenario: Path, out: Path, *, wait_s: float = 30
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a run in the background; returns the runner process and its run folder once made."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentsim", str(scenario), "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if not wait_for(lambda: out.exists() and any(out.iterdir()), wait_s):
        proc.kill()
        proc.wait()
        raise AssertionError(f"no run folder appeared in {out} within {wait_s}s")
    return proc, only_run_dir(out)
