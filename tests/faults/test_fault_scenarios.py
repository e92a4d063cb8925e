"""The shipped fault scenarios (scenarios/faults-*.toml) run with real agent processes: each
injects its fault kind, and a failure of the expected kind cites an injected fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentsim.scenario.validate import load_scenario
from agentsim.testing import journal, only_run_dir, pid_alive, run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
EXPECTED = {
    "drop": "message_lost",
    "delay": "message_timeout",
    "duplicate": "duplicate_delivery",
    "reorder": "message_timeout",
    "partition": "message_lost",
    "kill": "agent_crash",
    "pause": "message_timeout",
    "slow": "message_timeout",
}


def test_every_fault_kind_has_a_shipped_scenario() -> None:
    shipped = {f.stem.removeprefix("faults-") for f in SCENARIOS.glob("faults-*.toml")}
    assert shipped == {*EXPECTED, "model"}
    for kind in EXPECTED:
        scenario = load_scenario(SCENARIOS / f"faults-{kind}.toml")
        assert kind in scenario.faults
        assert {a.engine for a in scenario.agents.values()} == {"scripted"}


def check_run(run: Path, kind: str, expected: str) -> None:
    results = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines() if x]
    recs = journal(run)
    planned = next(r["count"] for r in recs if r["event"] == "tasks_loaded")
    assert len(results) == planned
    injected = {r["fault_id"] for r in recs if r["event"] == "fault" and r["kind"] == kind}
    assert injected, f"no {kind} fault was injected"
    failures = [r for r in recs if r["event"] == "failure" and r["kind"] == expected]
    assert any(set(r.get("evidence", [])) & injected for r in failures), (
        f"no {expected} failure cites a {kind} fault"
    )
    pids = [r["pid"] for r in recs if r["event"] == "agent_spawned"]
    assert pids and not any(pid_alive(p) for p in pids)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(EXPECTED))
def test_fault_scenario_records_its_fault_and_the_failure_it_caused(
    tmp_path: Path, kind: str
) -> None:
    p = run_scenario(SCENARIOS / f"faults-{kind}.toml", tmp_path, timeout=180)
    assert p.returncode == 0, p.stderr
    check_run(only_run_dir(tmp_path), kind, EXPECTED[kind])


@pytest.mark.model
@pytest.mark.slow
def test_fault_scenario_on_the_default_model(tmp_path: Path) -> None:
    p = run_scenario(SCENARIOS / "faults-model.toml", tmp_path, "--limit", "2", timeout=1800)
    assert p.returncode == 0, p.stderr
    run = only_run_dir(tmp_path)
    recs = journal(run)
    assert {r["engine"] for r in recs if r["event"] == "agent_ready"} == {"mlc"}
    injected = {r["fault_id"] for r in recs if r["event"] == "fault"}
    assert injected
    cited = {e for r in recs if r["event"] == "failure" for e in r.get("evidence", [])}
    drops = {r["fault_id"] for r in recs if r["event"] == "fault" and r["kind"] == "drop"}
    assert drops <= cited
