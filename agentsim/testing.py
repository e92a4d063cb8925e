"""Test doubles and helpers shipped with the package, the ones agentsim's own tests use.

Like ``trio.testing``, this is a leaf: product code (explore, simulate, replay, the CLI)
never imports it — what product code needs lives in ``agentsim.run``. Here:

- ``simulate``: a whole scenario in one process (``agentsim.run.simulate``) with the reports
  written, returning the summary and the runner — works under ``trio.testing.MockClock``;
- ``MemoryHub`` (the in-memory bus) and ``ScriptedEngine`` (the programmable engine);
- helpers for end-to-end tests with real processes: ``run_scenario``, ``start_run``,
  ``journal``, ``only_run_dir``, ``pid_alive``, ``wait_for``.
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

from agentsim.bus.faults import FaultLayer
from agentsim.bus.memory import MemoryHub
from agentsim.engines import Engine, EngineConfig, make_engine
from agentsim.engines.scripted import ScriptedEngine
from agentsim.report.writer import write_reports
from agentsim.run import simulate as _sim
from agentsim.run.runner import Runner
from agentsim.scenario import Scenario
from agentsim.scenario.validate import parse_scenario
from agentsim.tasks.base import Scorer, Task

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
    """Decode and check scenario TOML text, as ``agentsim validate`` would."""
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
    """Run ``scenario`` in-process with its reports; returns the summary and the runner."""
    made = await _sim.simulate(
        scenario,
        out,
        tasks=tasks,
        scorer=scorer,
        faults=faults,
        engine_factory=engine_factory,
        base_dir=base_dir,
        reporter=write_reports,
    )
    return made.summary, made.runner


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
