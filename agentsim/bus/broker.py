"""The broker: every envelope between any two parties passes through here.

It decodes (malformed frames are recorded, never fatal), checks per-sender sequence numbers
and message ids (gaps → ``message_lost``, repeats → ``duplicate_delivery``), journals every
envelope in arrival order, applies the fault layer, and routes: to the runner, to one agent,
or to every agent (``*``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

import structlog
import trio

from agentsim.bus.faults import FaultLayer, NoFaults
from agentsim.failures import Failure
from agentsim.journal import Journal
from agentsim.wire import (
    BROADCAST,
    RUNNER,
    Envelope,
    Heartbeat,
    MalformedFrame,
    Shutdown,
    body_kind,
    decode,
    encode,
)

log = structlog.get_logger("agentsim.broker")


class Undeliverable(Exception):
    """The destination is not connected (unknown identity, or gone)."""


class Transport(Protocol):
    """Frames in and out of the broker, keyed by the peer's identity."""

    async def recv(self) -> tuple[bytes, bytes]:
        """Next ``(identity, frame)``; a multi-part or empty frame comes back as ``b""``."""
        ...

    async def send(self, identity: bytes, frame: bytes) -> None:
        """Deliver one frame; raises ``Undeliverable`` when the identity is not connected."""
        ...

    def send_nowait(self, identity: bytes, frame: bytes) -> bool:
        """Deliver now if possible; False when it would block. May raise ``Undeliverable``."""
        ...

    def close(self) -> None: ...


class _RecentIds:
    """The last ``size`` message ids of one sender: duplicate detection in bounded memory."""

    def __init__(self, size: int = 4096) -> None:
        self._order: deque[str] = deque()
        self._set: set[str] = set()
        self._size = size

    def __contains__(self, msg_id: str) -> bool:
        return msg_id in self._set

    def add(self, msg_id: str) -> None:
        self._order.append(msg_id)
        self._set.add(msg_id)
        if len(self._order) > self._size:
            self._set.discard(self._order.popleft())


