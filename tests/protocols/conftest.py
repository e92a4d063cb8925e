"""Fixtures for protocol tests: run a scenario on the simulated bus or as real processes."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from agentsim.testing import journal, only_run_dir, scenario_from_toml, simulate

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    """What a finished run left: summary, journal records and per-task results."""

    summary: dict[str, Any]
    recs: list[dict[str, Any]]
    results: list[dict[str, Any]]

    def phases(self, protocol: str, task_id: str = "gsm8k-0") -> list[str]:
        return [
            r["phase"]
            for r in self.recs
            if r["event"] == "phase" and r["task_id"] == task_id and r["protocol"] == protocol
        ]

    def failures(self, kind: str, task_id: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.recs
            if r["event"] == "failure"
            and r["kind"] == kind
            and (task_id is None or r.get("task_id") == task_id)
        ]

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.recs:
            if r["event"] == "failure":
                out[r["kind"]] = out.get(r["kind"], 0) + 1
        return out

    def asks(self, agent: str, task_id: str = "gsm8k-0") -> list[dict[str, Any]]:
        return [
            r
            for r in self.recs
            if r["event"] == "envelope"
            and r["kind"] == "ask"
            and r["dst"] == agent
            and r["task_id"] == task_id
        ]


def _results(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "results.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture
def sim(tmp_path: Path) -> Callable[..., Run]:
    """``sim(toml, base_dir=None)``: run a scenario in-process under trio's MockClock."""
    counter = itertools.count()

    def run(toml: str, base_dir: Path | None = None) -> Run:
        scenario = scenario_from_toml(toml, base_dir=base_dir)
        out = tmp_path / f"sim{next(counter)}"
        got: dict[str, Any] = {}

        async def main() -> None:
            got["summary"], got["runner"] = await simulate(scenario, out, base_dir=base_dir)

        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
        run_dir = got["runner"].folder.path
        return Run(summary=got["summary"], recs=journal(run_dir), results=_results(run_dir))

    return run


@pytest.fixture
def cli(tmp_path: Path) -> Callable[[str], Run]:
    """``cli(toml)``: write the scenario and run it with real agent processes via the CLI."""
    counter = itertools.count()

    def run(toml: str) -> Run:
        n = next(counter)
        scenario = tmp_path / f"scenario{n}.toml"
        scenario.write_text(toml)
        out = tmp_path / f"runs{n}"
        p = subprocess.run(
            [sys.executable, "-m", "agentsim", str(scenario), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert p.returncode == 0, p.stderr
        run_dir = only_run_dir(out)
        summary = json.loads((run_dir / "summary.json").read_text())
        return Run(summary=summary, recs=journal(run_dir), results=_results(run_dir))

    return run
