"""What injected message faults did: the failures the broker can state, citing the fault.

The fault layer knows what it did to each delivery, so it records the harm itself instead of
hoping a receiver notices (a peer message dropped at the end of a stream leaves no gap for
anyone to see):

- dropped (``drop``, ``partition``) → ``message_lost``;
- duplicated → ``duplicate_delivery``;
- held back (``delay``, ``reorder``) and overtaken by a later message on the same link →
  ``out_of_order``;
- a held ``peer`` message that has not arrived when its receiver is asked the round it was
  meant for → ``message_timeout``.

A held ask or reply that misses its deadline needs no record here: the runner times the
request out and ``fault_causes`` cites the delay (the layer files each answer's faults under
the request it answers too). Each failure cites the fault id and the message ids; a
receiver's later report of the same message and kind (an agent that sees the gap) is a
repeat (``repeats``), which the runner journals without counting it twice.
"""

from __future__ import annotations

from collections.abc import Callable

from agentsim.failures import Failure
from agentsim.wire import RUNNER, Ask, Envelope, Peer, body_kind


class _Held:
    __slots__ = ("due", "env", "fid", "late", "overtaken")

    def __init__(self, env: Envelope, due: float, fid: str) -> None:
        self.env = env
        self.due = due
        self.fid = fid
        self.overtaken = False
        self.late = False


def _agents(*names: str) -> list[str]:
    return [n for n in dict.fromkeys(names) if n != RUNNER]


def _what(env: Envelope, dst: str) -> str:
    return f"{body_kind(env.body)} {env.msg_id} {env.src} -> {dst}"


class Consequences:
    """Failures caused by injected message faults, reported through ``report``."""

    def __init__(self) -> None:
        self.report: Callable[[Failure], None] | None = None
        self._held: dict[str, list[_Held]] = {}
        self._recorded: dict[str, set[str]] = {}

    def repeats(self, failure: Failure) -> bool:
        ids = set(self._recorded.get(failure.kind, ()))
        if failure.kind == "out_of_order":  # a receiver that checks only sequence numbers
            ids |= self._recorded.get("duplicate_delivery", set())  # sees a copy as late
        return any(e in ids for e in failure.evidence)

    def _record(self, failure: Failure, *msg_ids: str) -> None:
        if self.report is not None:
            self.report(failure)
        self._recorded.setdefault(failure.kind, set()).update(msg_ids)

    def release(self, now: float) -> None:
        """Forget held messages that have been delivered by ``now``."""
        for dst in [d for d, held in self._held.items() if any(h.due <= now for h in held)]:
            kept = [h for h in self._held[dst] if h.due > now]
            if kept:
                self._held[dst] = kept
            else:
                del self._held[dst]

    def lost(self, env: Envelope, dst: str, fid: str, rule: str) -> None:
        self._harm("message_lost", env, dst, fid, f"dropped by injected {rule} {fid}")

    def duplicated(self, env: Envelope, dst: str, fid: str) -> None:
        self._harm(
            "duplicate_delivery", env, dst, fid, f"delivered twice by injected duplicate {fid}"
        )

    def _harm(self, kind: str, env: Envelope, dst: str, fid: str, what: str) -> None:
        """Record ``kind`` for ``env`` on its way to ``dst``, citing it and fault ``fid``."""
        self._record(
            Failure(
                kind=kind,
                task_id=env.task_id,
                agents=_agents(env.src, dst),
                round=env.round,
                evidence=[env.msg_id, fid],
                detail=f"{_what(env, dst)} {what}",
            ),
            env.msg_id,
        )

    def passing(self, env: Envelope, dst: str, now: float, delay: float, fid: str) -> None:
        """``env`` goes to ``dst`` at ``now + delay``: does it overtake, or come after the
        moment, of something held back? Then remember it if it is held itself."""
        due = now + delay
        asks_round = isinstance(env.body, Ask) and env.body.peer_inbox
        for h in self._held.get(dst, ()):
            if h.due <= due:
                continue
            if h.env.src == env.src and not h.overtaken:
                h.overtaken = True
                self._record(
                    Failure(
                        kind="out_of_order",
                        task_id=h.env.task_id,
                        agents=_agents(h.env.src, dst),
                        round=h.env.round,
                        evidence=[h.env.msg_id, env.msg_id, h.fid],
                        detail=f"{_what(h.env, dst)}, held back by {h.fid}, overtaken by "
                        f"{body_kind(env.body)} {env.msg_id}",
                    ),
                    h.env.msg_id,
                )
            if (
                asks_round
                and isinstance(h.env.body, Peer)
                and not h.late
                and h.env.task_id == env.task_id
                and h.env.round < env.round
            ):
                h.late = True
                self._record(
                    Failure(
                        kind="message_timeout",
                        task_id=h.env.task_id,
                        agents=_agents(h.env.src, dst),
                        round=env.round,
                        evidence=[h.env.msg_id, h.fid],
                        detail=f"{_what(h.env, dst)} (round {h.env.round}), held back by "
                        f"{h.fid}, had not arrived when {dst} was asked round {env.round} "
                        f"({env.msg_id})",
                    ),
                    h.env.msg_id,
                )
        if delay > 0:
            self._held.setdefault(dst, []).append(_Held(env, due, fid))
