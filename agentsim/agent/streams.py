"""What an agent checks on every stream it receives: gaps, late arrivals and repeats.

Every sender numbers its messages per destination (``wire.Outbox``), so each stream
``src → dst`` an agent receives — the runner's and each declared peer's — must arrive as
1, 2, 3, ... A gap is not reported at once: a reordered or delayed message may still come. If
it arrives within ``grace_s`` it is reported ``out_of_order``; if not, the gap is reported
``message_lost`` with the missing range (a ``SeqGap``) and the message that revealed it, which
lets the runner name the lost messages and the fault that dropped them. A message id seen
before is a ``duplicate_delivery``. Pure bookkeeping, no I/O: the agent sends the reports.
"""

from __future__ import annotations

from collections import deque

import msgspec

from agentsim.wire import Envelope, SeqGap

_MAX_GAPS = 64  # open gaps per stream; beyond, the oldest is reported lost at once
_RECENT = 512  # message ids per stream remembered for duplicate detection


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """One finding, sent to the runner as an ``Error`` body."""

    kind: str
    detail: str
    ref: str
    task_id: str = ""
    gap: SeqGap | None = None


class _Gap:
    __slots__ = ("first", "last", "opened", "ref", "task_id")

    def __init__(self, first: int, last: int, opened: float, ref: str, task_id: str) -> None:
        self.first = first
        self.last = last
        self.opened = opened
        self.ref = ref
        self.task_id = task_id


class _Stream:
    __slots__ = ("expected", "gaps", "ids", "order")

    def __init__(self) -> None:
        self.expected = 1
        self.gaps: list[_Gap] = []
        self.ids: set[str] = set()
        self.order: deque[str] = deque()

    def remember(self, msg_id: str) -> bool:
        """False when ``msg_id`` was seen already."""
        if msg_id in self.ids:
            return False
        self.ids.add(msg_id)
        self.order.append(msg_id)
        if len(self.order) > _RECENT:
            self.ids.discard(self.order.popleft())
        return True


class InboundStreams:
    """The receiving side's sequence check for one agent (``owner``)."""

    def __init__(self, owner: str, grace_s: float) -> None:
        self.owner = owner
        self.grace_s = grace_s
        self._streams: dict[tuple[str, str], _Stream] = {}

    def see(self, env: Envelope, now: float) -> list[Report]:
        """Account for one accepted envelope; returns what to report now."""
        key = (env.src, env.dst)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
        where = f"{env.src} -> {env.dst}"
        if not stream.remember(env.msg_id):
            return [
                Report(
                    kind="duplicate_delivery",
                    detail=f"{self.owner} got {env.msg_id} ({where} seq {env.seq}) twice",
                    ref=env.msg_id,
                    task_id=env.task_id,
                )
            ]
        seq = env.seq
        if seq == stream.expected:
            stream.expected += 1
            return []
        if seq > stream.expected:
            stream.gaps.append(_Gap(stream.expected, seq - 1, now, env.msg_id, env.task_id))
            stream.expected = seq + 1
            if len(stream.gaps) > _MAX_GAPS:
                return [self._lost(key, stream.gaps.pop(0))]
            return []
        for i, gap in enumerate(stream.gaps):
            if gap.first <= seq <= gap.last:
                rest = [
                    _Gap(a, b, gap.opened, gap.ref, gap.task_id)
                    for a, b in ((gap.first, seq - 1), (seq + 1, gap.last))
                    if a <= b
                ]
                stream.gaps[i : i + 1] = rest
                detail = f"{self.owner} got {where} seq {seq} late, after {gap.last + 1}"
                break
        else:
            detail = f"{self.owner} got {where} seq {seq} after {stream.expected - 1}"
        return [Report(kind="out_of_order", detail=detail, ref=env.msg_id, task_id=env.task_id)]

    def expire(self, now: float) -> list[Report]:
        """Gaps open for ``grace_s`` or more: those messages are lost."""
        out: list[Report] = []
        for key, stream in self._streams.items():
            while stream.gaps and now - stream.gaps[0].opened >= self.grace_s:
                out.append(self._lost(key, stream.gaps.pop(0)))
        return out

    def flush(self) -> list[Report]:
        """Every open gap, as lost (the agent is about to stop)."""
        out = [self._lost(key, g) for key, s in self._streams.items() for g in s.gaps]
        for s in self._streams.values():
            s.gaps.clear()
        return out

    def _lost(self, key: tuple[str, str], gap: _Gap) -> Report:
        src, dst = key
        seqs = f"seq {gap.first}" if gap.first == gap.last else f"seqs {gap.first}..{gap.last}"
        return Report(
            kind="message_lost",
            detail=f"{self.owner} never got {src} -> {dst} {seqs} (next came: {gap.ref})",
            ref=gap.ref,
            task_id=gap.task_id,
            gap=SeqGap(src=src, dst=dst, first=gap.first, last=gap.last),
        )
