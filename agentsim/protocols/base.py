"""The driver API protocols are written against, and the protocol base class.

A protocol never touches sockets: it asks agents through a ``TaskDriver`` and records
failures through it. The same protocol therefore runs on the ZeroMQ bus and on the
in-process simulated bus.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
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


class InvalidTransition(RuntimeError):
    """A protocol asked for a phase change its transition table does not allow."""


class PhaseMachine:
    """One task's walk through a protocol's phases: where it is, and the one way to move.

    ``to`` journals every transition as a ``phase`` event; one the table does not allow is
    recorded as a ``role_violation`` failure, then raised (``InvalidTransition``).
    """

    def __init__(
        self,
        protocol: str,
        transitions: Mapping[enum.Enum, frozenset[enum.Enum]],
        start: enum.Enum,
        driver: TaskDriver,
    ) -> None:
        self.protocol = protocol
        self.transitions = transitions
        self.current = start
        self.driver = driver

    def to(self, new: enum.Enum, **fields: Any) -> None:
        """Enter phase ``new`` (``fields`` go into the journal's phase event)."""
        if new not in self.transitions.get(self.current, frozenset()):
            self.driver.fail(
                "role_violation",
                detail=f"{self.protocol}: {self.current.value} -> {new.value} is not allowed",
            )
            raise InvalidTransition(
                f"invalid transition {self.current.value} -> {new.value} in {self.protocol}"
            )
        self.driver.phase(self.protocol, str(new.value), **fields)
        self.current = new


class BaseProtocol(ABC):
    """A protocol: an explicit phase machine over the driver API.

    Subclasses declare ``name``, a ``Phase`` enum (with ``START`` and ``DONE``) and
    ``TRANSITIONS`` — the phases each phase may move to, as members of ``Phase`` — and
    implement ``run_task``, moving through ``self.phases(driver).to(...)``. The table is
    checked when the class is defined, so a typo fails at import, not mid-run.
    """

    name: ClassVar[str] = ""
    termination: ClassVar[str] = ""
    final_answer: ClassVar[str] = ""

    class Phase(enum.Enum):
        START = "start"
        DONE = "done"

    TRANSITIONS: ClassVar[Mapping[Any, Collection[Any]]] = {}
    _transitions: ClassVar[Mapping[enum.Enum, frozenset[enum.Enum]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "TRANSITIONS" not in cls.__dict__:
            return
        phase = cls.Phase
        for name in ("START", "DONE"):
            if name not in phase.__members__:
                raise TypeError(f"{cls.__name__}.Phase must have a {name} member")
        table: dict[enum.Enum, frozenset[enum.Enum]] = {}
        for src, targets in cls.TRANSITIONS.items():
            for member in (src, *targets):
                if not isinstance(member, phase):
                    raise TypeError(
                        f"{cls.__name__}.TRANSITIONS must use {cls.__name__}.Phase members, "
                        f"got {member!r}"
                    )
            table[src] = frozenset(targets)
        stuck = [m.name for m in phase if m.name != "DONE" and m not in table]
        if stuck:
            raise TypeError(f"{cls.__name__}.TRANSITIONS has no way out of {', '.join(stuck)}")
        start: enum.Enum = phase["START"]
        reached, todo = {start}, [start]
        while todo:
            for nxt in table.get(todo.pop(), frozenset()) - reached:
                reached.add(nxt)
                todo.append(nxt)
        unreached = [m.name for m in phase if m not in reached]
        if unreached:
            raise TypeError(
                f"{cls.__name__}.TRANSITIONS never reaches {', '.join(unreached)} from START"
            )
        cls._transitions = table

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.spec = scenario.protocol
        self.agents = scenario.protocol_agents()

    def phases(self, driver: TaskDriver) -> PhaseMachine:
        """A fresh phase machine for one task, at ``Phase.START``."""
        return PhaseMachine(self.name, self._transitions, self.Phase["START"], driver)

    def base_messages(self, driver: TaskDriver, agent: str, user: str) -> list[ChatMessage]:
        system = driver.system_prompt(agent)
        msgs = [ChatMessage(role="system", content=system)] if system else []
        msgs.append(ChatMessage(role="user", content=user))
        return msgs

    @abstractmethod
    async def run_task(self, task: Task, driver: TaskDriver) -> Outcome:
        """Drive one task to its final answer (or record why there is none)."""
