"""A manager splits a task for workers (in parallel) and aggregates their results."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from agentsim.protocols.manager import parse_subtasks

WORKERS = """
[agents.w1]
engine = "scripted"
options = { table = "gsm8k", reply = "Result: {gold}" }
[agents.w2]
engine = "scripted"
options = { table = "gsm8k", reply = "Result: {gold}" }
"""


def scenario(manager_script: list[str], *, limit: int = 1, extra: str = "") -> str:
    script = ", ".join(json.dumps(s) for s in manager_script)  # JSON strings are TOML strings
    return (
        f'[tasks]\nsuite = "gsm8k"\nlimit = {limit}\n'
        f'[agents.boss]\nengine = "scripted"\noptions = {{ table = "gsm8k", script = [{script}] }}\n'
        + WORKERS
        + '[protocol]\nkind = "manager"\nagents = ["boss", "w1", "w2"]\n'
        + extra
    )


SPLIT_TWO = "1. Find the eggs left.\n2. Price them."


def test_manager_splits_workers_answer_in_parallel_and_manager_aggregates(
    sim: Callable[..., Any],
) -> None:
    run = sim(scenario([SPLIT_TWO, "Final Answer: {gold}"], limit=2))
    assert run.summary["accuracy"] == 1.0 and run.kinds() == {}
    assert run.phases("manager") == ["split", "work", "aggregate", "done"]
    assert (
        "Your subtask: Find the eggs left." in run.asks("w1")[0]["body"]["messages"][-1]["content"]
    )
    assert "Your subtask: Price them." in run.asks("w2")[0]["body"]["messages"][-1]["content"]
    # both workers were asked before either replied (one parallel wave)
    envs = [
        (r["kind"], r["dst"] if r["kind"] == "ask" else r["src"])
        for r in run.recs
        if r["event"] == "envelope" and r["kind"] in ("ask", "reply") and r["task_id"] == "gsm8k-0"
    ]
    assert envs[2:4] in ([("ask", "w1"), ("ask", "w2")], [("ask", "w2"), ("ask", "w1")])
    aggregate = run.asks("boss")[1]["body"]["messages"][-1]["content"]
    assert "- w1 (subtask 1: Find the eggs left.): Result: 18" in aggregate
    assert "- w2 (subtask 2: Price them.): Result: 18" in aggregate


def test_more_subtasks_than_workers_run_in_waves(sim: Callable[..., Any]) -> None:
    three = '["a", "b", {"task": "c"}]'
    run = sim(scenario([three, "Final Answer: {gold}"]))
    assert run.phases("manager") == ["split", "work", "work", "aggregate", "done"]
    assert len(run.asks("w1")) == 2 and len(run.asks("w2")) == 1
    assert run.results[0]["rounds"] == 4


def test_max_subtasks_drops_the_extra_ones(sim: Callable[..., Any]) -> None:
    run = sim(
        scenario(
            ["1. a\n2. b\n3. c", "Final Answer: {gold}"], extra="options = { max_subtasks = 2 }\n"
        )
    )
    work = [r for r in run.recs if r["event"] == "phase" and r["phase"] == "work"]
    assert (
        len(work) == 1 and work[0]["dropped"] == 1 and work[0]["assigned"] == {"w1": "a", "w2": "b"}
    )


def test_manager_that_gives_no_subtasks_is_no_delegation(sim: Callable[..., Any]) -> None:
    run = sim(scenario(["Final Answer: {gold}"], limit=2))
    assert run.kinds() == {"no_delegation": 2}
    assert run.phases("manager") == ["split", "done"]
    assert run.asks("w1") == [] and run.summary["completion_rate"] == 0.0
    relaxed = sim(scenario(["Final Answer: {gold}"], extra="options = { must_delegate = false }\n"))
    assert relaxed.kinds() == {"no_delegation": 1} and relaxed.summary["accuracy"] == 1.0


def test_aggregate_without_an_answer_is_no_final_answer(sim: Callable[..., Any]) -> None:
    run = sim(scenario([SPLIT_TWO, "The workers did well."]))
    [nfa] = run.failures("no_final_answer")
    assert nfa["agents"] == ["boss"]
    assert run.summary["completion_rate"] == 0.0


def test_subtask_parsing() -> None:
    assert parse_subtasks("Plan:\n1. add\n2) subtract\nStep 3: divide") == [
        "add",
        "subtract",
        "divide",
    ]
    assert parse_subtasks('{"subtasks": [{"subtask": "x"}, "y"]}') == ["x", "y"]
    assert parse_subtasks("The answer is 4.") == []


def test_manager_with_real_agent_processes(cli: Callable[[str], Any]) -> None:
    run = cli(
        "[run]\nheartbeat_s = 0.2\n"
        + scenario([SPLIT_TWO, "Final Answer: {gold}"], limit=3, extra="deadline_s = 20\n")
    )
    assert run.summary["tasks_done"] == 3 and run.summary["accuracy"] == 1.0
    assert run.phases("manager", "gsm8k-2") == ["split", "work", "aggregate", "done"]
    replies = [r["src"] for r in run.recs if r["event"] == "envelope" and r["kind"] == "reply"]
    assert sorted(replies) == ["boss"] * 6 + ["w1"] * 3 + ["w2"] * 3
