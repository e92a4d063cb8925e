"""The grammar of one agent turn under ``constrained = true``, built per tool.

Each tool contributes one alternative: ``{"tool": <its name>, "arguments": <its parameter
schema, closed>}``, where closing a schema means every object in it has
``additionalProperties: false`` (unless the schema says otherwise) and keeps its ``required``
list, types and enums. So a constrained call can only name a real tool, must carry that tool's
required arguments, can hold no invented key and no value of the wrong type: whatever is still
malformed is the model's doing (running out of ``max_tokens`` inside a string, say), not the
grammar's. Function schemas that leave objects open (BFCL's do) are closed the same way.

``seed_grammar`` is the same thing for the seed study's XML protocol, as a Lark grammar (the
``mlc`` engine compiles ``{"x-lark": ...}`` with llguidance): ``<think>...</think>`` then
either ``<action>`` + one closed JSON call + ``</action>`` or ``<final_answer>...</final_answer>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

_OBJECT_KEYS = ("properties", "required", "additionalProperties")


def close_schema(schema: Any) -> Any:
    """A copy of ``schema`` in which every object forbids keys it does not declare."""
    if isinstance(schema, list):
        return [close_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(
            value, dict
        ):
            out[key] = {name: close_schema(sub) for name, sub in value.items()}
        elif key in (
            "items",
            "additionalProperties",
            "anyOf",
            "oneOf",
            "allOf",
            "not",
            "prefixItems",
        ):
            out[key] = close_schema(value)
        else:
            out[key] = value
    is_object = out.get("type") == "object" or (
        "type" not in out and any(k in out for k in _OBJECT_KEYS)
    )
    if is_object:
        out.setdefault("type", "object")
        out.setdefault("properties", {})
        out.setdefault("additionalProperties", False)
    return out


def _functions(tools: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t.get("function", t) for t in tools]


def call_schemas(tools: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One closed ``{"tool", "arguments"}`` schema per tool (OpenAI tool schemas in)."""
    out = []
    for fn in _functions(tools):
        params = close_schema(fn.get("parameters") or {"type": "object", "properties": {}})
        out.append(
            {
                "type": "object",
                "properties": {"tool": {"const": fn["name"]}, "arguments": params},
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    return out


FINAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"final_answer": {"type": "string"}},
    "required": ["final_answer"],
    "additionalProperties": False,
}


def turn_schema(tools: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """JSON Schema of one default-style turn: one call of a real tool, or a final answer."""
    return {"anyOf": [*call_schemas(tools), FINAL_SCHEMA]}


def seed_grammar(
    tools: Iterable[dict[str, Any]], *, max_thought: int = 600, max_answer: int = 300
) -> dict[str, Any]:
    """``{"x-lark": grammar}`` for one seed-style turn (see the module docstring).

    The thought and the answer are bounded in characters so that a turn can end before
    ``max_tokens`` does; the bounds are far above what a short answer needs.
    """
    return seed_grammar_for(call_schemas(tools), max_thought=max_thought, max_answer=max_answer)


def seed_grammar_for(
    calls: list[dict[str, Any]], *, max_thought: int = 600, max_answer: int = 300
) -> dict[str, Any]:
    """A seed-style turn whose ``<action>`` holds one object of ``calls`` (none: answer only)."""
    rules = [
        'start: "<think>" THOUGHT "</think>" SEP (action | final)',
        'final: "<final_answer>" ANSWER "</final_answer>"',
        f"THOUGHT: /[^<]{{0,{max_thought}}}/",
        f"ANSWER: /[^<]{{1,{max_answer}}}/",
        r"SEP: /[ \n]?/",
    ]
    if calls:
        rules.insert(1, 'action: "<action>" call "</action>"')
        # compact JSON, as grammar_from_json_schema is asked for in the engine: flexible
        # whitespace would let a model pad the call with blanks until max_tokens
        compact = {"x-guidance": {"whitespace_flexible": False}, "anyOf": calls}
        rules.insert(2, "call: %json " + json.dumps(compact))
    else:
        rules[0] = 'start: "<think>" THOUGHT "</think>" SEP final'
    return {"x-lark": "\n".join(rules) + "\n"}
