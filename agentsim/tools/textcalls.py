"""Tool calls and final answers written as text, the way small models emit them.

Recognised forms (anywhere in the text, also inside code fences):

- ``{"tool": "calculator", "arguments": {...}}`` and ``{"name": ..., "arguments": ...}``
  (``parameters`` is accepted for ``arguments``);
- ``<tool_call>{...}</tool_call>`` (Qwen / Hermes templates);
- a final answer: ``{"final_answer": ...}``, a line ``Final Answer: ...`` or ``#### 42``.

Python-style dicts (single quotes, ``True``) are accepted. Something that looks like an
attempted call but does not parse is reported as ``tool_call_malformed`` with the snippet.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from agentsim.chat import FunctionCall, ToolCall
from agentsim.tools.base import Tool

_NAME_KEYS = ("tool", "name", "function", "tool_name")
_ARG_KEYS = ("arguments", "parameters", "args", "tool_input")
_CALL_HINT = re.compile(r"[\"']?(tool|name|function|arguments|parameters|final_answer)[\"']?\s*:")
_FINAL_LINE = re.compile(r"^[ \t>*_]*final[ _]answer[ \t*_]*:[ \t*_]*(.*)$", re.I | re.M)
_HASH_LINE = re.compile(r"^[ \t]*####[ \t]*(.+?)[ \t]*$", re.M)
_TAGGED = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.S)
_OPENERS = re.compile(r"(```[\w-]*|<tool_call>)\s*$")
_SNIPPET_CHARS = 200
_MAX_SCAN_CHARS = 20_000
_MAX_ATTEMPTS = 64


class ParsedTurn(msgspec.Struct, frozen=True, kw_only=True):
    """What one model turn said: tool calls, a final answer, or a malformed attempt.

    ``thought`` is the text before the first call or answer. When a turn holds both calls and
    a final answer, both are kept; the protocol decides (ReAct runs the calls first).
    """

    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    final_answer: str | None = None
    problem: Literal["tool_call_malformed"] | None = None
    detail: str = ""
    thought: str = ""


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET_CHARS else text[: _SNIPPET_CHARS - 3] + "..."


def _balanced_end(text: str, start: int) -> int:
    """Index after the brace that closes ``text[start]``, or ``len(text)`` if none does."""
    depth = 0
    quote = ""
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def _decode_object(text: str) -> dict[str, Any] | None:
    """A JSON object, or failing that a Python dict literal; None when neither parses."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            # literal_eval can also fail deep inside on odd input; any failure means "not a dict"
            return None
    return value if isinstance(value, dict) else None


def _final_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class _Builder:
    def __init__(self) -> None:
        self.calls: list[ToolCall] = []
        self.final: str | None = None
        self.malformed: list[str] = []
        self.first_at: int | None = None

    def mark(self, at: int) -> None:
        if self.first_at is None or at < self.first_at:
            self.first_at = at

    def add_object(self, obj: dict[str, Any], at: int, *, tagged: bool) -> bool:
        """Record ``obj`` if it is a call or an answer; returns whether it was one."""
        if "final_answer" in obj:
            if self.final is None:
                self.final = _final_text(obj["final_answer"])
            self.mark(at)
            return True
        name_key = next((k for k in _NAME_KEYS if isinstance(obj.get(k), str)), None)
        arg_key = next((k for k in _ARG_KEYS if k in obj), None)
        if isinstance(obj.get("function"), dict) and not tagged:
            # OpenAI shape: {"type": "function", "function": {"name": ..., "arguments": ...}}
            return self.add_object(obj["function"], at, tagged=True)
        if name_key is None or (arg_key is None and not (tagged or name_key == "tool")):
            if tagged:
                self.malformed.append(_snippet(json.dumps(obj)))
                self.mark(at)
                return True
            return False
        if arg_key is None:
            args: object = {k: v for k, v in obj.items() if k != name_key}
        else:
            args = obj[arg_key]
        arguments = args if isinstance(args, str) else json.dumps(args)
        call_id = f"call_{len(self.calls)}"
        self.calls.append(
            ToolCall(id=call_id, function=FunctionCall(name=obj[name_key], arguments=arguments))
        )
        self.mark(at)
        return True


