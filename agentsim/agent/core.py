"""The agent main loop: hello → configure → load engine → ready → serve asks, beat, exit.

Written against a ``Link`` (send/recv frames) so the same loop runs in an agent process over a
DEALER socket and in-process over the simulated bus. The engine runs in a worker thread so
heartbeats keep flowing while a model decodes; asks are served one at a time, in order.

Every frame is untrusted: one that does not decode, a control message (``Ask``,
``Configure``, ``Shutdown``, ...) from anyone but the runner, or a ``Peer`` message from an
agent that is not a declared peer is refused, logged and reported to the runner — never a
crash. Accepted frames pass the sequence check of their stream (``InboundStreams``).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog
import trio

from agentsim import __version__
from agentsim.agent.inbox import PeerInbox
from agentsim.agent.liveness import AgentExit, refusal, rss_bytes, watch_parent
from agentsim.agent.streams import InboundStreams, Report
from agentsim.chat import ChatRequest, request_hash
from agentsim.engines import Engine, EngineConfig, make_engine
from agentsim.engines.base import ContextOverflow, EngineError
from agentsim.tools.replay import ToolReplay
from agentsim.util import find_exception
from agentsim.wire import (
    BROADCAST,
    RUNNER,
    Ask,
    Configure,
    Envelope,
    Error,
    Heartbeat,
    Hello,
    MalformedFrame,
    Outbox,
    Peer,
    Ready,
    Reply,
    Shutdown,
    ToolCallMsg,
    ToolResultMsg,
    body_kind,
    decode,
    encode,
)

log = structlog.get_logger("agentsim.agent")


class Link(Protocol):
    async def send(self, frame: bytes) -> None: ...
    async def recv(self) -> bytes: ...
    def close(self) -> None: ...


class Agent:
    """One agent: its engine, its peer inbox, and the conversation with the broker."""

    def __init__(
        self,
        link: Link,
        name: str,
        *,
        run_id: str = "",
        engine_factory: Callable[[EngineConfig], Engine] = make_engine,
        pid: int | None = None,
        configure_timeout_s: float = 60.0,
        inline_engine: bool = False,
        parent_pid: int = 0,
    ) -> None:
        self.link = link
        self.name = name
        self.outbox = Outbox(run_id, name)
        self.engine_factory = engine_factory
        self.pid = pid if pid is not None else os.getpid()
        self.configure_timeout_s = configure_timeout_s
        self.inline_engine = inline_engine
        self.parent_pid = parent_pid
        self.engine: Engine | None = None
        self.heartbeat_s = 1.0
        self.broker_timeout_s = 10.0
        self.slow_factor = 1.0
        self.tool_names: list[str] = []
        self.tools: dict[str, Any] = {}
        self.inbox = PeerInbox()
        self.tool_replay: ToolReplay | None = None
        self.busy = False
        self.peers: frozenset[str] = frozenset()
        self.streams = InboundStreams(name, grace_s=2.0)
        self._last_from_runner = 0.0
        self._asks_send, self._asks_recv = trio.open_memory_channel[Envelope](1000)

    async def _send(self, dst: str, body: object, *, task_id: str = "", round: int = 0) -> None:
        env = self.outbox.make(dst, body, task_id=task_id, round=round)  # type: ignore[arg-type]
        await self.link.send(encode(env))

    async def run(self) -> int:
        """Serve until ``Shutdown`` or until the broker goes silent; returns an exit code."""
        try:
            await self._send(
                RUNNER,
                Hello(
                    agent=self.name, pid=self.pid, host=socket.gethostname(), version=__version__
                ),
            )
            config = await self._await_configure()
            await self._load(config)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._beat)
                nursery.start_soon(self._watch_broker)
                nursery.start_soon(self._serve_asks)
                await self._receive(nursery)
        except BaseException as exc:
            e = find_exception(exc, AgentExit)
            if e is None:
                raise
            log.info("agent_exit", agent=self.name, code=e.code, reason=str(e))
            return e.code
        finally:
            if self.engine is not None:
                self.engine.close()
        return 0

    async def _await_configure(self) -> EngineConfig:
        with trio.move_on_after(self.configure_timeout_s):
            while True:
                env = await self._accept(await self.link.recv())
                if env is None:
                    continue
                match env.body:
                    case Configure() as cfg:
                        if not self.outbox.run_id:
                            self.outbox.run_id = env.run_id
                        self.heartbeat_s = cfg.heartbeat_s
                        self.broker_timeout_s = cfg.broker_timeout_s
                        self.slow_factor = cfg.slow_factor
                        self.tool_names = list(cfg.tools)
                        self.peers = frozenset(cfg.peers) - {self.name}
                        self.streams.grace_s = 2 * cfg.heartbeat_s
                        self._last_from_runner = trio.current_time()
                        return cfg.engine
                    case Shutdown(reason=reason):
                        raise AgentExit(0, f"shutdown before configure: {reason}")
                    case _:
                        continue
        raise AgentExit(3, "no Configure from the runner")

    async def _load(self, config: EngineConfig) -> None:
        t0 = time.perf_counter()
        try:
            if self.inline_engine:
                self.engine = self.engine_factory(config)
                if hasattr(self.engine, "virtual"):
                    self.engine.virtual = True
            else:
                self.engine = await trio.to_thread.run_sync(self.engine_factory, config)
        except Exception as e:  # EngineError, or an engine's bug on odd options: reported
            detail = str(e) if isinstance(e, EngineError) else repr(e)[:500]
            await self._send(RUNNER, Error(kind="engine_error", detail=detail))
            raise AgentExit(4, f"engine failed to load: {detail}") from e
        if self.tool_names:
            from agentsim.tools import ToolLoadError, load_tools

            try:
                self.tools = load_tools(self.tool_names)
            except ToolLoadError as e:
                await self._send(RUNNER, Error(kind="engine_error", detail=f"tools: {e}"))
                raise AgentExit(4, f"tools failed to load: {e}") from e
        # a replay answers tool calls with the recorded results instead of running them
        self.tool_replay = ToolReplay.for_engine(config.engine, config.options)
        info = self.engine.info()
        load_s = time.perf_counter() - t0
        await self._send(
            RUNNER,
            Ready(
                agent=self.name,
                pid=self.pid,
                engine=info.engine,
                model=info.model,
                load_s=round(load_s, 4),
                rss_bytes=rss_bytes(),
                threads=info.threads,
                context_length=info.context_length,
                extra=dict(info.extra),
            ),
        )
        log.info(
            "agent_ready", agent=self.name, engine=info.engine, model=info.model, load_s=load_s
        )

    def _decode(self, frame: bytes) -> Envelope | None:
        try:
            return decode(frame)
        except MalformedFrame as e:
            log.warning("malformed_frame", agent=self.name, bytes=len(frame), reason=str(e))
            return None

    async def _accept(self, frame: bytes) -> Envelope | None:
        """Decode, check the sender, check the stream: the envelope to act on, or ``None``
        (already logged and reported to the runner)."""
        env = self._decode(frame)
        if env is None:
            await self._send(
                RUNNER,
                Error(
                    kind="malformed_message",
                    detail=f"{self.name} got {len(frame)} undecodable bytes",
                ),
            )
            return None
        why = refusal(env, self.name, self.peers)
        if why is not None:
            kind = body_kind(env.body)
            log.warning("frame_refused", agent=self.name, src=env.src, kind=kind, reason=why)
            await self._send(
                RUNNER,
                Error(
                    kind="refused_message",
                    detail=f"{self.name} refused {kind} {env.msg_id} from {env.src}: {why}",
                    ref=env.msg_id,
                ),
                task_id=env.task_id,
            )
            if env.dst in (self.name, BROADCAST) and (env.src == RUNNER or env.src in self.peers):
                # a refused message still took its place in a known stream: no false gap
                await self._report(self.streams.see(env, trio.current_time()))
            return None
        if env.src == RUNNER:
            self._last_from_runner = trio.current_time()
        await self._report(self.streams.see(env, trio.current_time()))
        return env

    async def _report(self, reports: list[Report]) -> None:
        for r in reports:
            await self._send(
                RUNNER, Error(kind=r.kind, detail=r.detail, ref=r.ref, gap=r.gap), task_id=r.task_id
            )

    async def _receive(self, nursery: trio.Nursery) -> None:
        while True:
            env = await self._accept(await self.link.recv())
            if env is None:
                continue
            match env.body:
                case Ask() | ToolCallMsg():
                    self._asks_send.send_nowait(env)
                case Peer(content=content):
                    await self._hold(env, content)
                case Shutdown(reason=reason):
                    await self._report(self.streams.flush())
                    nursery.cancel_scope.cancel()
                    raise AgentExit(0, f"shutdown: {reason}")
                case _:
                    pass

    async def _hold(self, env: Envelope, content: str) -> None:
        if not self.inbox.hold(env.task_id, env.round, env.src, env.msg_id, content):
            detail = f"{self.name}'s peer inbox for this task is full; {env.msg_id} dropped"
            await self._send(
                RUNNER,
                Error(kind="refused_message", detail=detail, ref=env.msg_id),
                task_id=env.task_id,
            )

    async def _beat(self) -> None:
        while True:
            queued = self._asks_recv.statistics().current_buffer_used
            await self._send(RUNNER, Heartbeat(busy=self.busy or queued > 0))
            await self._report(self.streams.expire(trio.current_time()))
            await trio.sleep(self.heartbeat_s)

    async def _watch_broker(self) -> None:
        """Exit on our own when the runner has gone silent or died (no orphan agents).

        Silence: no message from the runner for ``broker_timeout_s`` (checked at that
        deadline, not by polling, and again after a moment for what is already queued).
        Death: a spawned agent watches its parent (``liveness.watch_parent``). Both wait
        without waking the process: a thousand idle agents cost the host nothing.
        """
        async with trio.open_nursery() as nursery:
            if self.parent_pid:
                nursery.start_soon(watch_parent, self.parent_pid)
            while True:
                deadline = self._last_from_runner + self.broker_timeout_s
                if trio.current_time() < deadline:
                    await trio.sleep_until(deadline)
                    continue
                # Past the deadline. A process starved of CPU wakes up late with the runner's
                # messages already queued: let the receive loop take them before deciding.
                await trio.sleep(min(1.0, self.heartbeat_s))
                if trio.current_time() - self._last_from_runner >= self.broker_timeout_s:
                    raise AgentExit(5, "broker silent")

    async def _serve_asks(self) -> None:
        async for env in self._asks_recv:
            if isinstance(env.body, ToolCallMsg):
                await self._run_tool(env, env.body)
            elif isinstance(env.body, Ask):
                await self._answer(env, env.body)

    async def _run_tool(self, env: Envelope, msg: ToolCallMsg) -> None:
        """Run one tool call here, in the agent that owns the tool (sandboxed where it matters)."""
        from agentsim.chat import FunctionCall, ToolCall
        from agentsim.tools import run_tool_call

        call = ToolCall(
            id=msg.call_id, function=FunctionCall(name=msg.name, arguments=msg.arguments)
        )
        self.busy = True
        try:
            replay = self.tool_replay
            recorded = replay.answer(msg.name, msg.arguments) if replay else None
            if recorded is not None:
                content, error, elapsed_s = recorded
                if replay is not None and replay.pace:  # as long as the recorded tool took
                    await trio.sleep(elapsed_s)
            else:
                if self.inline_engine:  # simulated agents keep to trio's (virtual) clock
                    outcome = run_tool_call(call, self.tools)
                else:
                    outcome = await trio.to_thread.run_sync(
                        run_tool_call, call, self.tools, abandon_on_cancel=True
                    )
                content, error = outcome.content(), outcome.problem or ""
                elapsed_s = round(outcome.elapsed_s, 6)
        finally:
            self.busy = False
        body = ToolResultMsg(
            call_id=msg.call_id,
            name=msg.name,
            content=content,
            error=error,
            in_reply_to=env.msg_id,
            elapsed_s=elapsed_s,
        )
        await self._send(RUNNER, body, task_id=env.task_id, round=env.round)

    async def _answer(self, env: Envelope, ask: Ask) -> None:
        assert self.engine is not None
        engine = self.engine
        messages, peers_seen = self.inbox.prompt(env.task_id, env.round, ask)
        request = ChatRequest(
            messages=messages,
            sampling=ask.sampling,
            tools=ask.tools,
            response_schema=ask.response_schema,
        )
        self.busy = True
        try:
            t0 = trio.current_time()
            if self.inline_engine:
                completion = engine.chat(request)
                await trio.sleep(float(getattr(engine, "last_latency", 0.0)))
            elif getattr(engine, "nonblocking", False):
                # An engine that answers in microseconds (a scripted one without latency):
                # a hop to a worker thread would cost more than the answer.
                completion = engine.chat(request)
                await trio.lowlevel.checkpoint()
            else:
                completion = await trio.to_thread.run_sync(
                    engine.chat, request, abandon_on_cancel=True
                )
            if self.slow_factor > 1:  # an injected ``slow`` fault: stretch the engine's time
                await trio.sleep((self.slow_factor - 1) * (trio.current_time() - t0))
        except ContextOverflow as e:
            await self._send(
                RUNNER,
                Error(kind="context_overflow", detail=str(e), in_reply_to=env.msg_id),
                task_id=env.task_id,
                round=env.round,
            )
            return
        except Exception as e:  # an engine bug must not take the agent down
            log.warning("engine_failed", agent=self.name, error=repr(e)[:300])
            await self._send(
                RUNNER,
                Error(kind="engine_error", detail=repr(e)[:500], in_reply_to=env.msg_id),
                task_id=env.task_id,
                round=env.round,
            )
            return
        finally:
            self.busy = False
        for peer in ask.share_with:
            if peer != self.name:
                await self._send(
                    peer, Peer(content=completion.text), task_id=env.task_id, round=env.round
                )
        await self._send(
            RUNNER,
            Reply(
                in_reply_to=env.msg_id,
                completion=completion,
                peers_seen=peers_seen,
                request_hash=request_hash(request),
            ),
            task_id=env.task_id,
            round=env.round,
        )
