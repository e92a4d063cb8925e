"""The task context: the ``TaskDriver`` a protocol talks to during one task.

Each ``ask`` or ``call_tool`` is one request envelope and one slot in the runner's request
table, which the runner fills with the reply or a typed error; no answer by the deadline is a
timeout. The result, or the recorded failure that replaced it, comes back to the protocol —
never an exception for a lost message.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec
import trio

from agentsim.chat import ChatMessage, Sampling, ToolCall
from agentsim.failures import REPORTABLE, Failure, kinds_of
from agentsim.journal import Journal
from agentsim.protocols.base import AskResult, BudgetExhausted, ToolResult
from agentsim.run import detectors
from agentsim.run.config import sampling as default_sampling
from agentsim.run.requests import Pending, RequestTable
from agentsim.scenario.schema import Scenario
from agentsim.tasks.base import Score, Scorer, Task
from agentsim.wire import Ask, Body, Envelope, Reply, ToolCallMsg, ToolResultMsg

TOOL_KINDS = kinds_of("tool")


class RunServices(Protocol):
    """What a task context uses of the run it belongs to (the runner provides it)."""

    scenario: Scenario
    journal: Journal
    requests: RequestTable

    def record(self, failure: Failure) -> None:
        """Record a failure (journal, per-task list, fault causes)."""
        ...

    def stamp(self, dst: str, body: Body, *, task_id: str = "", round: int = 0) -> Envelope:
        """An envelope from the runner (unique id, next sequence number)."""
        ...

    def post(self, env: Envelope) -> None:
        """Hand an envelope to the broker."""
        ...

    def alive(self, agent: str) -> bool: ...


def jsonable(extra: dict[str, Any]) -> dict[str, Any]:
    """A protocol's ``Outcome.extra`` as plain JSON values (``str()`` where it must)."""
    try:
        return dict(msgspec.to_builtins(extra))
    except TypeError:
        return {k: str(v) for k, v in extra.items()}


@functools.cache
def _schemas(names: tuple[str, ...]) -> list[dict[str, Any]]:
    from agentsim.tools import load_tools, tool_schemas  # tools load on first use only

    return tool_schemas(load_tools(names))


