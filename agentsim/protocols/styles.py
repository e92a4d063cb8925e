"""Prompt styles and worked examples shared by ``solo``, ``react`` and ``router``.

``prompt_style = "default"`` is agentsim's own format (a JSON tool call or
``{"final_answer": ...}``, tool results as ``tool`` messages). ``prompt_style = "seed"`` is the
seed study's ReAct protocol: every turn is ``<think>...</think>`` followed by either
``<action>{"tool": ..., "arguments": {...}}</action>`` or ``<final_answer>...</final_answer>``;
tool results come back as ``<observation>...</observation>``; at most five turns; the action
must be one strict JSON object with exactly the keys ``tool`` and ``arguments`` (a Python
dict, a missing key or any text around the JSON inside the tags is ``tool_call_malformed``).

Worked examples (``[tasks] examples = N``) arrive in ``task.meta["examples"]`` as question,
tool steps (with the real tool output) and answer; ``example_messages`` renders them as prior
turns in the style of the protocol that uses them, dropping the steps of tools the agent does
not hold, so every paradigm sees the same examples in its own format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from agentsim.chat import ChatMessage, FunctionCall, ToolCall
from agentsim.protocols.common import DEFAULT_INSTRUCTION
from agentsim.tools import ParsedTurn, format_instructions, parse_tool_calls

SEED_TURNS = 5
_TAG = r"<{0}>(.*?)(?:</{0}>|\Z)"
_ACTION = re.compile(_TAG.format("action"), re.S | re.I)
_FINAL = re.compile(_TAG.format("final_answer"), re.S | re.I)
_THINK = re.compile(_TAG.format("think"), re.S | re.I)
SEED_NUDGE = (
    "Reply with <think>your reasoning</think> followed by either "
    '<action>{"tool": "<tool name>", "arguments": {...}}</action> or '
    "<final_answer>your answer</final_answer>."
)


def seed_instructions(tools: Iterable[dict[str, Any]], *, max_turns: int = SEED_TURNS) -> str:
    """The seed protocol's rules for the system prompt (tools listed with their arguments)."""
    schemas = list(tools)
    lines: list[str] = []
    if schemas:
        listing = format_instructions(schemas).split("\n\nTo use a tool", 1)[0]
        lines += [listing, ""]
    lines += [
        "Answer in this format, one step per turn:",
        "<think>your reasoning</think>",
    ]
    if schemas:
        lines += [
            'then either <action>{"tool": "<tool name>", "arguments": {...}}</action>',
            "and wait for <observation>...</observation>,",
            "or, when you know the answer, <final_answer>your answer</final_answer>.",
            "",
            'Rules: the action is one strict JSON object with exactly the keys "tool" and '
            '"arguments", double quotes, no comments, nothing else inside the tags; use only '
            f"the tools listed; you have at most {max_turns} turns.",
        ]
    else:
        lines.append("then <final_answer>your answer</final_answer>.")
    return "\n".join(lines)


def parse_seed_turn(text: str) -> ParsedTurn:
    """Calls and final answer of a seed-style turn; a broken ``<action>`` is malformed."""
    think = _THINK.search(text)
    thought = think.group(1).strip() if think else ""
    calls: list[ToolCall] = []
    bad: list[str] = []
    for i, match in enumerate(_ACTION.finditer(text)):
        body = match.group(1).strip()
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
        if (
            not isinstance(obj, dict)
            or set(obj) != {"tool", "arguments"}
            or not isinstance(obj["tool"], str)
            or not isinstance(obj["arguments"], dict)
        ):
            bad.append(" ".join(body.split())[:200])
            continue
        calls.append(
            ToolCall(
                id=f"call_{i}",
                function=FunctionCall(name=obj["tool"], arguments=json.dumps(obj["arguments"])),
            )
        )
    final = _FINAL.search(text)
    answer = final.group(1).strip() if final and final.group(1).strip() else None
    if bad:
        return ParsedTurn(
            tool_calls=calls,
            final_answer=answer,
            problem="tool_call_malformed",
            detail="; ".join(bad),
            thought=thought,
        )
    return ParsedTurn(tool_calls=calls, final_answer=answer, thought=thought)


def observation(content: str, name: str, call_id: str, style: str) -> ChatMessage:
    """A tool result as the model sees it: a ``tool`` message, or ``<observation>`` text."""
    if style == "seed":
        return ChatMessage(role="user", content=f"<observation>{content}</observation>")
    return ChatMessage(role="tool", content=content, name=name, tool_call_id=call_id)


def _question(example: Mapping[str, Any]) -> str:
    instruction = str(example.get("instruction") or DEFAULT_INSTRUCTION)
    return f"{example['question']}\n\n{instruction}"


def _call_text(step: Mapping[str, Any], style: str) -> str:
    call = json.dumps({"tool": step["tool"], "arguments": step["arguments"]})
    if style == "seed":
        return f"<think>I will use the {step['tool']} tool.</think>\n<action>{call}</action>"
    return call


def _final_text(answer: str, style: str, mode: str) -> str:
    if style == "seed":
        return f"<think>I have the answer.</think>\n<final_answer>{answer}</final_answer>"
    if mode == "react":
        return json.dumps({"final_answer": answer})
    return f"Final Answer: {answer}"


def example_messages(
    examples: Iterable[Mapping[str, Any]],
    *,
    style: str = "default",
    tools: Iterable[str] = (),
    mode: str = "solo",
) -> list[ChatMessage]:
    """Worked examples as prior turns (``mode``: ``solo`` answers directly, ``react`` acts)."""
    held = set(tools)
    out: list[ChatMessage] = []
    for ex in examples:
        out.append(ChatMessage(role="user", content=_question(ex)))
        if mode == "react":
            for n, step in enumerate(ex.get("steps", [])):
                if step["tool"] not in held:
                    continue
                out.append(ChatMessage(role="assistant", content=_call_text(step, style)))
                out.append(observation(str(step.get("output", "")), step["tool"], f"ex_{n}", style))
        out.append(
            ChatMessage(role="assistant", content=_final_text(str(ex["answer"]), style, mode))
        )
    return out


def route_examples(
    examples: Iterable[Mapping[str, Any]], specialist: str, *, style: str = "default"
) -> list[ChatMessage]:
    """Worked examples for a router supervisor: route to ``specialist``, then answer."""
    out: list[ChatMessage] = []
    for ex in examples:
        out.append(ChatMessage(role="user", content=_question(ex)))
        route = json.dumps({"route": specialist, "task": str(ex["question"]).split("\n")[0]})
        if style == "seed":
            route = f"<think>This is for {specialist}.</think>\n<action>{route}</action>"
        out.append(ChatMessage(role="assistant", content=route))
        out.append(
            ChatMessage(role="user", content=f"Specialist {specialist} answered: {ex['answer']}")
        )
        out.append(
            ChatMessage(role="assistant", content=_final_text(str(ex["answer"]), style, "solo"))
        )
    return out


def final_in(text: str, style: str) -> str | None:
    """The final answer a turn commits to in ``style`` (``None`` when it gives none)."""
    if style == "seed":
        return parse_seed_turn(text).final_answer
    return parse_tool_calls(text).final_answer
