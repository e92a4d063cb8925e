"""The request table: every request the runner sent that waits for an answer.

The runner owns one table per run. A task context opens a slot for each ``Ask`` or
``ToolCallMsg`` it sends and waits on it; the runner's message handler fills the slot with
the reply or a typed error; the context closes it. What happens to an answer that comes late,
twice, or for nothing known is decided here, once, for asks and tool calls alike.
"""

from __future__ import annotations

import enum

import trio

from agentsim.protocols.base import AskResult
from agentsim.wire import Envelope, Reply


class Pending:
    """One open request: who it went to, when, and (once set) its reply or error."""

    __slots__ = ("agent", "done", "error", "reply", "t0")

    def __init__(self, agent: str, t0: float) -> None:
        self.agent = agent
        self.t0 = t0
        self.done = trio.Event()
        self.reply: Envelope | None = None
        self.error: tuple[str, str] | None = None


class Delivery(enum.Enum):
    """What an incoming answer was, relative to the request it names."""

    ANSWERED = "answered"  # filled an open request
    LATE = "late"  # its request had already timed out
    DUPLICATE = "duplicate"  # its request was already answered
    UNKNOWN = "unknown"  # names no request this run sent


class RequestTable:
    """Pending, answered and timed-out requests, and the late or duplicate replies kept."""

    def __init__(self) -> None:
        self.pending: dict[str, Pending] = {}
        self.answered: set[str] = set()
        self.timed_out: set[str] = set()
        self.strays: dict[str, list[AskResult]] = {}

    def open(self, msg_id: str, agent: str) -> Pending:
        pending = Pending(agent, trio.current_time())
        self.pending[msg_id] = pending
        return pending

    def close(self, msg_id: str) -> None:
        self.pending.pop(msg_id, None)

    def deliver(self, env: Envelope, ref: str) -> Delivery:
        """An answer (``Reply`` or ``ToolResultMsg``) to request ``ref`` came in.

        A late or repeated ``Reply`` is kept where the protocol may look (``late_replies``).
        """
        if ref in self.timed_out:
            outcome = Delivery.LATE
        elif ref in self.answered:
            outcome = Delivery.DUPLICATE
        elif (pending := self.pending.get(ref)) is not None:
            self.answered.add(ref)
            pending.reply = env
            pending.done.set()
            return Delivery.ANSWERED
        else:
            return Delivery.UNKNOWN
        if isinstance(env.body, Reply):
            self.strays.setdefault(env.task_id, []).append(
                AskResult(
                    agent=env.src,
                    msg_id=ref,
                    completion=env.body.completion,
                    peers_seen=list(env.body.peers_seen),
                )
            )
        return outcome

    def reject(self, ref: str, kind: str, detail: str) -> bool:
        """A typed error answers request ``ref``; False when no open request took it."""
        pending = self.pending.get(ref)
        if pending is None or ref in self.answered:
            return False
        self.answered.add(ref)
        pending.error = (kind, detail)
        pending.done.set()
        return True

    def reject_agent(self, agent: str, kind: str, detail: str) -> None:
        """Every open request to ``agent`` fails with ``kind`` (it crashed or went silent)."""
        for ref, pending in list(self.pending.items()):
            if pending.agent == agent and not pending.done.is_set():
                self.reject(ref, kind, detail)

    def expire(self, ref: str, *, keep_late: bool) -> None:
        """Request ``ref`` got nothing by its deadline; with ``keep_late`` a reply that still
        comes is a late reply (asks), otherwise a duplicate (tool calls)."""
        self.answered.add(ref)
        if keep_late:
            self.timed_out.add(ref)

    def waiting(self) -> dict[str, Pending]:
        """The requests still waiting for an answer, by msg id."""
        return {m: p for m, p in self.pending.items() if not p.done.is_set()}

    def late_replies(self, task_id: str) -> list[AskResult]:
        """Late or duplicate replies of ``task_id`` (each handed out once)."""
        return self.strays.pop(task_id, [])
