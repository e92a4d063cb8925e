"""The broker: every envelope between any two parties passes through here.

For each frame it decodes (malformed frames are recorded, never fatal), checks who sent it
(the transport's identity is the sender's authenticated name; ``src`` must be that name, the
sender must have joined, and it may only send what ``wire.refusal`` allows — else the frame is
refused and recorded), drops repeated message ids (``duplicate_delivery``), checks the
sequence of what is addressed to the runner (gaps → ``message_lost``), journals every envelope
in arrival order, applies the fault layer, and routes: to the runner, to one agent, or to
every agent (``*``). Every frame in is counted once as accepted, heartbeat, duplicate,
malformed or refused, so the journal accounts for all of them (``stats``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import structlog
import trio

from agentsim.bus.faults import FaultLayer, NoFaults
from agentsim.bus.ledger import (
    ACCEPTED,
    DUPLICATES,
    HEARTBEATS,
    MALFORMED,
    RECEIVED,
    REFUSED,
    RecentIds,
    SenderTally,
    StreamIndex,
)
from agentsim.failures import Failure
from agentsim.journal import Journal
from agentsim.wire import (
    BROADCAST,
    MAX_FRAME_BYTES,
    RUNNER,
    Ask,
    Envelope,
    Heartbeat,
    Hello,
    MalformedFrame,
    SeqGap,
    Shutdown,
    ToolCallMsg,
    body_kind,
    decode,
    encode,
    refusal,
)

log = structlog.get_logger("agentsim.broker")


class Undeliverable(Exception):
    """The destination is not connected (unknown identity, or gone)."""


class Transport(Protocol):
    """Frames in and out of the broker, keyed by the peer's identity.

    The identity of a received frame is the name its sender is known by: the authenticated
    user id where the transport authenticates (CURVE), else the socket identity.
    """

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
        # received = accepted + heartbeats + duplicates + malformed + refused, per sender too
        self.received = 0  # frames in, valid or not, heartbeats included
        self.accepted = 0  # envelopes in, journaled as ``envelope`` lines (dir "in")
        self.heartbeats = 0  # heartbeats in: counted, not journaled
        self.duplicates = 0  # repeated msg ids: ``duplicate`` lines, not routed again
        self.malformed = 0  # frames that do not decode: ``malformed`` lines
        self.refused = 0  # envelopes from the wrong sender or of a forbidden kind: ``refused``
        self.posted = 0  # envelopes the runner sent, journaled
        self.routed = 0
        self.by_sender = SenderTally()
        self.requests: dict[str, str] = {}  # msg id of each Ask / ToolCallMsg posted -> its agent
        self._next_seq: dict[str, int] = {}
        self._seen_ids: dict[str, RecentIds] = {}
        self._index = StreamIndex()
        self._nursery: trio.Nursery | None = None
        self._receiving: trio.CancelScope | None = None
        self._stopped = trio.Event()
        self._backlog: dict[str, deque[tuple[Envelope, bytes, str]]] = {}

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Receive and route until cancelled; after ``stop`` only delayed sends go on."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            batched = getattr(self.transport, "recv_batch", None)
            with trio.CancelScope() as self._receiving:
                task_status.started()
                while True:
                    if batched is not None:
                        for identity, frame in await batched():
                            self._handle(identity, frame)
                    else:
                        identity, frame = await self.transport.recv()
                        self._handle(identity, frame)
                    self.journal.flush()  # per batch: a killed runner loses at most one batch
                    await trio.lowlevel.checkpoint()
            # stopped: what is queued already (the agents' last words) is still recorded
            ready = getattr(self.transport, "recv_ready", None)
            for identity, frame in ready() if ready is not None else []:
                self._handle(identity, frame)
            self.journal.flush()
            self._stopped.set()
            await trio.sleep_forever()

    async def stop(self) -> None:
        """Stop receiving once every frame already queued is handled, in order (called when
        the agents have exited, so what they sent last is recorded, not dropped)."""
        if self._receiving is not None:
            self._receiving.cancel()
            await self._stopped.wait()

    def _fail(self, kind: str, detail: str, **kw: object) -> None:
        self.on_failure(Failure(kind=kind, detail=detail, at=self.journal.now(), **kw))  # type: ignore[arg-type]

    def stats(self) -> dict[str, Any]:
        """Counters for the journal's ``broker_stats``: every frame in falls in one bucket."""
        return {
            "received": self.received,
            "accepted": self.accepted,
            "heartbeats": self.heartbeats,
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "refused": self.refused,
            "posted": self.posted,
            "routed": self.routed,
            "by_sender": self.by_sender.as_dict(),
        }

    def _handle(self, identity: bytes, frame: bytes) -> None:
        self.received += 1
        who = identity.decode("utf-8", "replace")[:256]
        row = self.by_sender.row(who)
        row[RECEIVED] += 1
        try:
            env = decode(frame)
        except MalformedFrame as e:
            self._malformed(who, frame, str(e))
            return
        why = refusal(env, who)
        member = who in self.agents
        if why is None and not member and type(env.body) is not Hello:
            why = f"{who!r} has not joined the run (no Hello accepted)"
        if member and env.src == who and (env.dst in self.agents or env.dst == BROADCAST):
            self._index.note(env)  # refused or not: a receiver may ask what its gap was
        if why is not None:
            self._refuse(who, env, frame, why)
            return
        self.last_seen[who] = trio.current_time()
        if not self._check_order(env):
            self.duplicates += 1
            row[DUPLICATES] += 1
            self.journal.write(
                "duplicate", src=who, msg_id=env.msg_id, kind=body_kind(env.body), bytes=len(frame)
            )
            return
        if isinstance(env.body, Heartbeat):
            self.heartbeats += 1
            row[HEARTBEATS] += 1
            self._route(env, frame)
            return
        self.per_agent[who] = self.per_agent.get(who, 0) + 1
        self.last_activity = self.last_seen[who]
        try:
            self.journal.envelope(env, len(frame), direction="in")
        except (TypeError, ValueError, OverflowError) as e:  # decode should make this impossible
            self._malformed(who, frame, f"cannot be journaled: {e}")
            return
        self.accepted += 1
        row[ACCEPTED] += 1
        self._route(env, frame)

    def _malformed(self, who: str, frame: bytes, reason: str) -> None:
        self.malformed += 1
        self.by_sender.row(who)[MALFORMED] += 1
        self.journal.write(
            "malformed", src=who, bytes=len(frame), head=frame[:32].hex(), reason=reason[:200]
        )
        self._fail("malformed_message", f"from {who!r}: {reason[:200]}", agents=[who])

    def _refuse(self, who: str, env: Envelope, frame: bytes, why: str) -> None:
        self.refused += 1
        self.by_sender.row(who)[REFUSED] += 1
        kind = body_kind(env.body)
        self.journal.write(
            "refused",
            src=who,
            claimed=env.src,
            dst=env.dst,
            kind=kind,
            msg_id=env.msg_id,
            bytes=len(frame),
            reason=why,
        )
        self._fail(
            "refused_message",
            f"{kind} from {who!r} refused: {why}",
            agents=[who],
            task_id=env.task_id,
            evidence=[env.msg_id],
        )

    def explain_gap(self, failure: Failure, gap: SeqGap | None, reporter: str) -> list[Failure]:
        """An agent's gap report as failures citing the lost messages (``StreamIndex``)."""
        return self._index.explain_gap(failure, gap, reporter, self.agents)

    def _check_order(self, env: Envelope) -> bool:
        """Record repeats (False: the envelope must not be routed again) and, for what is
        addressed to the runner, gaps. Streams into agents are checked by their receivers."""
        seen = self._seen_ids.get(env.src)
        if seen is None:
            seen = self._seen_ids[env.src] = RecentIds()
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
        if env.dst != RUNNER:
            return True
        expected = self._next_seq.get(env.src, 1)
        if env.seq > expected:
            self._fail(
                "message_lost",
                f"{env.src} -> runner seq jumped {expected - 1} -> {env.seq}",
                agents=[env.src],
                task_id=env.task_id,
                evidence=[env.msg_id],
            )
        elif env.seq < expected:
            self._fail(
                "out_of_order",
                f"{env.src} -> runner seq {env.seq} after {expected - 1}",
                agents=[env.src],
                task_id=env.task_id,
                evidence=[env.msg_id],
            )
        self._next_seq[env.src] = max(expected, env.seq + 1)
        return True

    def _route(self, env: Envelope, frame: bytes) -> None:
        if env.dst == RUNNER:  # through the fault layer too: replies can be lost
            self._deliver(env, RUNNER, frame)
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
        if len(frame) > MAX_FRAME_BYTES:  # the receiving socket would drop the connection
            self._fail(
                "malformed_message",
                f"runner's {body_kind(env.body)} {env.msg_id} to {env.dst} is {len(frame)} bytes,"
                f" over the {MAX_FRAME_BYTES}-byte frame limit: not sent",
                agents=[env.dst],
                task_id=env.task_id,
                evidence=[env.msg_id],
            )
            return
        if env.dst in self.agents or env.dst == BROADCAST:
            self._index.note(env)
        if isinstance(env.body, Ask | ToolCallMsg):
            self.requests[env.msg_id] = env.dst
        if not isinstance(env.body, Heartbeat):
            self.journal.envelope(env, len(frame), direction="out")
            self.posted += 1
            self.last_activity = trio.current_time()
        if env.dst != BROADCAST:
            self.last_sent[env.dst] = trio.current_time()
        targets = sorted(self.agents) if env.dst == BROADCAST else [env.dst]
        for dst in targets:
            self._deliver(env, dst, frame)
