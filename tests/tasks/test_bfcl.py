"""BFCL loading and the AST-match scorer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentsim.chat import FunctionCall, ToolCall
from agentsim.tasks.bfcl import (
    BFCLScore,
    BFCLTask,
    bfcl_accuracy,
    load_bfcl,
    reference_calls,
    score_bfcl,
    standardize,
    to_json_schema,
)


@pytest.fixture(scope="module")
def tasks() -> dict[str, BFCLTask]:
    return {t.id: t for t in load_bfcl()}


def calls(*pairs: tuple[str, dict[str, Any]]) -> list[ToolCall]:
    return [
        ToolCall(id=f"c{i}", function=FunctionCall(name=name, arguments=json.dumps(args)))
        for i, (name, args) in enumerate(pairs)
    ]


def test_all_four_categories_load(tasks: dict[str, BFCLTask]) -> None:
    counts: dict[str, int] = {}
    for task in tasks.values():
        counts[task.category] = counts.get(task.category, 0) + 1
    assert counts == {"simple_python": 400, "multiple": 200, "parallel": 200, "irrelevance": 240}
    task = tasks["simple_python_1"]
    assert task.messages[0].role == "user"
    assert task.messages[0].content == "Calculate the factorial of 5 using math functions."
    assert task.answers == [{"math.factorial": {"number": [5]}}]
    assert tasks["irrelevance_0"].answers == []


def test_unknown_category_is_refused() -> None:
    with pytest.raises(ValueError, match=r"bfcl category must be one of .*, got 'live'"):
        load_bfcl(["live"])  # type: ignore[list-item]


def test_schemas_become_json_schema(tasks: dict[str, BFCLTask]) -> None:
    tool = tasks["simple_python_1"].tools[0]
    assert tool == {
        "type": "function",
        "function": {
            "name": "math.factorial",
            "description": "Calculate the factorial of a given number.",
            "parameters": {
                "type": "object",
                "properties": {
                    "number": {
                        "type": "integer",
                        "description": "The number for which factorial needs to be calculated.",
                    }
                },
                "required": ["number"],
            },
        },
    }


def test_type_conversion_rules() -> None:
    converted = to_json_schema(
        {
            "type": "dict",
            "properties": {
                "f": {"type": "float"},
                "t": {"type": "tuple", "items": {"type": "float"}},
                "a": {"type": "any", "description": "anything"},
                "d": {"type": "dict", "properties": {"x": {"type": "integer"}}},
            },
        }
    )
    assert converted == {
        "type": "object",
        "properties": {
            "f": {"type": "number"},
            "t": {"type": "array", "items": {"type": "number"}},
            "a": {"description": "anything"},
            "d": {"type": "object", "properties": {"x": {"type": "integer"}}},
        },
    }


def test_no_bfcl_type_names_remain_in_any_tool_schema(tasks: dict[str, BFCLTask]) -> None:
    text = json.dumps([t.tools for t in tasks.values()])
    for bfcl_type in ('"type": "dict"', '"type": "float"', '"type": "tuple"', '"type": "any"'):
        assert bfcl_type not in text


def test_standardize_follows_the_checker() -> None:
    assert standardize("April 1, 2024") == standardize("april 1 2024") == "april12024"
    assert standardize("New-York_City.") == "newyorkcity"
    assert standardize("it's") == 'it"s'


# --- simple_python: {"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}


@pytest.mark.parametrize(
    "args",
    [
        {"base": 10, "height": 5},
        {"base": 10, "height": 5, "unit": "units"},
        {"base": 10, "height": 5, "unit": "Units"},
        {"height": 5, "base": 10},
    ],
)
def test_simple_correct_calls(tasks: dict[str, BFCLTask], args: dict[str, Any]) -> None:
    score = score_bfcl(tasks["simple_python_0"], calls(("calculate_triangle_area", args)))
    assert score == BFCLScore(correct=True, reason="all calls match")


@pytest.mark.parametrize(
    ("name", "args", "reason"),
    [
        ("calc_area", {"base": 10, "height": 5}, "function name 'calc_area' does not match"),
        ("calculate_triangle_area", {"base": 10}, "missing required parameter 'height'"),
        (
            "calculate_triangle_area",
            {"base": 10, "height": 5, "colour": "red"},
            "unexpected parameter 'colour'",
        ),
        (
            "calculate_triangle_area",
            {"base": 11, "height": 5},
            "parameter 'base' value 11 not in [10]",
        ),
        (
            "calculate_triangle_area",
            {"base": "10", "height": 5},
            "parameter 'base' should be integer, got str",
        ),
        ("calculate_triangle_area", {"base": 10.0, "height": 5}, "should be integer, got float"),
        ("calculate_triangle_area", {"base": True, "height": 5}, "should be integer, got bool"),
        (
            "calculate_triangle_area",
            {"base": 10, "height": 5, "unit": "cm"},
            "parameter 'unit' value 'cm'",
        ),
    ],
)
def test_simple_incorrect_calls(
    tasks: dict[str, BFCLTask], name: str, args: dict[str, Any], reason: str
) -> None:
    score = score_bfcl(tasks["simple_python_0"], calls((name, args)))
    assert not score.correct
    assert reason in score.reason


def test_simple_needs_exactly_one_call(tasks: dict[str, BFCLTask]) -> None:
    task = tasks["simple_python_0"]
    assert score_bfcl(task, []).reason == "expected 1 call(s), got 0"
    two = (
        calls(
            ("calculate_triangle_area", {"base": 10, "height": 5}),
        )
        * 2
    )
    assert not score_bfcl(task, two).correct


def test_dotted_names_accept_underscores(tasks: dict[str, BFCLTask]) -> None:
    task = tasks["simple_python_1"]
    assert score_bfcl(task, calls(("math.factorial", {"number": 5}))).correct
    assert score_bfcl(task, calls(("math_factorial", {"number": 5}))).correct
    assert not score_bfcl(task, calls(("factorial", {"number": 5}))).correct


def test_optional_param_marked_by_empty_string(tasks: dict[str, BFCLTask]) -> None:
    task = tasks["simple_python_2"]  # math.hypot: x [4], y [5], z ["", 0]
    assert score_bfcl(task, calls(("math.hypot", {"x": 4, "y": 5}))).correct
    assert score_bfcl(task, calls(("math.hypot", {"x": 4, "y": 5, "z": 0}))).correct
    assert not score_bfcl(task, calls(("math.hypot", {"x": 4, "y": 5, "z": 1}))).correct


def test_param_not_optional_in_answer_must_be_given() -> None:
    task = BFCLTask(
        id="t",
        category="simple_python",
        messages=[],
        tools=[],
        functions=[
            {
                "name": "f",
                "parameters": {
                    "type": "dict",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "float"}},
                    "required": ["a"],
                },
            }
        ],
        answers=[{"f": {"a": [1], "b": [2.0]}}],
    )
    assert score_bfcl(task, calls(("f", {"a": 1, "b": 2}))).correct  # int accepted for float
    score = score_bfcl(task, calls(("f", {"a": 1})))
    assert score.reason == "f: parameter 'b' missing and not optional"


def test_arguments_that_are_not_json_score_incorrect(tasks: dict[str, BFCLTask]) -> None:
    bad = [ToolCall(id="c", function=FunctionCall(name="math.factorial", arguments="{number: 5"))]
    score = score_bfcl(tasks["simple_python_1"], bad)
    assert score == BFCLScore(
        correct=False, reason="arguments of math.factorial are not valid JSON"
    )


def test_lists_and_dicts_compare_elementwise(tasks: dict[str, BFCLTask]) -> None:
    task = tasks["simple_python_94"]
    ((name, _),) = task.answers[0].items()
    good = {"user_id": 43523, "update_info": {"name": "john doe", "email": "johndoe@email.com"}}
    assert score_bfcl(task, calls((name, good))).correct
    wrong = {"user_id": 43523, "update_info": {"name": "Jane Doe", "email": "johndoe@email.com"}}
    assert not score_bfcl(task, calls((name, wrong))).correct
    extra = {
        "user_id": 43523,
        "update_info": {"name": "John Doe", "email": "johndoe@email.com", "age": 3},
    }
    assert not score_bfcl(task, calls((name, extra))).correct


def test_list_values_are_ordered_and_normalised() -> None:
    task = BFCLTask(
        id="t",
        category="simple_python",
        messages=[],
        tools=[],
        functions=[
            {
                "name": "f",
                "parameters": {
                    "type": "dict",
                    "properties": {"xs": {"type": "array", "items": {"type": "string"}}},
                    "required": ["xs"],
                },
            }
        ],
        answers=[{"f": {"xs": [["New York", "LA"]]}}],
    )
    assert score_bfcl(task, calls(("f", {"xs": ["new york", "L.A."]}))).correct
    assert not score_bfcl(task, calls(("f", {"xs": ["LA", "New York"]}))).correct
    assert not score_bfcl(task, calls(("f", {"xs": ["New York", 3]}))).correct


# --- multiple: pick the right function among several


def test_multiple_correct_and_wrong_function(tasks: dict[str, BFCLTask]) -> None:
    task = tasks["multiple_0"]
    assert len(task.functions) > 1
    right = reference_calls(task)
    assert score_bfcl(task, right).correct
    (expected_name,) = task.answers[0]
    other = next(f["name"] for f in task.functions if f["name"] != expected_name)
    wrong = [
        ToolCall(id="c", function=FunctionCall(name=other, arguments=right[0].function.arguments))
    ]
    score = score_bfcl(task, wrong)
    assert not score.correct
    assert f"function name {other!r} does not match" in score.reason


# --- parallel: every expected call matched once, any order


def test_parallel_any_order(tasks: dict[str, BFCLTask]) -> None:
    task = tasks["parallel_0"]
    swift = ("spotify.play", {"artist": "Taylor Swift", "duration": 20})
    maroon = ("spotify.play", {"artist": "Maroon 5", "duration": 15})
    assert score_bfcl(task, calls(swift, maroon)).correct
    assert score_bfcl(task, calls(maroon, swift)).correct


def test_parallel_incorrect(tasks: dict[str, BFCLTask]) -> None:
    task = tasks["parallel_0"]
    swift = ("spotify.play", {"artist": "Taylor Swift", "duration": 20})
    maroon = ("spotify.play", {"artist": "Maroon 5", "duration": 15})
    assert score_bfcl(task, calls(swift)).reason == "expected 2 call(s), got 1"
    assert not score_bfcl(task, calls(swift, swift)).correct  # one call cannot match twice
    wrong = ("spotify.play", {"artist": "Maroon 5", "duration": 20})
    assert not score_bfcl(task, calls(swift, wrong)).correct
    assert not score_bfcl(task, calls(swift, maroon, swift)).correct


# --- irrelevance: correct only when no call is made


def test_irrelevance(tasks: dict[str, BFCLTask]) -> None:
    task = tasks["irrelevance_0"]
    assert score_bfcl(task, []) == BFCLScore(correct=True, reason="no call made")
    score = score_bfcl(task, calls(("determine_body_mass_index", {"weight": 10.0, "height": 5.0})))
    assert score == BFCLScore(
        correct=False, reason="called determine_body_mass_index on an irrelevant request"
    )


# --- sanity over the data


def test_first_possible_answer_scores_correct_for_every_simple_python_task() -> None:
    simple = load_bfcl(["simple_python"])
    wrong = [
        (t.id, s.reason) for t in simple if not (s := score_bfcl(t, reference_calls(t))).correct
    ]
    assert wrong == []


def test_reference_calls_score_correct_in_every_category(tasks: dict[str, BFCLTask]) -> None:
    results = [(t, score_bfcl(t, reference_calls(t))) for t in tasks.values()]
    assert bfcl_accuracy(results) == {
        "simple_python": 1.0,
        "multiple": 1.0,
        "parallel": 1.0,
        "irrelevance": 1.0,
        "overall": 1.0,
    }


def test_accuracy_per_category(tasks: dict[str, BFCLTask]) -> None:
    a, b, c = tasks["simple_python_0"], tasks["simple_python_1"], tasks["irrelevance_0"]
    results = [
        (a, BFCLScore(correct=True)),
        (b, BFCLScore(correct=False)),
        (c, BFCLScore(correct=True)),
    ]
    assert bfcl_accuracy(results) == {"simple_python": 0.5, "irrelevance": 1.0, "overall": 2 / 3}