def _scan_objects(text: str, offset: int, builder: _Builder, *, tagged: bool) -> None:
    # Bounded work: pathological text (thousands of unmatched braces) must stay cheap.
    text = text[:_MAX_SCAN_CHARS]
    attempts = 0
    i = text.find("{")
    while i != -1 and attempts < _MAX_ATTEMPTS:
        attempts += 1
        end = _balanced_end(text, i)
        chunk = text[i:end]
        obj = _decode_object(chunk)
        if obj is not None and builder.add_object(obj, offset + i, tagged=tagged):
            i = text.find("{", end)
            continue
        if obj is None and _CALL_HINT.search(chunk):
            builder.malformed.append(_snippet(chunk))
            builder.mark(offset + i)
            i = text.find("{", end)
            continue
        i = text.find("{", i + 1)


def parse_tool_calls(text: str) -> ParsedTurn:
    """Find the tool calls and the final answer in a model's text; never raises."""
    builder = _Builder()
    tagged = list(_TAGGED.finditer(text))
    if tagged:
        for match in tagged:
            body = match.group(1)
            before = len(builder.calls) + len(builder.malformed)
            _scan_objects(body, match.start(1), builder, tagged=True)
            if len(builder.calls) + len(builder.malformed) == before:
                builder.malformed.append(_snippet(match.group(0)))
                builder.mark(match.start())
        rest = _TAGGED.sub(" ", text)
    else:
        _scan_objects(text, 0, builder, tagged=False)
        rest = text
    if builder.final is None:
        for pattern in (_FINAL_LINE, _HASH_LINE):
            found = pattern.search(rest)
            if found and found.group(1).strip():
                answer = found.group(1).strip()
                if pattern is _FINAL_LINE:
                    answer = rest[found.start(1) :].strip()
                builder.final = answer.strip("*_ ").strip()
                builder.mark(text.find(found.group(0)) if found.group(0) in text else 0)
                break
    thought_end = builder.first_at if builder.first_at is not None else len(text)
    thought = _OPENERS.sub("", text[:thought_end]).strip()
    if builder.malformed:
        return ParsedTurn(
            tool_calls=builder.calls,
            final_answer=builder.final,
            problem="tool_call_malformed",
            detail="; ".join(builder.malformed),
            thought=thought,
        )
    return ParsedTurn(tool_calls=builder.calls, final_answer=builder.final, thought=thought)


def _as_schemas(tools: Iterable[Tool | dict[str, Any]]) -> list[dict[str, Any]]:
    return [t.schema() if isinstance(t, Tool) else t for t in tools]


def _describe_params(params: dict[str, Any]) -> str:
    props: dict[str, Any] = params.get("properties", {})
    required = set(params.get("required", []))
    parts = []
    for pname, prop in props.items():
        kind = prop.get("type", "any")
        flag = "" if pname in required else ", optional"
        desc = f": {prop['description']}" if prop.get("description") else ""
        parts.append(f"    - {pname} ({kind}{flag}){desc}")
    return "\n".join(parts) if parts else "    (no arguments)"


def format_instructions(tools: Iterable[Tool | dict[str, Any]]) -> str:
    """The system-prompt text that lists the tools and states the call and answer format."""
    lines = ["You can use these tools:"]
    for schema in _as_schemas(tools):
        fn = schema["function"]
        lines.append(f"- {fn['name']}: {fn.get('description', '')}".rstrip())
        lines.append(_describe_params(fn.get("parameters", {})))
    lines += [
        "",
        "To use a tool, reply with exactly one JSON object and nothing after it:",
        '{"tool": "<tool name>", "arguments": {"<argument>": <value>}}',
        "You will then receive the tool's result.",
        "When you know the answer, reply with:",
        '{"final_answer": "<your answer>"}',
    ]
    return "\n".join(lines)


def turn_schema(tools: Iterable[Tool | dict[str, Any]]) -> dict[str, Any]:
    """JSON Schema for one turn: one tool call or a final answer (for constrained decoding)."""
    options: list[dict[str, Any]] = []
    for schema in _as_schemas(tools):
        fn = schema["function"]
        options.append(
            {
                "type": "object",
                "properties": {
                    "tool": {"const": fn["name"]},
                    "arguments": fn.get("parameters", {"type": "object"}),
                },
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    options.append(
        {
            "type": "object",
            "properties": {"final_answer": {"type": "string"}},
            "required": ["final_answer"],
            "additionalProperties": False,
        }
    )
    return {"anyOf": options}
