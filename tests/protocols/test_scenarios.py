"""The shipped protocol scenarios: a user's own protocol runs; the sweep files validate."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentsim.protocols import load_protocol_class
from agentsim.scenario.sweep import expand
from agentsim.testing import journal, only_run_dir

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_custom_protocol_scenario_runs_with_real_agent_processes(tmp_path: Path) -> None:
    # Run from elsewhere: the protocol file is found relative to the scenario file.
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentsim",
            str(SCENARIOS / "custom-protocol.toml"),
            "--out",
            "runs",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    run = only_run_dir(tmp_path / "runs")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["tasks_done"] == 5 and summary["accuracy"] == 1.0
    assert summary["failures"] == {"no_final_answer": 5}  # the mumbler, once per task
    phases = [
        (r["phase"], r.get("agent"))
        for r in journal(run)
        if r["event"] == "phase" and r["task_id"] == "gsm8k-0"
    ]
    assert phases == [("ask", "mumbler"), ("ask", "solver"), ("done", None)]


def test_custom_protocol_runs_on_the_simulated_bus(sim: Callable[..., Any]) -> None:
    toml = (SCENARIOS / "custom-protocol.toml").read_text()
    run = sim(toml, base_dir=SCENARIOS)
    assert run.summary["accuracy"] == 1.0
    assert run.phases("first_answer", "gsm8k-4") == ["ask", "ask", "done"]
    assert [r["by"] for r in run.results] == ["solver"] * 5


@pytest.mark.parametrize("name", ["paradigms", "debate-vs-vote", "custom-protocol"])
def test_scenario_file_validates(name: str) -> None:
    path = SCENARIOS / f"{name}.toml"
    p = subprocess.run(
        [sys.executable, "-m", "agentsim", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert f"{path}: ok" in p.stdout


def configs(name: str) -> dict[str, Any]:
    path = SCENARIOS / f"{name}.toml"
    out = {}
    for label, scenario in expand(path.read_text(), str(path), SCENARIOS):
        # every config's protocol can be built from its scenario (role and option checks)
        load_protocol_class(scenario.protocol.kind, SCENARIOS)(scenario)
        out[label] = scenario
    return out


def test_paradigms_compares_base_tools_and_routing_on_the_same_slice() -> None:
    found = configs("paradigms")
    assert {k: s.protocol.kind for k, s in found.items()} == {
        "base": "solo",
        "single-agent-tools": "react",
        "routing-mas": "router",
    }
    for s in found.values():
        assert (s.tasks.suite, s.tasks.limit) == ("gsm8k", 20)
        assert {(a.engine, a.model) for a in s.agents.values()} == {
            ("mlc", "smollm2-135m-instruct")
        }
    routing = found["routing-mas"]
    tools = {a: routing.agents[a].tools for a in routing.protocol.agents}
    assert tools == {
        "supervisor": [],
        "math": ["calculator"],
        "code": ["python"],
        "search": ["search"],
    }
    assert found["single-agent-tools"].agents["tooluser"].tools == ["calculator"]
    assert found["base"].agents[found["base"].protocol.agents[0]].tools == []


def test_debate_vs_vote_sweeps_protocols_over_seeds() -> None:
    found = configs("debate-vs-vote")
    kinds = sorted((s.protocol.kind, s.run.seed) for s in found.values())
    assert kinds == [(k, seed) for k in ("debate", "solo", "vote") for seed in (1, 2)]
    raw = tomllib.loads((SCENARIOS / "debate-vs-vote.toml").read_text())
    assert all(a.get("engine") == "mlc" for a in raw["agents"].values())