class Broker:
    """Routes envelopes; the runner hands it ``on_message`` and ``on_failure`` callbacks."""

    def __init__(
        self,
        transport: Transport,
        journal: Journal,
        *,
        on_message: Callable[[Envelope], None],
        on_failure: Callable[[Failure], None],
        faults: FaultLayer | None = None,
    ) -> None:
        self.transport = transport
        self.journal = journal
        self.on_message = on_message
        self.on_failure = on_failure
        self.faults: FaultLayer = faults or NoFaults()
        self.agents: set[str] = set()
        self.last_seen: dict[str, float] = {}
        self.last_sent: dict[str, float] = {}  # trio time of the runner's last envelope to each
        self.per_agent: dict[str, int] = {}
        self.held = 0  # envelopes held back by a delay fault: still in flight
        self.last_activity = 0.0  # trio time of the last envelope (not heartbeat) in or out
        self.received = 0  # frames in, valid or not, heartbeats included
        self.accepted = 0  # envelopes in, journaled (heartbeats are counted, not journaled)
        self.posted = 0  # envelopes the runner sent, journaled
        self.routed = 0
        self._next_seq: dict[str, int] = {}
        self._seen_ids: dict[str, _RecentIds] = {}
        self._nursery: trio.Nursery | None = None
        self._backlog: dict[str, deque[tuple[Envelope, bytes, str]]] = {}

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            batched = getattr(self.transport, "recv_batch", None)
            while True:
                if batched is not None:
                    for identity, frame in await batched():
                        self._handle(identity, frame)
                else:
                    identity, frame = await self.transport.recv()
                    self._handle(identity, frame)
                self.journal.flush()  # per batch: a killed runner loses at most one batch
                await trio.lowlevel.checkpoint()

    def _fail(self, kind: str, detail: str, **kw: object) -> None:
        self.on_failure(Failure(kind=kind, detail=detail, at=self.journal.now(), **kw))  # type: ignore[arg-type]

    def _handle(self, identity: bytes, frame: bytes) -> None:
        self.received += 1
        who = identity.decode("utf-8", "replace")
        try:
            env = decode(frame)
        except MalformedFrame as e:
            self.journal.write("malformed", src=who, bytes=len(frame), head=frame[:32].hex())
            self._fail("malformed_message", f"from {who!r}: {e}", agents=[who])
            return
        if env.src != who:
            self.journal.write("malformed", src=who, bytes=len(frame), head=frame[:32].hex())
            self._fail(
                "malformed_message", f"src {env.src!r} does not match socket {who!r}", agents=[who]
            )
            return
        self.last_seen[who] = trio.current_time()
        if not isinstance(env.body, Heartbeat):
            self.per_agent[who] = self.per_agent.get(who, 0) + 1
            self.last_activity = self.last_seen[who]
        if not self._check_order(env):
            return
        if not isinstance(env.body, Heartbeat):
            self.journal.envelope(env, len(frame), direction="in")
            self.accepted += 1
        self._route(env, frame)

    def _check_order(self, env: Envelope) -> bool:
        """Record gaps and repeats; False when the envelope must not be routed again."""
        seen = self._seen_ids.get(env.src)
        if seen is None:
            seen = self._seen_ids[env.src] = _RecentIds()
        if env.msg_id in seen:
            self._fail(
                "duplicate_delivery",
                f"{env.msg_id} from {env.src} arrived twice",
                agents=[env.src],
                task_id=env.task_id,
                evidence=[env.msg_id],
            )
            return False
        seen.add(env.msg_id)
        expected = self._next_seq.get(env.src, 1)
        if env.seq > expected:
            self._fail(
                "message_lost",
                f"{env.src} seq jumped {expected - 1} -> {env.seq}",
                agents=[env.src],
                task_id=env.task_id,
                evidence=[env.msg_id],
            )
        elif env.seq < expected:
            self._fail(
                "out_of_order",
                f"{env.src} seq {env.seq} after {expected - 1}",
                agents=[env.src],
                task_id=env.task_id,
                evidence=[env.msg_id],
            )
        self._next_seq[env.src] = max(expected, env.seq + 1)
        return True

    def _route(self, env: Envelope, frame: bytes) -> None:
        if env.dst == RUNNER:
            self.routed += 1
            self.on_message(env)
            return
        targets = sorted(self.agents - {env.src}) if env.dst == BROADCAST else [env.dst]
        for dst in targets:
            self._deliver(env, dst, frame)

    def _deliver(self, env: Envelope, dst: str, frame: bytes) -> None:
        for delay, fault_id in self.faults.plan(env, dst, self.journal):
            if delay <= 0:
                self._send_now(env, dst, frame, fault_id)
            else:
                assert self._nursery is not None
                self._nursery.start_soon(self._send_later, delay, env, dst, frame, fault_id)

    async def _send_later(
        self, delay: float, env: Envelope, dst: str, frame: bytes, fault_id: str
    ) -> None:
        self.held += 1
        try:
            await trio.sleep(delay)
        finally:
            self.held -= 1
        self._send_now(env, dst, frame, fault_id)

    def _send_now(self, env: Envelope, dst: str, frame: bytes, fault_id: str = "") -> None:
        if dst == RUNNER:
            self.routed += 1
            self.on_message(env)
            return
        backlog = self._backlog.get(dst)
        if backlog is None:
            try:
                if self.transport.send_nowait(dst.encode(), frame):
                    self.routed += 1
                    return
            except Undeliverable:
                self._undeliverable(env, dst, fault_id)
                return
            backlog = self._backlog[dst] = deque()
            assert self._nursery is not None
            self._nursery.start_soon(self._drain, dst)
        backlog.append((env, frame, fault_id))

    async def _drain(self, dst: str) -> None:
        """Send a destination's backlog in order (only used when its queue is full)."""
        backlog = self._backlog[dst]
        try:
            while backlog:
                env, frame, fault_id = backlog[0]
                try:
                    await self.transport.send(dst.encode(), frame)
                    self.routed += 1
                except Undeliverable:
                    self._undeliverable(env, dst, fault_id)
                backlog.popleft()
        finally:
            del self._backlog[dst]

    def _undeliverable(self, env: Envelope, dst: str, fault_id: str) -> None:
        if isinstance(env.body, Heartbeat | Shutdown):  # to an agent already gone: nothing lost
            return
        self._fail(
            "undeliverable",
            f"{env.msg_id} ({body_kind(env.body)}) to {dst}: not connected",
            agents=[dst],
            task_id=env.task_id,
            evidence=[env.msg_id, *([fault_id] if fault_id else [])],
        )

    def post(self, env: Envelope) -> None:
        """Send an envelope that originates in the runner (journaled, then faults, then out)."""
        frame = encode(env)
        if not isinstance(env.body, Heartbeat):
            self.journal.envelope(env, len(frame), direction="out")
            self.posted += 1
            self.last_activity = trio.current_time()
        if env.dst != BROADCAST:
            self.last_sent[env.dst] = trio.current_time()
        targets = sorted(self.agents) if env.dst == BROADCAST else [env.dst]
        for dst in targets:
            self._deliver(env, dst, frame)
