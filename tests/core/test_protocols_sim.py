"""Protocols on the in-process bus under trio's MockClock: phases, answers, failure records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
import trio.testing

from agentsim.run.runner import Runner
from agentsim.testing import journal, scenario_from_toml, simulate


def run_sim(tmp_path: Path, toml: str) -> tuple[dict[str, Any], Runner, list[dict[str, Any]]]:
    scenario = scenario_from_toml(toml)
    out: dict[str, Any] = {}

    async def main() -> None:
        out["summary"], out["runner"] = await simulate(scenario, tmp_path)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    runner: Runner = out["runner"]
    return out["summary"], runner, journal(runner.folder.path)


def agents(spec: dict[str, str]) -> str:
    return "".join(
        f'[agents.{n}]\nengine = "scripted"\noptions = {{ {o} }}\n' for n, o in spec.items()
    )


def phases(recs: list[dict[str, Any]], task_id: str) -> list[str]:
    return [r["phase"] for r in recs if r["event"] == "phase" and r["task_id"] == task_id]


def test_solo_answers_every_task_from_the_table(tmp_path: Path) -> None:
    toml = (
        '[tasks]\nsuite = "gsm8k"\nlimit = 5\n'
        + agents({"a": 'table = "gsm8k"'})
        + '[protocol]\nkind = "solo"\n'
    )
    summary, _, recs = run_sim(tmp_path, toml)
    assert summary["accuracy"] == 1.0 and summary["tasks_done"] == 5
    assert phases(recs, "gsm8k-0") == ["ask", "done"]


def test_vote_majority_wins_and_split_votes_are_no_consensus(tmp_path: Path) -> None:
    toml = (
        '[tasks]\nsuite = "gsm8k"\nlimit = 4\n'
        + agents({"a": 'table = "gsm8k"', "b": 'table = "gsm8k"', "c": 'reply = "The answer is 7"'})
        + '[protocol]\nkind = "vote"\n'
    )
    summary, _, recs = run_sim(tmp_path, toml)
    assert summary["accuracy"] == 1.0
    assert "no_consensus" not in summary["failures"]
    assert phases(recs, "gsm8k-1") == ["ask", "tally", "done"]
    toml2 = (
        '[tasks]\nsuite = "gsm8k"\nlimit = 3\n'
        + agents(
            {
                "a": 'table = "gsm8k"',
                "b": 'reply = "The answer is 7"',
                "c": 'reply = "The answer is 8"',
            }
        )
        + '[protocol]\nkind = "vote"\n'
    )
    summary2, _, _ = run_sim(tmp_path / "2", toml2)
    assert summary2["failures"]["no_consensus"] == 3
    assert summary2["accuracy"] == 1.0  # ties go to the first agent, which is right


def test_debater_that_flips_to_a_wrong_peer_answer_is_a_conformity_flip(tmp_path: Path) -> None:
    toml = (
        '[tasks]\nsuite = "gsm8k"\nlimit = 3\n'
        + agents(
            {
                "right": 'table = "gsm8k", conformity = 1.0',
                "wrong1": 'reply = "The answer is 7"',
                "wrong2": 'reply = "The answer is 7"',
            }
        )
        + '[protocol]\nkind = "debate"\nrounds = 2\n'
    )
    summary, _, recs = run_sim(tmp_path, toml)
    flips = [r for r in recs if r["event"] == "failure" and r["kind"] == "conformity_flip"]
    assert len(flips) == 3
    assert flips[0]["agents"][0] == "right" and flips[0]["round"] == 1
    assert len(flips[0]["evidence"]) == 3  # the reply and the two peer messages it saw
    assert summary["accuracy"] == 0.0
    assert phases(recs, "gsm8k-0") == ["propose", "debate", "tally", "done"]


def test_debate_sends_real_peer_messages_and_agents_see_them(tmp_path: Path) -> None:
    toml = (
        '[tasks]\nsuite = "gsm8k"\nlimit = 1\n'
        + agents({"a": 'table = "gsm8k"', "b": 'table = "gsm8k"', "c": 'table = "gsm8k"'})
        + '[protocol]\nkind = "debate"\nrounds = 3\n'
    )
    _, _, recs = run_sim(tmp_path, toml)
    peers = [r for r in recs if r["event"] == "envelope" and r["kind"] == "peer"]
    assert len(peers) == 3 * 2 * 2  # rounds 0 and 1 share; the last round does not
    replies = [
        r for r in recs if r["event"] == "envelope" and r["kind"] == "reply" and r["round"] >= 1
    ]
    assert all(len(r["body"]["peers_seen"]) == 2 for r in replies)


def test_react_runs_tools_in_the_agent_and_feeds_observations_back(tmp_path: Path) -> None:
    script = (
        '\'{"tool": "calculator", "arguments": {"expression": "16-3-4"}}\', '
        '\'{"tool": "calculator", "arguments": {"expression": "9*2"}}\', '
        '\'{"final_answer": "{gold}"}\''
    )
    toml = (
        '[tasks]\nsuite = "gsm8k"\nlimit = 1\n[agents.solver]\nengine = "scripted"\ntools = ["calculator"]\n'
        f'options = {{ table = "gsm8k", script = [{script}] }}\n[protocol]\nkind = "react"\n'
    )
    summary, _, recs = run_sim(tmp_path, toml)
    assert summary["accuracy"] == 1.0 and summary["failures_total"] == 0
    results = [
        r["body"]["content"]
        for r in recs
        if r["event"] == "envelope" and r["kind"] == "tool_result"
    ]
    assert results == ["9", "18"]
    asks = [r for r in recs if r["event"] == "envelope" and r["kind"] == "ask"]
    tool_msgs = [m["content"] for m in asks[-1]["body"]["messages"] if m["role"] == "tool"]
    assert tool_msgs == ["9", "18"]
    assert phases(recs, "gsm8k-0") == [
        "think",
        "act",
        "observe",
        "think",
        "act",
        "observe",
        "think",
        "done",
    ]


def test_react_records_malformed_calls_unknown_tools_and_the_step_budget(tmp_path: Path) -> None:
    script = (
        '\'{"tool": "calc", "arguments": {"x": 1}}\', '
        '\'I will call {"tool": "calculator", "arguments": {"expression": \', '
        '\'{"tool": "calculator", "arguments": {"expr": "1+1"}}\', '
        '\'{"tool": "calculator", "arguments": {"expr": "1+1"}}\''
    )
    toml = (
        '[tasks]\nsuite = "gsm8k"\nlimit = 1\n[agents.solver]\nengine = "scripted"\ntools = ["calculator"]\n'
        f'options = {{ table = "gsm8k", script = [{script}] }}\n[protocol]\nkind = "react"\nmax_steps = 4\n'
    )
    summary, _, _ = run_sim(tmp_path, toml)
    f = summary["failures"]
    assert f["unknown_tool"] == 1
    assert f["tool_call_malformed"] == 1
    assert f["invalid_tool_arguments"] == 2
    assert f["step_repetition"] == 1
    assert f["unaware_of_termination"] == 1
    assert summary["completion_rate"] == 0.0


def test_crashed_in_process_agent_is_recorded_and_vote_continues(tmp_path: Path) -> None:
    toml = (
        '[tasks]\nsuite = "gsm8k"\nlimit = 5\n'
        + agents(
            {
                "a": 'table = "gsm8k"',
                "b": 'table = "gsm8k", crash_after = 2',
                "c": 'table = "gsm8k"',
            }
        )
        + '[protocol]\nkind = "vote"\n'
    )
    summary, _, recs = run_sim(tmp_path, toml)
    assert summary["tasks_done"] == 5 and summary["accuracy"] == 1.0
    crash = [r for r in recs if r["event"] == "failure" and r["kind"] == "agent_crash"]
    assert crash and crash[0]["agents"] == ["b"]
