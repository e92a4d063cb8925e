"""The routing multi-agent system: supervisor → specialist (ReAct) → supervisor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agentsim.protocols.router import Router, parse_route
from agentsim.testing import scenario_from_toml

SPECIALISTS = """
[agents.math]
engine = "scripted"
tools = ["calculator"]
options = { table = "gsm8k", script = ['{"tool": "calculator", "arguments": {"expression": "2+3"}}', '{"final_answer": "{gold}"}'] }
[agents.code]
engine = "scripted"
tools = ["python"]
options = { table = "gsm8k", script = ['{"final_answer": "{gold}"}'] }
"""


def scenario(
    supervisor_script: list[str], *, limit: int = 1, max_steps: int = 6, extra: str = ""
) -> str:
    script = ", ".join(f"'{s}'" for s in supervisor_script)
    return (
        f'[tasks]\nsuite = "gsm8k"\nlimit = {limit}\n'
        f'[agents.boss]\nengine = "scripted"\noptions = {{ table = "gsm8k", script = [{script}] }}\n'
        + SPECIALISTS
        + '[protocol]\nkind = "router"\nagents = ["boss", "math", "code"]\n'
        + f"max_steps = {max_steps}\n"
        + extra
    )


ROUTE_MATH = '{"route": "math", "task": "compute it"}'


def test_supervisor_routes_to_the_math_specialist_who_uses_its_calculator(
    sim: Callable[..., Any],
) -> None:
    run = sim(
        scenario(
            [ROUTE_MATH, "Final Answer: {gold}"],
            limit=3,
            extra='options = { expected = { gsm8k = "math" } }\n',
        )
    )
    assert run.summary["accuracy"] == 1.0 and run.summary["failures_total"] == 0
    assert run.phases("router") == ["supervise", "delegate", "supervise", "done"]
    assert run.phases("react") == ["think", "act", "observe", "think", "done"]
    tool_results = [r for r in run.recs if r["event"] == "envelope" and r["kind"] == "tool_result"]
    assert {r["src"] for r in tool_results} == {"math"} and len(tool_results) == 3
    assert run.asks("code") == []
    # the specialist's answer reached the supervisor, and the supervisor got no tools
    boss_asks = run.asks("boss")
    assert "Specialist math answered: 18" in boss_asks[1]["body"]["messages"][-1]["content"]
    assert not boss_asks[0]["body"].get("tools")
    assert '"route": "<specialist>"' in boss_asks[0]["body"]["messages"][0]["content"]


def test_supervisor_that_never_routes_is_a_role_violation_and_no_delegation(
    sim: Callable[..., Any],
) -> None:
    run = sim(scenario(["Final Answer: {gold}"], max_steps=3))
    assert run.kinds() == {"role_violation": 3, "unaware_of_termination": 1, "no_delegation": 1}
    assert run.summary["completion_rate"] == 0.0 and run.summary["accuracy"] == 0.0
    assert run.phases("router") == ["supervise", "supervise", "supervise", "done"]
    assert run.asks("math") == [] and run.asks("code") == []


def test_supervisor_may_answer_itself_when_routing_is_optional(sim: Callable[..., Any]) -> None:
    run = sim(scenario(["Final Answer: {gold}"], extra="options = { must_route = false }\n"))
    assert run.summary["accuracy"] == 1.0 and run.kinds() == {}
    assert run.phases("router") == ["supervise", "done"]


def test_supervisor_that_neither_routes_nor_answers_has_no_final_answer(
    sim: Callable[..., Any],
) -> None:
    run = sim(scenario(["Let me think."], max_steps=2, extra="options = { must_route = false }\n"))
    assert run.kinds() == {"no_final_answer": 2, "unaware_of_termination": 1, "no_delegation": 1}


def test_route_to_a_missing_specialist_is_misrouting_and_the_supervisor_is_corrected(
    sim: Callable[..., Any],
) -> None:
    run = sim(scenario(['{"route": "physics"}', "ROUTE: math", "Final Answer: {gold}"]))
    [mis] = run.failures("misrouting")
    assert mis["agents"] == ["boss"] and "'physics'" in mis["detail"]
    assert run.summary["accuracy"] == 1.0
    assert run.phases("router") == ["supervise", "supervise", "delegate", "supervise", "done"]
    correction = run.asks("boss")[1]["body"]["messages"][-1]["content"]
    assert "not a specialist" in correction and "math, code" in correction


def test_route_to_the_wrong_specialist_for_the_category_is_misrouting(
    sim: Callable[..., Any],
) -> None:
    run = sim(
        scenario(
            ['{"route": "code"}', "Final Answer: {gold}"],
            limit=2,
            extra='options = { expected = { gsm8k = "math" } }\n',
        )
    )
    mis = run.failures("misrouting")
    assert len(mis) == 2 and mis[0]["agents"] == ["boss", "code"]
    assert "expected math" in mis[0]["detail"]
    assert run.summary["accuracy"] == 1.0  # the wrong specialist still answered


def test_repeated_identical_delegation_is_a_delegation_loop_and_stops_the_task(
    sim: Callable[..., Any],
) -> None:
    run = sim(scenario([ROUTE_MATH], extra="options = { max_delegations = 5, loop_limit = 2 }\n"))
    [loop] = run.failures("delegation_loop")
    assert loop["agents"] == ["boss", "math"] and len(loop["evidence"]) == 3
    assert run.phases("router") == [
        "supervise", "delegate", "supervise", "delegate", "supervise", "done",
    ]  # fmt: skip
    assert len([r for r in run.recs if r["event"] == "phase" and r["phase"] == "delegate"]) == 2
    assert run.summary["completion_rate"] == 0.0
    assert "no_delegation" not in run.kinds() and "unaware_of_termination" not in run.kinds()


def test_ping_pong_between_specialists_is_a_delegation_loop(sim: Callable[..., Any]) -> None:
    run = sim(
        scenario(
            ["ROUTE: math", "ROUTE: code", "ROUTE: math", "ROUTE: code"],
            extra="options = { max_delegations = 5, loop_limit = 1 }\n",
        )
    )
    [loop] = run.failures("delegation_loop")
    assert loop["agents"] == ["boss", "math"] and loop["round"] == 2
    assert run.phases("router").count("delegate") == 2


def test_delegations_beyond_max_delegations_are_refused(sim: Callable[..., Any]) -> None:
    run = sim(
        scenario(
            ["ROUTE: math", "ROUTE: code", "Final Answer: {gold}"],
            extra="options = { max_delegations = 1 }\n",
        )
    )
    assert run.phases("router") == ["supervise", "delegate", "supervise", "supervise", "done"]
    assert "No delegations left" in run.asks("boss")[2]["body"]["messages"][-1]["content"]
    assert run.asks("code") == [] and run.summary["accuracy"] == 1.0


def test_constrained_supervisor_is_asked_with_the_route_schema(sim: Callable[..., Any]) -> None:
    toml = scenario([ROUTE_MATH, "Final Answer: {gold}"]).replace(
        '[agents.boss]\nengine = "scripted"\n',
        '[agents.boss]\nengine = "scripted"\nconstrained = true\n',
    )
    run = sim(toml)
    schema = run.asks("boss")[0]["body"]["response_schema"]
    assert schema["anyOf"][0]["properties"]["route"] == {"enum": ["math", "code"]}
    assert schema["anyOf"][1]["required"] == ["final_answer"]
    assert sim(scenario([ROUTE_MATH])).asks("boss")[0]["body"].get("response_schema") is None


def test_route_parsing_accepts_json_and_route_lines() -> None:
    assert parse_route('{"route": "math", "task": "add"}') == ("math", "add")
    assert parse_route("I think so.\n{'route': 'code'}") == ("code", "")
    assert parse_route("**ROUTE:** search\nTASK: find Peru's capital") == (
        "search",
        "find Peru's capital",
    )
    assert parse_route("Final Answer: 3") is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ('{ supervisor = "nobody" }', "protocol.options.supervisor must name one of"),
        (
            '{ expected = { gsm8k = "boss" } }',
            "protocol.options.expected.gsm8k must name a specialist",
        ),
        ("{ loop_limit = 0 }", "protocol.options.loop_limit must be an int >= 1, got 0"),
    ],
)
def test_bad_router_options_name_the_option(options: str, message: str) -> None:
    toml = scenario(["x"], extra=f"options = {options}\n")
    with pytest.raises(ValueError, match=message):
        Router(scenario_from_toml(toml))


def test_router_with_real_agent_processes(cli: Callable[[str], Any]) -> None:
    run = cli(
        "[run]\nheartbeat_s = 0.2\n"
        + scenario([ROUTE_MATH, "Final Answer: {gold}"], limit=3, extra="deadline_s = 20\n")
    )
    assert run.summary["tasks_done"] == 3 and run.summary["accuracy"] == 1.0
    assert run.phases("router", "gsm8k-2") == ["supervise", "delegate", "supervise", "done"]
    pids = {r["agent"]: r["pid"] for r in run.recs if r["event"] == "agent_ready"}
    assert sorted(pids) == ["boss", "code", "math"] and len(set(pids.values())) == 3
    assert [
        r["src"] for r in run.recs if r["event"] == "envelope" and r["kind"] == "tool_result"
    ] == ["math"] * 3
