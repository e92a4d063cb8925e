"""Live detectors for stalls: deadlock (everyone waiting, nothing in flight) and livelock
(repeated identical exchanges)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio
import trio.testing

from agentsim.testing import journal, only_run_dir, run_scenario, scenario_from_toml, simulate


def sim(tmp_path: Path, toml: str) -> list[dict[str, Any]]:
    holder: dict[str, Any] = {}

    async def main() -> None:
        _, runner = await simulate(scenario_from_toml(toml), tmp_path)
        holder["path"] = runner.folder.path

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return journal(holder["path"])


def test_agent_answering_the_same_nudge_the_same_way_is_a_livelock(tmp_path: Path) -> None:
    toml = (
        '[tasks]\nsuite = "gsm8k"\nlimit = 2\n[agents.solver]\nengine = "scripted"\ntools = ["calculator"]\n'
        'options = { reply = "I am still thinking." }\n[protocol]\nkind = "react"\nmax_steps = 5\n'
    )
    recs = sim(tmp_path, toml)
    live = [r for r in recs if r["event"] == "failure" and r["kind"] == "livelock"]
    assert [r["task_id"] for r in live] == ["gsm8k-0", "gsm8k-1"]  # once per task
    assert len(live[0]["evidence"]) == 3


def test_a_debate_that_agrees_is_not_a_livelock(tmp_path: Path) -> None:
    agents = "".join(
        f'[agents.{n}]\nengine = "scripted"\noptions = {{ table = "gsm8k" }}\n' for n in "abc"
    )
    recs = sim(
        tmp_path,
        '[tasks]\nsuite = "gsm8k"\nlimit = 2\n'
        + agents
        + '[protocol]\nkind = "debate"\nrounds = 3\n',
    )
    assert not [
        r for r in recs if r["event"] == "failure" and r["kind"] in ("livelock", "deadlock")
    ]


def test_dropped_ask_is_seen_as_a_deadlock_before_its_deadline(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(
        '[run]\nname = "dl"\nheartbeat_s = 0.1\n[tasks]\nsuite = "gsm8k"\nlimit = 1\n'
        '[agents.b]\nengine = "scripted"\noptions = { table = "gsm8k" }\n'
        '[protocol]\nkind = "solo"\ndeadline_s = 3\n'
        '[faults]\ndrop = { p = 1.0, links = ["runner->b"], kinds = ["ask"] }\n'
    )
    p = run_scenario(f, tmp_path / "runs")
    assert p.returncode == 0, p.stderr
    recs = journal(only_run_dir(tmp_path / "runs"))
    fails = {r["kind"]: r for r in recs if r["event"] == "failure"}
    assert "deadlock" in fails and "message_timeout" in fails
    assert fails["deadlock"]["at"] < fails["message_timeout"]["at"]
    assert fails["deadlock"]["agents"] == ["b"]
    fault = next(r for r in recs if r["event"] == "fault")
    assert fault["fault_id"] in fails["deadlock"]["evidence"]  # traced to the dropped ask
    summary = json.loads((only_run_dir(tmp_path / "runs") / "summary.json").read_text())
    assert summary["failures"]["deadlock"] == 1


def test_slow_agent_is_not_a_deadlock(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(
        '[run]\nname = "slow"\nheartbeat_s = 0.1\n[tasks]\nsuite = "gsm8k"\nlimit = 1\n'
        '[agents.b]\nengine = "scripted"\noptions = { table = "gsm8k", latency_s = 1.0 }\n'
        '[protocol]\nkind = "solo"\ndeadline_s = 5\n'
    )
    p = run_scenario(f, tmp_path / "runs")
    assert p.returncode == 0, p.stderr
    recs = journal(only_run_dir(tmp_path / "runs"))
    assert not [r for r in recs if r["event"] == "failure"]
