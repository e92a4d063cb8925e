"""BFCL (Berkeley Function Calling Leaderboard) tasks and an AST-match scorer.

Four categories ship in ``data/bfcl`` (Apache-2.0, see its LICENSE): ``simple_python``,
``multiple``, ``parallel`` and ``irrelevance``. The functions are never executed: a call is
scored by comparing its name and arguments to the possible answers, following the rules of
BFCL's official AST checker (rewritten here, not copied):

- the function name must match; a name with dots written with underscores is accepted;
- every required parameter is present, no parameter outside the schema and the answer;
- each value has the schema's type (an int is accepted for a float) and is one of the allowed
  values; ``""`` among the allowed values means the parameter may be left out;
- strings are compared after removing spaces and ``,./-_*^`` and lowercasing; lists and dicts
  element by element with the same rule;
- ``parallel`` needs each expected call matched by exactly one call, in any order;
- ``irrelevance`` is correct when no call is made.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from agentsim.chat import ChatMessage, FunctionCall, ToolCall

BFCLCategory = Literal["simple_python", "multiple", "parallel", "irrelevance"]
CATEGORIES: tuple[BFCLCategory, ...] = ("simple_python", "multiple", "parallel", "irrelevance")
DATA_DIR = Path(__file__).with_name("data") / "bfcl"

_JSON_TYPES = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "integer": "integer",
    "string": "string",
    "boolean": "boolean",
    "array": "array",
}
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "float": (float,),
    "boolean": (bool,),
    "array": (list,),
    "tuple": (list,),
    "dict": (dict,),
}
_STRIP = re.compile(r"[ ,./\-_*^]")

# An expected call: function name -> parameter -> allowed values.
Answer = dict[str, dict[str, list[Any]]]


class BFCLTask(msgspec.Struct, frozen=True, kw_only=True):
    """One BFCL test: the user turn, the functions as OpenAI tool schemas, the answers."""

    id: str
    category: BFCLCategory
    messages: list[ChatMessage]
    tools: list[dict[str, Any]]
    functions: list[dict[str, Any]]
    answers: list[Answer] = msgspec.field(default_factory=list)


class BFCLScore(msgspec.Struct, frozen=True, kw_only=True):
    correct: bool
    reason: str = ""


def to_json_schema(schema: Any) -> Any:
    """Turn a BFCL parameter schema into JSON Schema (``dict`` → ``object``, ``any`` → {})."""
    if isinstance(schema, list):
        return [to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            if value != "any":
                out["type"] = _JSON_TYPES.get(value, value)
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: to_json_schema(p) for name, p in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
            out[key] = to_json_schema(value)
        else:
            out[key] = value
    return out


def tool_schema(function: dict[str, Any]) -> dict[str, Any]:
    """A BFCL function description as an OpenAI tool schema."""
    params = to_json_schema(function.get("parameters", {"type": "dict", "properties": {}}))
    return {
        "type": "function",
        "function": {
            "name": function["name"],
            "description": function.get("description", ""),
            "parameters": params,
        },
    }


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_bfcl(
    categories: Iterable[BFCLCategory] = CATEGORIES, *, data_dir: Path = DATA_DIR
) -> list[BFCLTask]:
    """Load the tasks of the given categories, in file order.

    Raises:
        ValueError: an unknown category name.
    """
    tasks: list[BFCLTask] = []
    for category in categories:
        if category not in CATEGORIES:
            raise ValueError(
                f"bfcl category must be one of {', '.join(CATEGORIES)}, got {category!r}"
            )
        answers: dict[str, list[Answer]] = {}
        answer_path = data_dir / f"possible_answer_BFCL_v4_{category}.json"
        if answer_path.exists():
            answers = {row["id"]: row["ground_truth"] for row in _read_jsonl(answer_path)}
        for row in _read_jsonl(data_dir / f"BFCL_v4_{category}.json"):
            # These categories are single-turn: the first turn holds the user message(s).
            turn = row["question"][0]
            tasks.append(
                BFCLTask(
                    id=row["id"],
                    category=category,
                    messages=[ChatMessage(role=m["role"], content=m["content"]) for m in turn],
                    tools=[tool_schema(f) for f in row["function"]],
                    functions=row["function"],
                    answers=answers.get(row["id"], []),
                )
            )
    return tasks


def standardize(text: str) -> str:
    """The checker's string normalisation: drop spaces and ``,./-_*^``, lowercase, ' → "."""
    return _STRIP.sub("", text).lower().replace("'", '"')


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return standardize(value)
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def _type_ok(value: Any, type_name: str, allowed: list[Any], schema: dict[str, Any]) -> bool:
    if type_name == "any" or type_name not in _PY_TYPES:
        return True
    expected = _PY_TYPES[type_name]
    if type(value) in expected:
        if type_name in ("array", "tuple") and isinstance(schema.get("items"), dict):
            item_type = schema["items"].get("type", "any")
            return all(_type_ok(v, item_type, [], schema["items"]) for v in value)
        return True
    # The official checker also accepts a value of the same type as an allowed answer.
    return any(a != "" and type(value) is type(a) for a in allowed)