class TaskContext:
    """The ``TaskDriver`` a protocol uses for one task; also counts the task's tokens."""

    def __init__(self, run: RunServices, task: Task, scorer: Scorer) -> None:
        self.run = run
        self.task = task
        self.scenario = run.scenario
        self.scorer = scorer
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.decode_s = 0.0
        self._exchanges: dict[tuple[str, str, str], list[str]] = {}
        self._livelocked = False
        self._crash_noted: set[str] = set()

    @property
    def agents(self) -> list[str]:
        return self.scenario.protocol_agents()

    def alive(self, agent: str) -> bool:
        return self.run.alive(agent)

    def late_replies(self) -> list[AskResult]:
        """Replies of this task that came after their deadline or twice (taken once each)."""
        return self.run.requests.late_replies(self.task.id)

    def tool_schemas(self, agent: str) -> list[dict[str, Any]]:
        names = tuple(self.scenario.agents[agent].tools)
        return _schemas(names) if names else []

    def system_prompt(self, agent: str) -> str:
        return self.scenario.agents[agent].system

    def score(self, text: str) -> Score:
        return self.scorer(self.task, text)

    def fail(
        self,
        kind: str,
        *,
        agents: Sequence[str] = (),
        round: int = 0,
        evidence: Sequence[str] = (),
        detail: str = "",
    ) -> None:
        self.run.record(
            Failure(
                kind=kind,
                task_id=self.task.id,
                agents=list(agents),
                round=round,
                evidence=list(evidence),
                detail=detail,
            )
        )

    def phase(self, protocol: str, phase: str, **fields: Any) -> None:
        self.run.journal.write(
            "phase",
            task_id=self.task.id,
            protocol=protocol,
            phase=phase,
            **msgspec.to_builtins(fields),
        )

    # ----- requests -------------------------------------------------------------------------
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
        budget = self.scenario.protocol.budget_tokens
        if budget and self.prompt_tokens + self.completion_tokens >= budget:
            raise BudgetExhausted(f"token budget {budget} spent before asking {agent}")
        if not self.alive(agent):
            self._agent_down(agent, round, "ask")
            return AskResult(agent=agent, msg_id="", failure="agent_crash", detail="agent is down")
        deadline = deadline_s if deadline_s is not None else self.scenario.protocol.deadline_s
        body = Ask(
            messages=list(messages),
            sampling=sampling or default_sampling(self.scenario, agent),
            tools=tools,
            response_schema=response_schema,
            deadline_s=deadline,
            share_with=list(share_with),
            peer_inbox=peer_inbox,
            peer_template=peer_template,
        )
        env, pending = await self._exchange(agent, body, round, deadline)
        latency = trio.current_time() - pending.t0
        if pending.reply is not None:
            reply = pending.reply.body
            assert isinstance(reply, Reply)
            c = reply.completion
            self.prompt_tokens += c.usage.prompt_tokens
            self.completion_tokens += c.usage.completion_tokens
            self.decode_s += c.timings.prefill_s + c.timings.decode_s
            self._watch_livelock(agent, messages, c.text, env.msg_id, round)
            return AskResult(
                agent=agent,
                msg_id=env.msg_id,
                completion=c,
                peers_seen=list(reply.peers_seen),
                latency_s=latency,
            )
        if pending.error is not None:
            kind, detail = self._errored(agent, env, pending.error, round)
            return AskResult(
                agent=agent, msg_id=env.msg_id, failure=kind, detail=detail, latency_s=latency
            )
        self._expired(
            agent, env, round, "message_timeout", f"no reply from {agent} within {deadline:g}s"
        )
        return AskResult(
            agent=agent, msg_id=env.msg_id, failure="message_timeout", latency_s=latency
        )

    async def call_tool(
        self, agent: str, call: ToolCall, *, round: int = 0, deadline_s: float = 60.0
    ) -> ToolResult:
        """Run a tool call in ``agent``'s process; tool failures are recorded with evidence."""
        name = call.function.name

        def problem(msg_id: str, kind: str, detail: str) -> ToolResult:
            return ToolResult(
                call_id=call.id, name=name, msg_id=msg_id, content="", problem=kind, detail=detail
            )

        if not self.alive(agent):
            self._agent_down(agent, round, "tool call")
            return problem("", "agent_crash", f"{agent} is down")
        body = ToolCallMsg(call_id=call.id, name=name, arguments=call.function.arguments)
        env, pending = await self._exchange(agent, body, round, deadline_s)
        if pending.reply is not None and isinstance(pending.reply.body, ToolResultMsg):
            r = pending.reply.body
            if r.error:
                self.fail(
                    r.error if r.error in TOOL_KINDS else "tool_error",
                    agents=[agent],
                    round=round,
                    evidence=[env.msg_id, pending.reply.msg_id],
                    detail=f"{r.name}: {r.content[:300]}",
                )
            return ToolResult(
                call_id=call.id,
                name=r.name,
                msg_id=env.msg_id,
                content=r.content,
                problem=r.error,
                detail=r.content if r.error else "",
            )
        if pending.error is not None:
            kind, detail = self._errored(agent, env, pending.error, round)
            return problem(env.msg_id, kind, detail)
        self._expired(
            agent, env, round, "tool_timeout", f"{name} gave no result within {deadline_s:g}s"
        )
        return problem(env.msg_id, "tool_timeout", "no result in time")

    async def _exchange(
        self, agent: str, body: Ask | ToolCallMsg, round: int, deadline: float
    ) -> tuple[Envelope, Pending]:
        """Send one request and wait for its answer, an error, or the deadline."""
        env = self.run.stamp(agent, body, task_id=self.task.id, round=round)
        requests = self.run.requests
        pending = requests.open(env.msg_id, agent)
        try:
            self.run.post(env)
            with trio.move_on_after(deadline):
                await pending.done.wait()
        finally:
            requests.close(env.msg_id)
        return env, pending

    def _agent_down(self, agent: str, round: int, what: str) -> None:
        """A request to a dead agent is not sent; the crash is recorded once per task."""
        if agent not in self._crash_noted:
            self._crash_noted.add(agent)
            self.fail(
                "agent_crash",
                agents=[agent],
                round=round,
                detail=f"{agent} is down; {what} not sent",
            )

    def _errored(
        self, agent: str, env: Envelope, error: tuple[str, str], round: int
    ) -> tuple[str, str]:
        """A request answered by a typed error: recorded (a crash once per task), returned."""
        kind, detail = error
        if kind == "agent_crash":
            if agent in self._crash_noted:
                return kind, detail
            self._crash_noted.add(agent)
        recorded = kind if kind in REPORTABLE else "engine_error"
        self.fail(recorded, agents=[agent], round=round, evidence=[env.msg_id], detail=detail[:300])
        return kind, detail

    def _expired(self, agent: str, env: Envelope, round: int, kind: str, detail: str) -> None:
        """No answer by the deadline: an ask's reply may still come (a late reply)."""
        self.run.requests.expire(env.msg_id, keep_late=isinstance(env.body, Ask))
        self.fail(kind, agents=[agent], round=round, evidence=[env.msg_id], detail=detail)

    def _watch_livelock(
        self, agent: str, messages: Sequence[ChatMessage], text: str, msg_id: str, round: int
    ) -> None:
        last = messages[-1].content if messages else ""
        seen = self._exchanges.setdefault((agent, last or "", text), [])
        seen.append(msg_id)
        found = detectors.livelock(agent, seen, task_id=self.task.id, round=round)
        if found is not None and not self._livelocked:
            self._livelocked = True
            self.run.record(found)

    # ----- several at once ------------------------------------------------------------------
    async def ask_all(
        self,
        requests: Mapping[str, Sequence[ChatMessage]],
        *,
        round: int = 0,
        share: bool = False,
        peer_inbox: bool = False,
        peer_template: str = "",
    ) -> dict[str, AskResult]:
        results: dict[str, AskResult] = {}
        names = list(requests)

        async def one(agent: str) -> None:
            share_with = [a for a in names if a != agent] if share else []
            results[agent] = await self.ask(
                agent,
                requests[agent],
                round=round,
                share_with=share_with,
                peer_inbox=peer_inbox,
                peer_template=peer_template,
            )

        async with trio.open_nursery() as nursery:
            for agent in names:
                nursery.start_soon(one, agent)
        return {a: results[a] for a in names}
