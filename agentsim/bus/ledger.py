"""The broker's books: who sent what (every frame in one bucket), recent ids, stream indexes.

Kept apart from routing so that ``Broker`` stays about the path of a frame. Everything here
is bounded: senders (``MAX_SENDERS`` rows, then one shared row), ids per sender, and the last
``STREAM_MEMORY`` messages of each stream into an agent.
"""

from __future__ import annotations

from collections import deque

import msgspec

from agentsim.failures import Failure
from agentsim.wire import BROADCAST, Envelope, SeqGap

MAX_SENDERS = 1024
OTHERS = "(others)"
COLUMNS = ("received", "accepted", "heartbeats", "duplicates", "malformed", "refused")
STREAM_MEMORY = 512
RECEIVED, ACCEPTED, HEARTBEATS, DUPLICATES, MALFORMED, REFUSED = range(6)


class RecentIds:
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


class SenderTally:
    """Per sender: frames received, and in which bucket each one ended (``COLUMNS``)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = {}

    def row(self, who: str) -> list[int]:
        row = self.rows.get(who)
        if row is None:
            if len(self.rows) >= MAX_SENDERS:
                who = OTHERS
                row = self.rows.get(who)
            if row is None:
                row = self.rows[who] = [0, 0, 0, 0, 0, 0]
        return row

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {k: dict(zip(COLUMNS, v, strict=True)) for k, v in self.rows.items()}


class StreamIndex:
    """The last ids of each stream into an agent, by seq: what a receiver's gap lost."""

    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], dict[int, tuple[str, str]]] = {}

    def note(self, env: Envelope) -> None:
        stream = self._streams.get((env.src, env.dst))
        if stream is None:
            stream = self._streams[(env.src, env.dst)] = {}
        stream[env.seq] = (env.msg_id, env.task_id)
        if len(stream) > STREAM_MEMORY:
            del stream[next(iter(stream))]

    def explain_gap(
        self, failure: Failure, gap: SeqGap | None, reporter: str, members: set[str]
    ) -> list[Failure]:
        """An agent's report of a gap in a stream into it, as failures: one per task whose
        messages the gap lost, each citing those messages (which passed the broker: the fault
        layer knows what became of them) and naming the sender too. At most 32 per gap."""
        if gap is None or gap.dst not in (reporter, BROADCAST):  # only its own streams
            return [failure]
        agents = [*failure.agents, *([gap.src] if gap.src in members else [])]
        stream = self._streams.get((gap.src, gap.dst), {})
        by_task: dict[str, list[str]] = {}
        for seq in range(gap.first, min(gap.last, gap.first + 31) + 1):
            if seq in stream:
                msg_id, task_id = stream[seq]
                by_task.setdefault(task_id, []).append(msg_id)
        if not by_task:
            return [msgspec.structs.replace(failure, agents=agents)]
        return [
            msgspec.structs.replace(
                failure, task_id=task, agents=agents, evidence=[*failure.evidence, *ids]
            )
            for task, ids in by_task.items()
        ]
