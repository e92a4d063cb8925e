"""Tool calls and final answers parsed out of model text."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentsim.tools import (
    ParsedTurn,
    format_instructions,
    load_tools,
    parse_tool_calls,
    run_tool_call,
    turn_schema,
)


def only_call(turn: ParsedTurn) -> tuple[str, dict[str, object]]:
    assert turn.problem is None, turn.detail
    assert len(turn.tool_calls) == 1
    fn = turn.tool_calls[0].function
    return fn.name, json.loads(fn.arguments)


@pytest.mark.parametrize(
    "text",
    [
        '{"tool": "calculator", "arguments": {"expression": "2+2"}}',
        'Thought: add.\n{"name": "calculator", "arguments": {"expression": "2+2"}}',
        '{"name": "calculator", "parameters": {"expression": "2+2"}}',
        '{"name": "calculator", "arguments": "{\\"expression\\": \\"2+2\\"}"}',
        '```json\n{"tool": "calculator", "arguments": {"expression": "2+2"}}\n```',
        '<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+2"}}\n</tool_call>',
        "<tool_call>{'name': 'calculator', 'arguments': {'expression': '2+2'}}</tool_call>",
        "{'tool': 'calculator', 'arguments': {'expression': '2+2'}}",
        '{"tool": "calculator", "expression": "2+2"}',
        '{"type": "function", "function": {"name": "calculator", "arguments": {"expression": "2+2"}}}',
    ],
)
def test_call_forms_are_recognised(text: str) -> None:
    assert only_call(parse_tool_calls(text)) == ("calculator", {"expression": "2+2"})


def test_thought_before_the_call_is_kept() -> None:
    turn = parse_tool_calls('I should add.\n```json\n{"tool": "calculator", "arguments": {}}\n```')
    assert turn.thought == "I should add."


def test_several_calls_get_distinct_ids() -> None:
    text = (
        '<tool_call>{"name": "a", "arguments": {}}</tool_call>\n'
        '<tool_call>{"name": "b", "arguments": {"x": 1}}</tool_call>'
    )
    turn = parse_tool_calls(text)
    assert [c.function.name for c in turn.tool_calls] == ["a", "b"]
    assert [c.id for c in turn.tool_calls] == ["call_0", "call_1"]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ('{"final_answer": "Lima"}', "Lima"),
        ('{"final_answer": 42}', "42"),
        ("Reasoning here.\nFinal Answer: 42", "42"),
        ("**Final Answer:** Lima, Peru", "Lima, Peru"),
        ("so 6*7 is\n#### 42", "42"),
        ("final answer: two lines\nof text", "two lines\nof text"),
    ],
)
def test_final_answers_are_recognised(text: str, answer: str) -> None:
    turn = parse_tool_calls(text)
    assert turn.final_answer == answer
    assert turn.tool_calls == []
    assert turn.problem is None


def test_plain_text_is_neither_call_nor_answer() -> None:
    turn = parse_tool_calls("I think it is {probably} Lima; the set {1, 2} is small.")
    assert turn == ParsedTurn(thought="I think it is {probably} Lima; the set {1, 2} is small.")


def test_unrelated_json_is_not_a_call() -> None:
    assert parse_tool_calls('{"name": "Bob", "age": 3}').tool_calls == []


@pytest.mark.parametrize(
    ("text", "snippet"),
    [
        ('{"tool": "calculator", "arguments": {"expression": "2+2"}', '{"tool": "calculator"'),
        ('{"tool": calculator, "arguments": {}}', '{"tool": calculator'),
        ("<tool_call>calculator(2+2)</tool_call>", "<tool_call>calculator(2+2)</tool_call>"),
        ('<tool_call>{"arguments": {"x": 1}}</tool_call>', '{"arguments": {"x": 1}}'),
        ('{"final_answer": "unterminated}', '{"final_answer": "unterminated}'),
    ],
)
def test_attempted_but_broken_calls_are_malformed(text: str, snippet: str) -> None:
    turn = parse_tool_calls(text)
    assert turn.problem == "tool_call_malformed"
    assert snippet in turn.detail
    assert turn.tool_calls == []


def test_string_arguments_that_are_not_json_reach_run_tool_call_as_malformed() -> None:
    turn = parse_tool_calls('{"tool": "calculator", "arguments": "2+2"}')
    outcome = run_tool_call(turn.tool_calls[0], load_tools(["calculator"]))
    assert outcome.problem == "tool_call_malformed"


def test_parsed_call_runs_end_to_end() -> None:
    turn = parse_tool_calls('{"tool": "calculator", "arguments": {"expression": "1/4 + 1/4"}}')
    assert run_tool_call(turn.tool_calls[0], load_tools(["calculator"])).output == "0.5"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    turn = parse_tool_calls(text)
    assert isinstance(turn, ParsedTurn)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=30),
    st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
    st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), _json_values, max_size=4),
)
def test_any_well_formed_call_round_trips(prefix: str, name: str, args: dict[str, object]) -> None:
    text = prefix + "\n" + json.dumps({"tool": name, "arguments": args})
    assert only_call(parse_tool_calls(text)) == (name, args)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["{", "<tool_call>", '{"tool": ', "}", "'"]))
def test_text_with_call_fragments_never_raises(text: str, fragment: str) -> None:
    parse_tool_calls(fragment + text + fragment)


def test_format_instructions_state_the_tools_and_both_formats() -> None:
    text = format_instructions(load_tools(["calculator", "search"]).values())
    assert "- calculator: Evaluate an arithmetic expression exactly" in text
    assert "    - expression (string): The arithmetic expression" in text
    assert "    - k (integer, optional): How many paragraphs" in text
    assert '{"tool": "<tool name>", "arguments": {"<argument>": <value>}}' in text
    assert '{"final_answer": "<your answer>"}' in text


def test_format_instructions_accept_schemas() -> None:
    schema = {"type": "function", "function": {"name": "ping", "description": "Ping."}}
    assert "- ping: Ping.\n    (no arguments)" in format_instructions([schema])


def test_turn_schema_offers_each_tool_and_a_final_answer() -> None:
    tools = load_tools(["calculator"])
    schema = turn_schema(tools.values())
    options = schema["anyOf"]
    assert options[0]["properties"]["tool"] == {"const": "calculator"}
    assert options[0]["properties"]["arguments"] == tools["calculator"].parameters
    assert options[1]["required"] == ["final_answer"]
    # every option is closed, so a decoder constrained by it emits exactly one of them
    assert all(o["additionalProperties"] is False for o in options)
    parsed = parse_tool_calls(json.dumps({"tool": "calculator", "arguments": {"expression": "1"}}))
    assert parsed.tool_calls[0].function.name == "calculator"


@pytest.mark.parametrize(
    "text",
    ["{" * 100_000, '{"tool": ' * 2000, '{"a":' * 5000 + "1" + "}" * 5000, "'{" * 5000],
)
def test_pathological_text_is_parsed_quickly(text: str) -> None:
    start = time.monotonic()
    parse_tool_calls(text)
    assert time.monotonic() - start < 1.0