def _dict_matches(value: dict[str, Any], expected: dict[str, list[Any]]) -> bool:
    for key, sub in value.items():
        if key not in expected or _norm(sub) not in [_norm(a) for a in expected[key]]:
            return False
    return all(key in value or "" in allowed for key, allowed in expected.items())


def _value_ok(value: Any, allowed: list[Any]) -> bool:
    if isinstance(value, dict):
        return any(isinstance(a, dict) and _dict_matches(value, a) for a in allowed)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for option in allowed:
            if (
                isinstance(option, list)
                and len(option) == len(value)
                and all(
                    isinstance(o, dict) and _dict_matches(v, o)
                    for v, o in zip(value, option, strict=True)
                )
            ):
                return True
        return False
    if isinstance(value, str | list):
        return _norm(value) in [_norm(a) for a in allowed if type(a) is type(value)]
    return value in [a for a in allowed if not isinstance(a, str)]


def _check_call(name: str, args: dict[str, Any], function: dict[str, Any], expected: Answer) -> str:
    """Empty string when the call matches the expected answer, else the reason it does not."""
    expected_name, allowed_params = next(iter(expected.items()))
    if name not in (expected_name, expected_name.replace(".", "_")):
        return f"function name {name!r} does not match {expected_name!r}"
    params = function.get("parameters", {})
    props: dict[str, Any] = params.get("properties", {})
    for required in params.get("required", []):
        if required not in args:
            return f"{expected_name}: missing required parameter {required!r}"
    for pname, value in args.items():
        if pname not in props or pname not in allowed_params:
            return f"{expected_name}: unexpected parameter {pname!r}"
        allowed = allowed_params[pname]
        type_name = props[pname].get("type", "any")
        if type_name == "float" and type(value) is int:
            value = float(value)
        if not _type_ok(value, type_name, allowed, props[pname]):
            return (
                f"{expected_name}: parameter {pname!r} should be {type_name}, "
                f"got {type(value).__name__} {value!r}"
            )
        if not _value_ok(value, allowed):
            return f"{expected_name}: parameter {pname!r} value {value!r} not in {allowed!r}"
    for pname, allowed in allowed_params.items():
        if pname not in args and "" not in allowed:
            return f"{expected_name}: parameter {pname!r} missing and not optional"
    return ""


def _function_for(task: BFCLTask, expected: Answer) -> dict[str, Any]:
    name = next(iter(expected))
    for function in task.functions:
        if function["name"] == name:
            return function
    return task.functions[0]


def score_bfcl(task: BFCLTask, tool_calls: Sequence[ToolCall]) -> BFCLScore:
    """Score the calls a model made for ``task`` as the official AST checker would."""
    if task.category == "irrelevance":
        if tool_calls:
            names = ", ".join(c.function.name for c in tool_calls)
            return BFCLScore(correct=False, reason=f"called {names} on an irrelevant request")
        return BFCLScore(correct=True, reason="no call made")
    decoded: list[tuple[str, dict[str, Any]]] = []
    for call in tool_calls:
        try:
            args = json.loads(call.function.arguments or "{}")
        except json.JSONDecodeError:
            return BFCLScore(
                correct=False, reason=f"arguments of {call.function.name} are not valid JSON"
            )
        if not isinstance(args, dict):
            return BFCLScore(
                correct=False, reason=f"arguments of {call.function.name} are not an object"
            )
        decoded.append((call.function.name, args))
    if len(decoded) != len(task.answers):
        return BFCLScore(
            correct=False,
            reason=f"expected {len(task.answers)} call(s), got {len(decoded)}",
        )
    used: set[int] = set()
    for expected in task.answers:
        function = _function_for(task, expected)
        reasons = []
        for i, (name, args) in enumerate(decoded):
            if i in used:
                continue
            reason = _check_call(name, args, function, expected)
            if not reason:
                used.add(i)
                break
            reasons.append(reason)
        else:
            return BFCLScore(correct=False, reason="; ".join(reasons[:3]) or "no call matched")
    return BFCLScore(correct=True, reason="all calls match")


def _first_value(allowed: list[Any]) -> Any:
    value = next(a for a in allowed if a != "")
    if isinstance(value, dict):
        return {k: _first_value(v) for k, v in value.items() if any(a != "" for a in v)}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_first_value([v]) for v in value]
    return value


def reference_calls(task: BFCLTask) -> list[ToolCall]:
    """Calls built from the first allowed value of every answer parameter (scores correct).

    Parameters whose only allowed value is ``""`` (may be omitted) are left out.
    """
    calls = []
    for n, expected in enumerate(task.answers):
        ((name, params),) = expected.items()
        args = {p: _first_value(v) for p, v in params.items() if any(a != "" for a in v)}
        calls.append(
            ToolCall(id=f"call_{n}", function=FunctionCall(name=name, arguments=json.dumps(args)))
        )
    return calls


def bfcl_accuracy(results: Iterable[tuple[BFCLTask, BFCLScore]]) -> dict[str, float]:
    """Fraction correct per category, plus ``overall`` (unweighted mean over tasks)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for task, score in results:
        for key in (task.category, "overall"):
            counts[key][0] += int(score.correct)
            counts[key][1] += 1
    return {key: right / total for key, (right, total) in counts.items()}
