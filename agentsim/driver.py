"""The driver a protocol talks to during one task (``TaskDriver``), over the runner's broker.

Each ``ask`` or ``call_tool`` is one request envelope and one pending slot that the runner's
message handler fills with the reply, a typed error, or nothing (deadline): the result or the
recorded failure comes back to the protocol, never an exception for a lost message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from agentsim.chat import ChatMessage, Sampling, ToolCall
from agentsim.failures import Failure
from agentsim.protocols.base import AskResult, BudgetExhausted, ToolResult
from agentsim.tasks.base import Score, Scorer, Task
from agentsim.wire import Ask, Envelope, Reply, ToolCallMsg, ToolResultMsg

LIVELOCK_REPEATS = 3

if TYPE_CHECKING:
    from agentsim.runner import Runner


class Pending:
    __slots__ = ("agent", "done", "error", "reply", "t0")

    def __init__(self, agent: str, t0: float) -> None:
        self.agent = agent
        self.t0 = t0
        self.done = trio.Event()
        self.reply: Envelope | None = None
        self.error: tuple[str, str] | None = None


KNOWN_ERRORS = {
    "message_lost",
    "malformed_message",
    "context_overflow",
    "engine_error",
    "message_timeout",
    "duplicate_delivery",
    "out_of_order",
    "refused_message",
}
_ASK_ERRORS = KNOWN_ERRORS | {"agent_unresponsive"}
_TOOL_KINDS = {
    "tool_call_malformed",
    "unknown_tool",
    "invalid_tool_arguments",
    "tool_error",
    "tool_timeout",
}


def jsonable(extra: dict[str, Any]) -> dict[str, Any]:
    try:
        return dict(msgspec.to_builtins(extra))
    except TypeError:
        return {k: str(v) for k, v in extra.items()}


class TaskContext:
    """The ``TaskDriver`` a protocol uses for one task."""

    def __init__(self, runner: Runner, task: Task, scorer: Scorer) -> None:
        self.runner = runner
        self.task = task
        self.scenario = runner.scenario
        self.scorer = scorer
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.decode_s = 0.0
        self._exchanges: dict[tuple[str, str, str], list[str]] = {}
        self._livelocked = False

    @property
    def agents(self) -> list[str]:
        return self.scenario.protocol_agents()

    def alive(self, agent: str) -> bool:
        state = self.runner.agents.get(agent)
        return state is not None and state.alive

    def late_replies(self) -> list[AskResult]:
        """Replies of this task that came after their deadline or twice (taken once each)."""
        return self.runner.strays.pop(self.task.id, [])

    def tool_schemas(self, agent: str) -> list[dict[str, Any]]:
        names = tuple(self.scenario.agents[agent].tools)
        if not names:
            return []
        cache = self.runner._schemas
        if names not in cache:
            from agentsim.tools import load_tools, tool_schemas

            cache[names] = tool_schemas(load_tools(names))
        return cache[names]

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
        self.runner.record(
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
        self.runner.journal.write(
            "phase",
            task_id=self.task.id,
            protocol=protocol,
            phase=phase,
            **msgspec.to_builtins(fields),
        )

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
        runner = self.runner
        budget = self.scenario.protocol.budget_tokens
        if budget and self.prompt_tokens + self.completion_tokens >= budget:
            raise BudgetExhausted(f"token budget {budget} spent before asking {agent}")
        if not self.alive(agent):
            if (self.task.id, agent) not in runner._crash_noted:
                runner._crash_noted.add((self.task.id, agent))
                self.fail(
                    "agent_crash",
                    agents=[agent],
                    round=round,
                    detail=f"{agent} is down; ask not sent",
                )
            return AskResult(agent=agent, msg_id="", failure="agent_crash", detail="agent is down")
        deadline = deadline_s if deadline_s is not None else self.scenario.protocol.deadline_s
        sampling = sampling or self.scenario.sampling(agent, seed=runner._agent_seed(agent))
        body = Ask(
            messages=list(messages),
            sampling=sampling,
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
            kind, detail = pending.error
            key = (self.task.id, agent)
            if kind != "agent_crash":
                self.fail(
                    kind if kind in _ASK_ERRORS else "engine_error",
                    agents=[agent],
                    round=round,
                    evidence=[env.msg_id],
                    detail=detail[:300],
                )
            elif key not in runner._crash_noted:
                runner._crash_noted.add(key)
                self.fail(
                    kind, agents=[agent], round=round, evidence=[env.msg_id], detail=detail[:300]
                )
            return AskResult(
                agent=agent, msg_id=env.msg_id, failure=kind, detail=detail, latency_s=latency
            )
        runner.answered.add(env.msg_id)
        runner.timed_out.add(env.msg_id)
        self.fail(
            "message_timeout",
            agents=[agent],
            round=round,
            evidence=[env.msg_id],
            detail=f"no reply from {agent} within {deadline:g}s",
        )
        return AskResult(
            agent=agent, msg_id=env.msg_id, failure="message_timeout", latency_s=latency
        )

    def _watch_livelock(
        self, agent: str, messages: Sequence[ChatMessage], text: str, msg_id: str, round: int
    ) -> None:
        """Repeated identical exchanges: the same agent given the same last message answers
        the same way ``LIVELOCK_REPEATS`` times in one task (recorded once per task)."""
        last = messages[-1].content if messages else ""
        key = (agent, last or "", text)
        seen = self._exchanges.setdefault(key, [])
        seen.append(msg_id)
        if len(seen) == LIVELOCK_REPEATS and not self._livelocked:
            self._livelocked = True
            self.fail(
                "livelock",
                agents=[agent],
                round=round,
                evidence=list(seen),
                detail=f"{agent} gave the same reply to the same message {LIVELOCK_REPEATS} times",
            )

    async def _exchange(
        self, agent: str, body: Ask | ToolCallMsg, round: int, deadline: float
    ) -> tuple[Envelope, Pending]:
        """Send one request and wait for its answer, an error, or the deadline."""
        runner = self.runner
        env = runner.outbox.make(agent, body, task_id=self.task.id, round=round)
        pending = Pending(agent, trio.current_time())
        runner.pending[env.msg_id] = pending
        try:
            runner.broker.post(env)
            with trio.move_on_after(deadline):
                await pending.done.wait()
        finally:
            runner.pending.pop(env.msg_id, None)
        return env, pending

    async def call_tool(
        self, agent: str, call: ToolCall, *, round: int = 0, deadline_s: float = 60.0
    ) -> ToolResult:
        """Run a tool call in ``agent``'s process; tool failures are recorded with evidence."""
        runner = self.runner
        if not self.alive(agent):
            return ToolResult(
                call_id=call.id,
                name=call.function.name,
                msg_id="",
                content="",
                problem="agent_crash",
                detail=f"{agent} is down",
            )
        body = ToolCallMsg(
            call_id=call.id, name=call.function.name, arguments=call.function.arguments
        )
        env, pending = await self._exchange(agent, body, round, deadline_s)
        if pending.reply is not None and isinstance(pending.reply.body, ToolResultMsg):
            r = pending.reply.body
            evidence = [env.msg_id, pending.reply.msg_id]
            if r.error:
                kind = r.error if r.error in _TOOL_KINDS else "tool_error"
                self.fail(
                    kind,
                    agents=[agent],
                    round=round,
                    evidence=evidence,
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
            kind, detail = pending.error
            self.fail(
                kind if kind in _ASK_ERRORS | {"agent_crash"} else "engine_error",
                agents=[agent],
                round=round,
                evidence=[env.msg_id],
                detail=detail[:300],
            )
            return ToolResult(
                call_id=call.id,
                name=call.function.name,
                msg_id=env.msg_id,
                content="",
                problem=kind,
                detail=detail,
            )
        runner.answered.add(env.msg_id)
        self.fail(
            "tool_timeout",
            agents=[agent],
            round=round,
            evidence=[env.msg_id],
            detail=f"{call.function.name} gave no result within {deadline_s:g}s",
        )
        return ToolResult(
            call_id=call.id,
            name=call.function.name,
            msg_id=env.msg_id,
            content="",
            problem="tool_timeout",
            detail="no result in time",
        )

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
