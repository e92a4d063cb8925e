"""Schema derivation, the registry and every kind of ToolOutcome."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest

from agentsim.chat import FunctionCall, ToolCall
from agentsim.tools import (
    Tool,
    ToolError,
    ToolLoadError,
    ToolOutcome,
    ToolTimeout,
    load_tool,
    load_tools,
    run_tool_call,
    tool_schemas,
)
from agentsim.tools.base import parse_docstring


def convert(amount: float, unit: str = "m", *, exact: bool = False) -> str:
    """Convert a length.

    Longer explanation that is not part of the summary.

    Args:
        amount: How much to convert,
            continued on a second line.
        unit (str): Target unit.
        exact: Whether to keep fractions.

    Returns:
        The converted length.
    """
    return f"{amount} {unit} {exact}"


def bounded(
    n: Annotated[int, msgspec.Meta(ge=1, le=5)], tags: list[str] | None = None
) -> dict[str, Any]:
    """Echo n."""
    return {"n": n, "tags": tags}


def call(name: str, arguments: str = "{}") -> ToolCall:
    return ToolCall(id="c1", function=FunctionCall(name=name, arguments=arguments))


def test_schema_is_derived_from_signature_and_docstring() -> None:
    schema = Tool.from_function(convert).schema()
    assert schema == {
        "type": "function",
        "function": {
            "name": "convert",
            "description": "Convert a length.",
            "parameters": {
                "type": "object",
                "properties": {
                    "amount": {
                        "type": "number",
                        "description": "How much to convert, continued on a second line.",
                    },
                    "unit": {"type": "string", "default": "m", "description": "Target unit."},
                    "exact": {
                        "type": "boolean",
                        "default": False,
                        "description": "Whether to keep fractions.",
                    },
                },
                "required": ["amount"],
                "additionalProperties": False,
            },
        },
    }


def test_schema_carries_constraints_and_optional_types() -> None:
    params = Tool.from_function(bounded).parameters
    assert params["properties"]["n"] == {"type": "integer", "minimum": 1, "maximum": 5}
    assert params["properties"]["tags"]["anyOf"] == [
        {"type": "array", "items": {"type": "string"}},
        {"type": "null"},
    ]


def test_parse_docstring_without_args_section() -> None:
    assert parse_docstring("Do a thing.\n\nMore text.") == ("Do a thing.", {})


def test_function_without_type_hint_is_refused() -> None:
    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(ToolLoadError, match="parameter x needs a type hint"):
        Tool.from_function(untyped)


def test_var_kwargs_are_refused() -> None:
    def loose(**kw: int) -> str:
        return ""

    with pytest.raises(ToolLoadError, match=r"kw must not be \*args or \*\*kwargs"):
        Tool.from_function(loose)


def test_builtin_tools_load_by_name() -> None:
    tools = load_tools(["calculator", "python", "search"])
    assert list(tools) == ["calculator", "python", "search"]
    names = [s["function"]["name"] for s in tool_schemas(tools)]
    assert names == ["calculator", "python", "search"]
    assert tools["calculator"].parameters["required"] == ["expression"]


def test_user_tool_loads_from_file_path(tmp_path: Path) -> None:
    module = tmp_path / "mytools.py"
    module.write_text(
        textwrap.dedent(
            '''
            def shout(text: str) -> str:
                """Upper-case text.

                Args:
                    text: What to shout.
                """
                return text.upper()
            '''
        )
    )
    tool = load_tool(f"{module}:shout")
    assert tool.name == "shout"
    assert tool(text="hi") == "HI"


def test_user_tool_loads_from_dotted_module() -> None:
    tool = load_tool("agentsim.tools.calculator:calculator")
    assert tool(expression="6*7") == "42"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuchtool", "not a built-in tool"),
        ("agentsim.tools.calculator:nope", "has no function 'nope'"),
        ("no_such_module_xyz:f", "importing module no_such_module_xyz failed"),
        ("/nonexistent/dir/t.py:f", "does not exist"),
    ],
)
def test_bad_specs_are_refused_with_reason(spec: str, message: str) -> None:
    with pytest.raises(ToolLoadError, match=message):
        load_tool(spec)


def test_duplicate_tool_names_are_refused() -> None:
    with pytest.raises(ToolLoadError, match="already loaded"):
        load_tools(["calculator", "agentsim.tools.calculator:calculator"])


TOOLS = {t.name: t for t in (Tool.from_function(convert), Tool.from_function(bounded))}


def test_good_call_returns_output() -> None:
    outcome = run_tool_call(call("convert", '{"amount": 3}'), TOOLS)
    assert outcome.ok
    assert outcome.output == "3.0 m False"
    assert outcome.problem is None
    message = outcome.as_message()
    assert (message.role, message.tool_call_id, message.content) == ("tool", "c1", "3.0 m False")


def test_non_string_result_is_json_encoded() -> None:
    outcome = run_tool_call(call("bounded", '{"n": 2}'), TOOLS)
    assert json.loads(outcome.output or "") == {"n": 2, "tags": None}


@pytest.mark.parametrize(
    ("arguments", "detail"),
    [
        ("{not json", "arguments of convert are not valid JSON"),
        ("[1, 2]", "arguments of convert must be a JSON object, got list"),
        ('"3"', "must be a JSON object, got str"),
    ],
)
def test_malformed_arguments_are_tool_call_malformed(arguments: str, detail: str) -> None:
    outcome = run_tool_call(call("convert", arguments), TOOLS)
    assert outcome.problem == "tool_call_malformed"
    assert detail in outcome.detail


def test_unknown_tool_names_the_known_ones() -> None:
    outcome = run_tool_call(call("weather", "{}"), TOOLS)
    assert outcome.problem == "unknown_tool"
    assert outcome.detail == "no tool named 'weather' (tools: bounded, convert)"
    assert outcome.content().startswith("Error (unknown_tool): no tool named")


@pytest.mark.parametrize(
    ("name", "arguments", "detail"),
    [
        ("convert", "{}", "convert: Object missing required field `amount`"),
        ("convert", '{"amount": "3"}', "convert: Expected `float`, got `str` - at `$.amount`"),
        (
            "convert",
            '{"amount": 1, "colour": 2}',
            "convert: Object contains unknown field `colour`",
        ),
        ("bounded", '{"n": 9}', "bounded: Expected `int` <= 5 - at `$.n`"),
        ("bounded", '{"n": true}', "bounded: Expected `int`, got `bool` - at `$.n`"),
    ],
)
def test_schema_mismatch_is_invalid_tool_arguments(name: str, arguments: str, detail: str) -> None:
    outcome = run_tool_call(call(name, arguments), TOOLS)
    assert outcome.problem == "invalid_tool_arguments"
    assert outcome.detail == detail


def test_raising_tool_is_tool_error() -> None:
    def broken(x: int) -> str:
        """Always fails."""
        raise ZeroDivisionError("no luck")

    def refusing(x: int) -> str:
        """Fails on purpose."""
        raise ToolError("x must be even")

    tools = {"broken": Tool.from_function(broken), "refusing": Tool.from_function(refusing)}
    outcome = run_tool_call(call("broken", '{"x": 1}'), tools)
    assert (outcome.problem, outcome.detail) == (
        "tool_error",
        "broken raised ZeroDivisionError: no luck",
    )
    outcome = run_tool_call(call("refusing", '{"x": 1}'), tools)
    assert (outcome.problem, outcome.detail) == ("tool_error", "refusing: x must be even")


def test_slow_tool_is_tool_timeout() -> None:
    def slow(seconds: float) -> str:
        """Sleeps."""
        time.sleep(seconds)
        return "done"

    tool = Tool.from_function(slow, timeout_s=0.2)
    outcome = run_tool_call(call("slow", '{"seconds": 5}'), {"slow": tool})
    assert outcome.problem == "tool_timeout"
    assert outcome.detail == "slow: no result within 0.2 s"
    assert outcome.elapsed_s < 2
    assert run_tool_call(call("slow", '{"seconds": 0}'), {"slow": tool}).output == "done"


def test_tool_raising_tooltimeout_is_tool_timeout() -> None:
    def stuck() -> str:
        """Gives up."""
        raise ToolTimeout("ran past 1 s")

    outcome = run_tool_call(call("stuck"), {"stuck": Tool.from_function(stuck)})
    assert (outcome.problem, outcome.detail) == ("tool_timeout", "stuck: ran past 1 s")


def test_long_detail_is_shortened() -> None:
    def loud() -> str:
        """Fails loudly."""
        raise ToolError("x" * 5000)

    outcome = run_tool_call(call("loud"), {"loud": Tool.from_function(loud)})
    assert len(outcome.detail) == 500
    assert outcome.detail.endswith("...")


def test_outcome_needs_output_or_problem() -> None:
    with pytest.raises(ValueError, match="exactly one of output and problem"):
        ToolOutcome(call_id="c", name="n")
    encoded = msgspec.json.encode(
        ToolOutcome(call_id="c", name="n", problem="tool_error", detail="d")
    )
    assert msgspec.json.decode(encoded, type=ToolOutcome).problem == "tool_error"
