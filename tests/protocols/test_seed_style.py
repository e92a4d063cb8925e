"""The seed study's prompt style, worked examples and closed tool schemas in the protocols."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentsim.protocols.styles import parse_seed_turn
from agentsim.protocols.turns import close_schema, turn_schema
from agentsim.scenario.sweep import expand

ACT = '<think>add</think>\\n<action>{"tool": "calculator", "arguments": {"expression": "2+3"}}</action>'
DONE = "<think>done</think>\\n<final_answer>{gold}</final_answer>"


def _react(script: list[str], *, extra: str = "", tasks: str = "", max_steps: int = 8) -> str:
    lines = ", ".join(f"'{s}'" for s in script)
    return (
        f'[tasks]\nsuite = "study_arithmetic"\nlimit = 2\n{tasks}'
        '[agents.solver]\nengine = "scripted"\ntools = ["calculator"]\n'
        f'options = {{ table = "study_arithmetic", script = [{lines}] }}\n'
        f'[protocol]\nkind = "react"\nprompt_style = "seed"\nmax_steps = {max_steps}\n{extra}'
    )


def _messages(run: Any, agent: str, task_id: str, n: int = 0) -> list[dict[str, Any]]:
    return list(run.asks(agent, task_id)[n]["body"]["messages"])


def test_seed_react_acts_observes_in_tags_and_answers(sim: Callable[..., Any]) -> None:
    run = sim(_react([ACT, DONE]))
    assert run.summary["accuracy"] == 1.0 and run.summary["failures_total"] == 0
    assert run.summary["completion_rate"] == 1.0
    system = _messages(run, "solver", "arithmetic-test-0")[0]["content"]
    assert "<think>" in system and "<final_answer>" in system and "at most 5 turns" in system
    second = _messages(run, "solver", "arithmetic-test-0", 1)
    assert (second[-1]["role"], second[-1]["content"]) == ("user", "<observation>5</observation>")


def test_seed_style_caps_the_loop_at_five_turns(sim: Callable[..., Any]) -> None:
    run = sim(_react(["<think>hmm</think> I am not sure."], max_steps=9))
    assert len(run.asks("solver", "arithmetic-test-0")) == 5
    assert run.failures("unaware_of_termination", "arithmetic-test-0")
    assert run.summary["completion_rate"] == 0.0


def test_a_python_dict_action_is_malformed_in_the_seed_style(sim: Callable[..., Any]) -> None:
    bad = '<think>x</think>\\n<action>{"tool": "calculator", "args": {"expression": "1"}}</action>'
    run = sim(_react([bad, DONE]))
    assert run.failures("tool_call_malformed", "arithmetic-test-0")
    assert run.summary["accuracy"] == 1.0  # it recovered on the next turn


def test_worked_examples_are_earlier_turns_with_real_tool_output(sim: Callable[..., Any]) -> None:
    run = sim(_react([ACT, DONE], tasks="examples = 1\n"))
    msgs = _messages(run, "solver", "arithmetic-test-0")
    # system, example question, example action, observation, example answer, the question
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    action = json.loads(msgs[2]["content"].split("<action>")[1].split("</action>")[0])
    assert action["tool"] == "calculator" and action["arguments"]["expression"]
    assert msgs[4]["content"].endswith("</final_answer>")
    example_answer = msgs[4]["content"].split("<final_answer>")[1].split("</final_answer>")[0]
    assert msgs[3]["content"] == f"<observation>{example_answer}</observation>"


def test_solo_sees_the_same_examples_as_final_answers(sim: Callable[..., Any]) -> None:
    toml = (
        '[tasks]\nsuite = "study_arithmetic"\nlimit = 1\nexamples = 1\n'
        '[agents.base]\nengine = "scripted"\noptions = { reply = "Final Answer: 1" }\n'
        '[protocol]\nkind = "solo"\n'
    )
    solo = sim(toml)
    react = sim(_react([ACT, DONE], tasks="examples = 1\n"))
    s_msgs = _messages(solo, "base", "arithmetic-test-0")
    r_msgs = _messages(react, "solver", "arithmetic-test-0")
    assert s_msgs[0]["content"] == r_msgs[1]["content"]  # the same example question
    assert s_msgs[1]["content"].startswith("Final Answer: ")


def test_router_in_the_seed_style_routes_inside_action_tags(sim: Callable[..., Any]) -> None:
    route = '<think>numbers</think>\\n<action>{"route": "quant", "task": "compute it"}</action>'
    toml = (
        '[tasks]\nsuite = "study_arithmetic"\nlimit = 1\n'
        f"[agents.boss]\nengine = \"scripted\"\noptions = {{ table = \"study_arithmetic\", script = ['{route}', '{DONE}'] }}\n"
        '[agents.quant]\nengine = "scripted"\ntools = ["calculator"]\n'
        f"options = {{ table = \"study_arithmetic\", script = ['{ACT}', '{DONE}'] }}\n"
        '[protocol]\nkind = "router"\nagents = ["boss", "quant"]\nprompt_style = "seed"\n'
        'options = { expected = { arithmetic = "quant" } }\n'
    )
    run = sim(toml)
    assert run.summary["accuracy"] == 1.0 and run.summary["failures_total"] == 0
    assert run.phases("router", "arithmetic-test-0") == [
        "supervise",
        "delegate",
        "supervise",
        "done",
    ]


def test_parse_seed_turn_needs_strict_json_with_exactly_tool_and_arguments() -> None:
    good = parse_seed_turn(
        '<think>t</think><action>{"tool": "search", "arguments": {"query": "x"}}</action>'
    )
    assert good.problem is None and good.tool_calls[0].function.name == "search"
    assert good.thought == "t"
    for body in (
        "{'tool': 'search', 'arguments': {}}",
        '{"tool": "search"}',
        '{"tool": "s", "arguments": {}, "x": 1}',
    ):
        assert parse_seed_turn(f"<action>{body}</action>").problem == "tool_call_malformed"
    assert parse_seed_turn("<final_answer> 7 </final_answer>").final_answer == "7"
    assert parse_seed_turn("Final Answer: 7").final_answer is None  # tags only


def test_close_schema_closes_nested_objects_and_keeps_explicit_choices() -> None:
    schema = {
        "type": "object",
        "properties": {
            "where": {"type": "object", "properties": {"city": {"type": "string"}}},
            "tags": {"type": "array", "items": {"properties": {"k": {"type": "string"}}}},
            "free": {"type": "object", "additionalProperties": True},
        },
        "required": ["where"],
    }
    closed = close_schema(schema)
    assert closed["additionalProperties"] is False
    assert closed["required"] == ["where"]
    assert closed["properties"]["where"]["additionalProperties"] is False
    assert closed["properties"]["tags"]["items"]["additionalProperties"] is False
    assert closed["properties"]["free"]["additionalProperties"] is True
    assert "additionalProperties" not in schema  # the input is not changed
    turn = turn_schema([{"type": "function", "function": {"name": "f", "parameters": schema}}])
    assert turn["anyOf"][0]["properties"]["tool"] == {"const": "f"}
    assert turn["anyOf"][-1]["required"] == ["final_answer"]


def test_sweep_star_axis_sets_every_agent(tmp_path: Path) -> None:
    text = (
        '[agents.a]\nengine = "scripted"\n[agents.b]\nengine = "scripted"\n'
        '[protocol]\nkind = "solo"\nagents = ["a"]\n'
        '[sweep.axes]\n"agents.*.model" = ["m1", "m2"]\n'
    )
    configs = expand(text, "s.toml", tmp_path)
    assert [(sc.agents["a"].model, sc.agents["b"].model) for _, sc in configs] == [
        ("m1", "m1"),
        ("m2", "m2"),
    ]
