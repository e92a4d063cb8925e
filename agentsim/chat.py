"""OpenAI chat-completions shapes shared by the wire protocol, the engines and the tools.

Messages, tool schemas and tool calls follow the OpenAI chat-completions field names so that
transcripts recorded by agentsim load into the tools people already use.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import msgspec


class FunctionCall(msgspec.Struct, frozen=True, kw_only=True):
    """The function part of a tool call; ``arguments`` is a JSON string, as in OpenAI."""

    name: str
    arguments: str = "{}"


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class Sampling(msgspec.Struct, frozen=True, kw_only=True):
    """Decoding settings. ``temperature == 0`` means greedy; the same seed gives the same text."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int = 0
    max_tokens: int = 256
    stop: list[str] = msgspec.field(default_factory=list)


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One chat completion request.

    ``tools`` holds OpenAI tool schemas (``{"type": "function", "function": {...}}``).
    ``response_schema`` is a JSON Schema the answer must follow when the engine decodes under
    a grammar (``constrained`` agents); engines that cannot constrain ignore it.
    """

    messages: list[ChatMessage]
    sampling: Sampling = msgspec.field(default_factory=Sampling)
    tools: list[dict[str, Any]] | None = None
    response_schema: dict[str, Any] | None = None


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Timings(msgspec.Struct, frozen=True, kw_only=True):
    """Seconds spent waiting, in prefill and in decode."""

    queue_s: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0


FinishReason = Literal["stop", "length", "tool_calls", "error"]


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    """What an engine returns for one ``ChatRequest``."""

    text: str
    finish_reason: FinishReason = "stop"
    tool_calls: list[ToolCall] | None = None
    usage: Usage = msgspec.field(default_factory=Usage)
    timings: Timings = msgspec.field(default_factory=Timings)
    token_ids: list[int] = msgspec.field(default_factory=list)
    seed: int = 0


class EngineInfo(msgspec.Struct, frozen=True, kw_only=True):
    engine: str
    model: str
    load_s: float = 0.0
    threads: int = 1
    context_length: int = 0
    extra: dict[str, str] = msgspec.field(default_factory=dict)


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What an agent process needs to build its engine (sent in ``Configure``).

    Args:
        engine: registry name (``mlc``, ``scripted``, ``openai``, ``llamacpp``, ``replay``...).
        model: model name known to the engine, or a path (e.g. a local ``.gguf``).
        threads: compute threads for this agent; 0 lets the engine choose.
        constrained: decode tool calls and answers under a JSON-Schema grammar when possible.
        seed: the agent's seed, derived from the run seed.
        options: engine-specific settings from the scenario (``[agents.X.options]``).
    """

    engine: str = "mlc"
    model: str = "smollm2-135m-instruct"
    threads: int = 0
    constrained: bool = False
    seed: int = 0
    options: dict[str, Any] = msgspec.field(default_factory=dict)


def request_hash(request: ChatRequest) -> str:
    """A stable digest of what an engine was asked (messages, tools, schema, sampling)."""
    payload = msgspec.json.encode(
        [request.messages, request.tools, request.response_schema, request.sampling], order="sorted"
    )
    return hashlib.blake2b(payload, digest_size=12).hexdigest()
