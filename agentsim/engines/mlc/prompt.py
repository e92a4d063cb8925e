"""Chat messages → prompt text with the model's own (GGUF) chat template; tool calls back out.

Templates of small models often know nothing of tools. Then tool schemas go into the system
message with an instruction to answer ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
(the Hermes/Qwen convention), tool results come back as user turns wrapped in
``<tool_response>``, and earlier assistant tool calls are rendered in the same tagged form.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agentsim.chat import ChatMessage, FunctionCall, ToolCall
from agentsim.engines.base import EngineError

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: Gemma's turn format, for Gemma files without a template (the base models carry none):
#: roles ``user`` and ``model``; a system message opens the first user turn. BOS is added
#: by the engine (``add_bos``), not here.
GEMMA_TURNS = (
    "{% set ns = namespace(prefix='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set ns.prefix = ns.prefix + message['content'] + '\n\n' %}"
    "{% else %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else 'user') + '\n' }}"
    "{% if message['role'] != 'assistant' %}{{ ns.prefix }}{% set ns.prefix = '' %}{% endif %}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

_TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*(?:</tool_call>|$)", re.DOTALL)


def _raise(message: str) -> None:
    raise EngineError(f"chat template: {message}")


class PromptRenderer:
    """Renders requests with one compiled template (built once per engine)."""

    def __init__(self, template: str | None, bos_token: str, eos_token: str) -> None:
        self.source = template or CHATML
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        env.filters["tojson"] = lambda v, indent=None: json.dumps(v, indent=indent)
        try:
            self.template = env.from_string(self.source)
        except TemplateError as e:
            raise EngineError(f"the model's chat template does not parse: {e}") from e
        self.bos_token, self.eos_token = bos_token, eos_token
        self.knows_tools = "tools" in self.source
        self.knows_tool_role = "'tool'" in self.source or '"tool"' in self.source
        self.knows_tool_calls = "tool_calls" in self.source

    def render(self, messages: list[ChatMessage], tools: list[dict[str, Any]] | None) -> str:
        msgs = [self._message(m) for m in messages]
        if tools and not self.knows_tools:
            msgs = _with_tool_system(msgs, tools)
        ctx: dict[str, Any] = {
            "messages": msgs,
            "add_generation_prompt": True,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        }
        if tools and self.knows_tools:
            ctx["tools"] = tools
        try:
            return str(self.template.render(**ctx))
        except (TemplateError, TypeError) as e:
            raise EngineError(f"chat template failed to render the request: {e}") from e

    def _message(self, m: ChatMessage) -> dict[str, Any]:
        content = m.content or ""
        if m.role == "tool" and not self.knows_tool_role:
            name = f' name="{m.name}"' if m.name else ""
            return {
                "role": "user",
                "content": f"<tool_response{name}>\n{content}\n</tool_response>",
            }
        out: dict[str, Any] = {"role": m.role, "content": content}
        if m.name:
            out["name"] = m.name
        if m.tool_call_id:
            out["tool_call_id"] = m.tool_call_id
        if m.tool_calls:
            if self.knows_tool_calls:
                out["tool_calls"] = [_call_dict(c) for c in m.tool_calls]
            else:
                tagged = "\n".join(_tagged(c) for c in m.tool_calls)
                out["content"] = f"{content}\n{tagged}".strip()
        return out


def _call_dict(c: ToolCall) -> dict[str, Any]:
    return {
        "id": c.id,
        "type": "function",
        "function": {"name": c.function.name, "arguments": _loads(c.function.arguments)},
    }


def _loads(s: str) -> Any:
    try:
        return json.loads(s)
    except ValueError:
        return s


def _tagged(c: ToolCall) -> str:
    body = json.dumps({"name": c.function.name, "arguments": _loads(c.function.arguments)})
    return f"<tool_call>\n{body}\n</tool_call>"


def _with_tool_system(
    msgs: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    lines = "\n".join(json.dumps(t.get("function", t)) for t in tools)
    text = (
        "You can call these functions:\n<tools>\n"
        f"{lines}\n</tools>\n"
        "To call a function, answer with only:\n"
        '<tool_call>\n{"name": "<function name>", "arguments": {<arguments as JSON>}}\n</tool_call>'
    )
    if msgs and msgs[0]["role"] == "system":
        first = dict(msgs[0], content=f"{msgs[0]['content']}\n\n{text}")
        return [first, *msgs[1:]]
    return [{"role": "system", "content": text}, *msgs]


def parse_tool_calls(text: str, tools_given: bool) -> tuple[str, list[ToolCall] | None]:
    """Split generated text into (content, tool calls) for ``<tool_call>`` JSON blocks.

    With tools given, a reply that is one bare JSON object with a ``name`` also counts.
    """
    found: list[dict[str, Any]] = []
    for m in _TOOL_CALL.finditer(text):
        obj = _loads(m.group(1))
        if isinstance(obj, dict) and isinstance(obj.get("name"), str):
            found.append(obj)
    content = _TOOL_CALL.sub("", text).strip() if found else text
    if not found and tools_given:
        obj = _loads(text.strip())
        if isinstance(obj, dict) and isinstance(obj.get("name"), str):
            found, content = [obj], ""
    if not found:
        return text, None
    calls = []
    for i, obj in enumerate(found):
        args = obj.get("arguments", obj.get("parameters", {}))
        arg_s = args if isinstance(args, str) else json.dumps(args)
        calls.append(
            ToolCall(id=f"call_{i}", function=FunctionCall(name=obj["name"], arguments=arg_s))
        )
    return content, calls
