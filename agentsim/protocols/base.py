"""The driver API protocols are written against, and the protocol base class.

A protocol never touches sockets: it asks agents through a ``TaskDriver`` and records
failures through it. The same protocol therefore runs on the ZeroMQ bus and on the
in-process simulated bus.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import msgspec

from agentsim.chat import ChatMessage, Completion, Sampling, ToolCall
from agentsim.scenario import Scenario
from agentsim.tasks.base import Score, Task


class AskResult(msgspec.Struct, frozen=True, kw_only=True):
    """What came back for one ``ask``: a completion, or the failure kind that replaced it."""

    agent: str
    msg_id: str
    completion: Completion | None = None
    failure: str = ""
    detail: str = ""
    peers_seen: list[str] = msgspec.field(default_factory=list)
    latency_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.completion is not None

    @property
    def text(self) -> str:
        return self.completion.text if self.completion is not None else ""


class ToolResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a tool call gave; ``problem`` is a failure kind when it failed (already recorded)."""

    call_id: str
    name: str
    msg_id: str
    content: str
    problem: str = ""
    detail: str = ""

    def as_message(self) -> ChatMessage:
        text = (
            self.content
            if not self.problem
            else f"Error ({self.problem}): {self.detail or self.content}"
        )
        return ChatMessage(role="tool", content=text, name=self.name, tool_call_id=self.call_id)


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """A protocol's result for one task. ``final`` is False when no final answer was produced."""

    answer: str
    final: bool = True
    rounds: int = 1
    by: str = ""
    extra: dict[str, Any] = msgspec.field(default_factory=dict)


class BudgetExhausted(Exception):
    """A task's token or step budget ran out (recorded as ``unaware_of_termination``)."""


class TaskDriver(Protocol):
    """What a protocol may do during one task."""

    task: Task
    scenario: Scenario

    @property
    def agents(self) -> list[str]:
        """Agents taking part in the protocol, in scenario order."""
        ...

    def alive(self, agent: str) -> bool: ...

    async def ask(
        self,
        agent: str,
        messages: Sequence[ChatMessage],
        *,
        round: int = 0,
        tools: list[dict[str, Any]] | None = None,
        response_schema: dict[str, Any] | None = None,
        sampling: Sampling | None = None,
        deadline_s: float | None = None,
        share_with: Sequence[str] = (),
        peer_inbox: bool = False,
        peer_template: str = "",
    ) -> AskResult:
        """Send one ``Ask`` and wait for its reply, error or deadline."""
        ...

    async def call_tool(
        self, agent: str, call: ToolCall, *, round: int = 0, deadline_s: float = 60.0
    ) -> ToolResult:
        """Run one tool call in the agent's process (its sandbox, its limits)."""
        ...

    def tool_schemas(self, agent: str) -> list[dict[str, Any]]:
        """OpenAI tool schemas of the tools ``agent`` holds."""
        ...

    def late_replies(self) -> list[AskResult]:
        """Replies to this task's asks that arrived after their deadline, or a second time.

        ``msg_id`` is the ask's id, so a protocol that accepts late answers can tell whether
        it already counted one for that ask.
        """
        ...

    async def ask_all(
        self,
        requests: Mapping[str, Sequence[ChatMessage]],
        *,
        round: int = 0,
        share: bool = False,
        peer_inbox: bool = False,
        peer_template: str = "",
    ) -> dict[str, AskResult]:
        """Ask several agents at once; with ``share`` each answer goes to the others as a Peer."""
        ...

    def fail(
        self,
        kind: str,
        *,
        agents: Sequence[str] = (),
        round: int = 0,
        evidence: Sequence[str] = (),
        detail: str = "",
    ) -> None:
        """Record a failure for this task."""
        ...

    def phase(self, protocol: str, phase: str, **fields: Any) -> None:
        """Record a protocol phase transition."""
        ...

    def score(self, text: str) -> Score:
        """Score a candidate answer against this task's gold answer (for detectors)."""
        ...

    def system_prompt(self, agent: str) -> str: ...


class BaseProtocol(ABC):
    """A protocol: an explicit phase machine over the driver API.

    Subclasses declare ``name``, a ``Phase`` enum, ``ALLOWED`` transitions, and implement
    ``run_task``. Every phase change goes through ``enter``: an invalid transition is recorded
    as a ``role_violation`` failure, then raised.
    """

    name: ClassVar[str] = ""
    termination: ClassVar[str] = ""
    final_answer: ClassVar[str] = ""

    class Phase(enum.Enum):
        START = "start"
        DONE = "done"

    ALLOWED: ClassVar[Mapping[str, frozenset[str]]] = {}

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.spec = scenario.protocol
        self.agents = scenario.protocol_agents()

    def enter(
        self, driver: TaskDriver, current: enum.Enum, new: enum.Enum, **fields: Any
    ) -> enum.Enum:
        allowed = self.ALLOWED.get(str(current.value))
        if allowed is not None and str(new.value) not in allowed:
            driver.fail(
                "role_violation",
                detail=f"{self.name}: {current.value} -> {new.value} is not allowed",
            )
            raise RuntimeError(f"invalid transition {current.value} -> {new.value} in {self.name}")
        driver.phase(self.name, str(new.value), **fields)
        return new

    def base_messages(self, driver: TaskDriver, agent: str, user: str) -> list[ChatMessage]:
        system = driver.system_prompt(agent)
        msgs = [ChatMessage(role="system", content=system)] if system else []
        msgs.append(ChatMessage(role="user", content=user))
        return msgs

    @abstractmethod
    async def run_task(self, task: Task, driver: TaskDriver) -> Outcome:
        """Drive one task to its final answer (or record why there is none)."""
