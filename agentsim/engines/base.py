"""The engine contract: one small model (or a stand-in) per agent process.

Engines are synchronous and CPU/GPU bound; the agent process runs ``chat`` in a worker thread
so that heartbeats keep flowing while a model decodes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from agentsim.chat import ChatRequest, Completion, EngineInfo
from agentsim.chat import EngineConfig as EngineConfig  # re-exported: it travels in Configure


class EngineError(Exception):
    """An engine could not produce a completion (recorded, the agent keeps serving)."""


class ContextOverflow(EngineError):
    """The prompt does not fit the model's context window (a ``context_overflow`` failure)."""

    def __init__(self, prompt_tokens: int, context_length: int) -> None:
        super().__init__(
            f"prompt of {prompt_tokens} tokens does not fit the context of {context_length}"
        )
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length


class EngineUnavailable(EngineError):
    """The engine cannot be built here (package missing, offline, unsupported model)."""


@runtime_checkable
class Engine(Protocol):
    """One model behind the OpenAI chat-completions shape."""

    def chat(self, request: ChatRequest) -> Completion:
        """Generate one completion. Raises ``ContextOverflow`` or ``EngineError``."""
        ...

    def info(self) -> EngineInfo:
        """Model, engine, load time and settings, for the ``Ready`` handshake."""
        ...

    def close(self) -> None:
        """Release memory and threads."""
        ...
