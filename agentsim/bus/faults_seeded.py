"""Seeded message faults: the broker asks ``SeededFaults.plan`` how to deliver each envelope.

Every decision — is this delivery dropped, delayed (and by how much), reordered, duplicated —
is a pure function of the fault seed and the message's identity, a keyed hash
(``blake2b(key=seed)``) of the rule and ``src>dst kind task round #n``, where ``n`` counts the
earlier messages of that same (src, dst, kind, task, round). The identity leaves out what
timing decides (message ids carry a pid; sequence numbers count heartbeats), so the same
seed injects the same faults in a rerun whatever order messages arrive in.

Each injected fault is a journal ``fault`` event whose id (``drop-3f2a…``) is derived from
the same hash, and every fault that does harm leaves a failure citing it (see
``agentsim.bus.faults_watch``). Process faults (kill, pause, slow) are carried out by the
runner (``agentsim.run.faults``).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

import trio

from agentsim.bus.faults_spec import (
    DelaySpec,
    FaultConfigError,
    FaultsSpec,
    PartitionSpec,
    Scope,
    parse_faults,
)
from agentsim.bus.faults_watch import Consequences
from agentsim.failures import Failure
from agentsim.journal import Journal
from agentsim.wire import Envelope, Error, Heartbeat, Reply, Shutdown, ToolResultMsg, body_kind

__all__ = [
    "FaultConfigError",
    "FaultsSpec",
    "Fork",
    "SeededFaults",
    "build_fault_layer",
    "parse_faults",
]


def build_fault_layer(scenario: Any, fork: Fork | None = None) -> SeededFaults | None:
    """The fault layer for a scenario (None when ``[faults]`` is empty and no fork)."""
    if not scenario.faults and fork is None:
        return None
    spec = parse_faults(scenario.faults, list(scenario.agents))
    seed = spec.seed if spec.seed is not None else scenario.run.seed
    return SeededFaults(spec, seed=seed, fork=fork)


class Fork(NamedTuple):
    """A replay forked at ``task``: the tasks in ``before`` keep the recorded run's faults,
    ``task`` and what follows get ``spec`` (decided with ``seed``)."""

    task: str
    before: frozenset[str]
    spec: FaultsSpec
    seed: int


def _key(seed: int) -> bytes:
    return hashlib.blake2b(f"agentsim-faults:{seed}".encode(), digest_size=32).digest()


_CONTROL = (Heartbeat, Shutdown)


class SeededFaults:
    """Message faults decided by a keyed hash of (seed, rule, message identity)."""

    def __init__(self, spec: FaultsSpec, *, seed: int, fork: Fork | None = None) -> None:
        self.spec = spec
        self.seed = seed
        self.fork = fork
        self.forked = trio.Event()  # set when the fork task starts (process faults wait on it)
        self._key = _key(seed)
        self._fork_key = _key(fork.seed) if fork is not None else self._key
        self._t0: float | None = None
        self._classes: Counter[tuple[str, str, str, str, int]] = Counter()
        self.by_msg: dict[str, list[str]] = {}
        self.watch = Consequences()
        self.injected = 0

    # ----- wiring -------------------------------------------------------------------------
    def attach(self, report: Callable[[Failure], None]) -> None:
        """Where the failures this layer knows of go (the runner's ``record``)."""
        self.watch.report = report

    def repeats(self, failure: Failure) -> bool:
        """True when ``failure`` reports what this layer already recorded (same kind, same
        message): the receiver confirms it, and it is not counted twice."""
        return self.watch.repeats(failure)

    def start_clock(self) -> None:
        """Faults start now (with the first task, once every agent is ready)."""
        self._t0 = trio.current_time()

    def _now(self) -> float:
        assert self._t0 is not None
        return trio.current_time() - self._t0

    # ----- decisions ----------------------------------------------------------------------
    def identity(self, env: Envelope, dst: str) -> str:
        """The message's timing-free identity (counted per (src, dst, kind, task, round))."""
        kind = body_kind(env.body)
        cls = (env.src, dst, kind, env.task_id, env.round)
        self._classes[cls] += 1
        return f"{env.src}>{dst} {kind} {env.task_id or '-'} r{env.round} #{self._classes[cls]}"

    def draw(self, rule: str, identity: str, key: bytes | None = None) -> float:
        """A number in [0, 1) that depends only on (seed, rule, identity)."""
        data = f"{rule}\x1f{identity}".encode()
        h = hashlib.blake2b(data, key=key or self._key, digest_size=8)
        return int.from_bytes(h.digest(), "big") / 2**64

    def _fault_id(self, rule: str, identity: str, key: bytes) -> str:
        h = hashlib.blake2b(f"id\x1f{rule}\x1f{identity}".encode(), key=key, digest_size=5)
        return f"{rule}-{h.hexdigest()}"

    def _phase(self, env: Envelope, journal: Journal) -> tuple[FaultsSpec, bytes]:
        """The fault table and key that decide ``env``: a fork's from its first task on."""
        fork = self.fork
        if fork is None or env.task_id in fork.before:
            return self.spec, self._key
        if env.task_id and not self.forked.is_set():
            self.forked.set()
            journal.write("fork", task_id=env.task_id, first_task=fork.task)
        if self.forked.is_set():
            return fork.spec, self._fork_key
        return self.spec, self._key

    def partitioned(
        self, env: Envelope, dst: str, now: float, spec: FaultsSpec | None = None
    ) -> PartitionSpec | None:
        """The partition that separates ``env.src`` from ``dst`` now, if any."""
        for p in (spec or self.spec).partition:
            if now < p.start_s or (p.heal_s and now >= p.heal_s):
                continue
            if p.tasks and env.task_id not in p.tasks and not isinstance(env.body, Heartbeat):
                continue
            ga = next((i for i, g in enumerate(p.groups) if env.src in g), None)
            gb = next((i for i, g in enumerate(p.groups) if dst in g), None)
            if ga is not None and gb is not None and ga != gb:
                return p
        return None

    def plan(self, env: Envelope, dst: str, journal: Journal) -> list[tuple[float, str]]:
        """One ``(delay_s, fault_id)`` per copy of ``env`` to deliver to ``dst``."""
        if self._t0 is None:  # faults start with the tasks, once every agent is ready
            return [(0.0, "")]
        s, key = self._phase(env, journal)
        if isinstance(env.body, _CONTROL):
            if isinstance(env.body, Heartbeat) and s.partition:
                # a partition without task scope stops heartbeats too (that is how it shows)
                p = self.partitioned(env, dst, self._now(), s)
                return [] if p is not None and not p.tasks else [(0.0, "")]
            return [(0.0, "")]
        now = self._now()
        ident = self.identity(env, dst)
        self.watch.release(now)

        def hits(rule: str, scope: Scope | None) -> bool:
            return (
                scope is not None
                and _selects(scope, env, dst, now)
                and self.draw(rule, ident, key) < scope.p
            )

        def inject(rule: str, **extra: Any) -> str:
            fid = self._fault_id(rule, ident, key)
            return self._inject(journal, rule, fid, ident, env, dst, **extra)

        if self.partitioned(env, dst, now, s) is not None:
            self.watch.lost(env, dst, inject("partition"), "partition")
            return []
        if hits("drop", s.drop):
            self.watch.lost(env, dst, inject("drop"), "drop")
            return []
        delay, fid = 0.0, ""
        if hits("delay", s.delay):
            assert s.delay is not None
            delay = _amount(s.delay, self.draw("delay.amount", ident, key))
            fid = inject("delay", delay_s=round(delay, 6))
        if hits("reorder", s.reorder):
            assert s.reorder is not None
            # held back so that what follows on the link can overtake it
            extra = s.reorder.window_s * (0.5 + 0.5 * self.draw("reorder.amount", ident, key))
            delay += extra
            fid = inject("reorder", delay_s=round(extra, 6))
        self.watch.passing(env, dst, now, delay, fid)
        copies = [(delay, fid)]
        if hits("duplicate", s.duplicate):
            dup = inject("duplicate")
            self.watch.duplicated(env, dst, dup)
            copies.append((delay + 0.001, dup))
        return copies

    def _inject(
        self,
        journal: Journal,
        rule: str,
        fid: str,
        ident: str,
        env: Envelope,
        dst: str,
        **extra: Any,
    ) -> str:
        self.injected += 1
        self.by_msg.setdefault(env.msg_id, []).append(fid)
        ref = _answers(env)
        if ref:  # a timeout on the request this answers is caused by this fault too
            self.by_msg.setdefault(ref, []).append(fid)
        journal.write(
            "fault",
            fault_id=fid,
            kind=rule,
            identity=ident,
            msg_id=env.msg_id,
            src=env.src,
            dst=dst,
            task_id=env.task_id,
            round=env.round,
            msg_kind=body_kind(env.body),
            **extra,
        )
        return fid


def _answers(env: Envelope) -> str:
    """The request an answer answers ("" for anything else)."""
    body = env.body
    if isinstance(body, Reply | ToolResultMsg | Error):
        return body.in_reply_to
    return ""


def _selects(scope: Scope, env: Envelope, dst: str, now: float) -> bool:
    if now < scope.start_s or (scope.end_s and now >= scope.end_s):
        return False
    if scope.agents and env.src not in scope.agents and dst not in scope.agents:
        return False
    if scope.links and f"{env.src}->{dst}" not in {ln.replace(" ", "") for ln in scope.links}:
        return False
    if scope.tasks and env.task_id not in scope.tasks:
        return False
    return not (scope.kinds and body_kind(env.body) not in scope.kinds)


def _amount(d: DelaySpec, u: float) -> float:
    """The delay for draw ``u`` in [0, 1) under the rule's distribution."""
    if d.dist == "uniform":
        return d.low_s + u * (d.high_s - d.low_s)
    if d.dist == "exponential":
        return -d.mean_s * math.log1p(-u) if d.mean_s > 0 else 0.0
    return d.value_s
