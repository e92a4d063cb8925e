"""Seeded fault injection from the scenario's ``[faults]`` table.

Message faults are applied by the broker on each delivery (``SeededFaults.plan``); process
faults (kill, pause, slow) are carried out by the runner at their time. All draws come from
one ``random.Random`` seeded by the run seed, so a run's faults repeat with its seed. Each
injected fault is a journal ``fault`` event with an id that failures cite as evidence.

::

    [faults]
    drop = { p = 0.1, agents = ["bob"], kinds = ["reply"] }   # per agent (either end)
    delay = { p = 1.0, dist = "uniform", low_s = 0.01, high_s = 0.2, links = ["runner->bob"] }
    duplicate = { p = 0.05 }
    reorder = { p = 0.2, window_s = 0.05 }
    partition = [{ groups = [["alice"], ["bob", "carol"]], start_s = 1.0, heal_s = 5.0 }]
    kill = [{ agent = "bob", at_s = 3.0 }, { agent = "carol", after_messages = 40 }]
    pause = [{ agent = "bob", at_s = 2.0, duration_s = 3.0 }]
    slow = [{ agent = "bob", factor = 3.0 }]
"""

from __future__ import annotations

import itertools
import random
import re
from typing import Annotated, Any, Literal

import msgspec
import trio

from agentsim.journal import Journal
from agentsim.wire import RUNNER, Envelope, Heartbeat, body_kind

Prob = Annotated[float, msgspec.Meta(ge=0, le=1)]
NonNeg = Annotated[float, msgspec.Meta(ge=0)]


class _F(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    pass


class Scope(_F, frozen=True):
    """Which deliveries a message fault applies to (empty = all)."""

    p: Prob = 1.0
    agents: list[str] = msgspec.field(default_factory=list)
    links: list[str] = msgspec.field(default_factory=list)
    kinds: list[str] = msgspec.field(default_factory=list)
    start_s: NonNeg = 0.0
    end_s: NonNeg = 0.0


class DelaySpec(Scope, frozen=True):
    dist: Literal["fixed", "uniform", "exponential"] = "fixed"
    value_s: NonNeg = 0.05
    low_s: NonNeg = 0.0
    high_s: NonNeg = 0.1
    mean_s: NonNeg = 0.05


class ReorderSpec(Scope, frozen=True):
    window_s: NonNeg = 0.05


class PartitionSpec(_F, frozen=True):
    groups: list[list[str]]
    start_s: NonNeg = 0.0
    heal_s: NonNeg = 0.0


class KillSpec(_F, frozen=True):
    agent: str
    at_s: NonNeg = 0.0
    after_messages: Annotated[int, msgspec.Meta(ge=0)] = 0


class PauseSpec(_F, frozen=True):
    agent: str
    at_s: NonNeg = 0.0
    duration_s: NonNeg = 1.0


class SlowSpec(_F, frozen=True):
    agent: str
    factor: Annotated[float, msgspec.Meta(ge=1)] = 2.0


class FaultsSpec(_F, frozen=True):
    drop: Scope | None = None
    delay: DelaySpec | None = None
    duplicate: Scope | None = None
    reorder: ReorderSpec | None = None
    partition: list[PartitionSpec] = msgspec.field(default_factory=list)
    kill: list[KillSpec] = msgspec.field(default_factory=list)
    pause: list[PauseSpec] = msgspec.field(default_factory=list)
    slow: list[SlowSpec] = msgspec.field(default_factory=list)


class FaultConfigError(ValueError):
    pass


def parse_faults(raw: dict[str, Any], agents: list[str]) -> FaultsSpec:
    """Decode and check ``[faults]``; errors read ``FIELD RULE`` (the caller adds the place)."""
    try:
        spec = msgspec.convert(raw, FaultsSpec)
    except msgspec.ValidationError as e:
        msg = str(e)
        path = msg.rsplit(" - at `$", 1)
        field = "faults" + (path[1].rstrip("`") if len(path) == 2 else "")
        rule = re.sub(r"^Expected `(\w+)` ", "must be ", path[0])
        rule = re.sub(r", got `[^`]+`$", "", rule)
        unknown = re.match(r"Object contains unknown field `([^`]+)`", rule)
        if unknown:
            raise FaultConfigError(f"{field}.{unknown.group(1)} is not a known key") from None
        raise FaultConfigError(f"{field} {rule[0].lower() + rule[1:]}") from None
    known = set(agents) | {RUNNER}
    named: list[tuple[str, str]] = []
    for i, p in enumerate(spec.partition):
        named += [(f"faults.partition[{i}].groups", a) for g in p.groups for a in g]
    named += [(f"faults.kill[{i}].agent", it.agent) for i, it in enumerate(spec.kill)]
    named += [(f"faults.pause[{i}].agent", it.agent) for i, it in enumerate(spec.pause)]
    named += [(f"faults.slow[{i}].agent", it.agent) for i, it in enumerate(spec.slow)]
    for key in ("drop", "delay", "duplicate", "reorder"):
        scope = getattr(spec, key)
        if scope is not None:
            named += [(f"faults.{key}.agents", a) for a in scope.agents]
            for link in scope.links:
                src, sep, dst = link.partition("->")
                if not sep:
                    raise FaultConfigError(
                        f"faults.{key}.links must look like 'a->b', got {link!r}"
                    )
                named += [
                    (f"faults.{key}.links", src.strip()),
                    (f"faults.{key}.links", dst.strip()),
                ]
    for field, agent in named:
        if agent not in known:
            raise FaultConfigError(f"{field} must name a declared agent, got {agent!r}")
    return spec


def build_fault_layer(scenario: Any) -> SeededFaults | None:
    """The fault layer for a scenario, or None when ``[faults]`` is empty."""
    if not scenario.faults:
        return None
    spec = parse_faults(scenario.faults, list(scenario.agents))
    return SeededFaults(spec, seed=scenario.run.seed)


class SeededFaults:
    """Message faults drawn from one seeded RNG, journaled as ``fault`` events."""

    def __init__(self, spec: FaultsSpec, *, seed: int) -> None:
        self.spec = spec
        self.rng = random.Random(seed ^ 0x5EED)
        self._ids = itertools.count(1)
        self._t0: float | None = None
        self.by_msg: dict[str, list[str]] = {}

    def _now(self) -> float:
        assert self._t0 is not None
        return trio.current_time() - self._t0

    def start_clock(self) -> None:
        self._t0 = trio.current_time()

    @staticmethod
    def _matches(scope: Scope, env: Envelope, dst: str, now: float) -> bool:
        if now < scope.start_s or (scope.end_s and now >= scope.end_s):
            return False
        if scope.agents and env.src not in scope.agents and dst not in scope.agents:
            return False
        if scope.links and f"{env.src}->{dst}" not in {ln.replace(" ", "") for ln in scope.links}:
            return False
        return not (scope.kinds and body_kind(env.body) not in scope.kinds)

    def partitioned(self, a: str, b: str, now: float) -> bool:
        for p in self.spec.partition:
            if now < p.start_s or (p.heal_s and now >= p.heal_s):
                continue
            ga = next((i for i, g in enumerate(p.groups) if a in g), None)
            gb = next((i for i, g in enumerate(p.groups) if b in g), None)
            if ga is not None and gb is not None and ga != gb:
                return True
        return False

    def _fault(self, journal: Journal, kind: str, env: Envelope, dst: str, **extra: Any) -> str:
        fid = f"fault-{next(self._ids)}"
        self.by_msg.setdefault(env.msg_id, []).append(fid)
        journal.write(
            "fault",
            fault_id=fid,
            kind=kind,
            msg_id=env.msg_id,
            src=env.src,
            dst=dst,
            task_id=env.task_id,
            msg_kind=body_kind(env.body),
            **extra,
        )
        return fid

    def plan(self, env: Envelope, dst: str, journal: Journal) -> list[tuple[float, str]]:
        if self._t0 is None:  # faults start with the tasks, once every agent is ready
            return [(0.0, "")]
        if isinstance(env.body, Heartbeat) and not self.spec.partition:
            return [(0.0, "")]
        now = self._now()
        s = self.spec
        if self.partitioned(env.src, dst, now):
            if isinstance(env.body, Heartbeat):
                return []
            self._fault(journal, "partition", env, dst)
            return []
        if isinstance(env.body, Heartbeat):
            return [(0.0, "")]
        if s.drop and self._matches(s.drop, env, dst, now) and self.rng.random() < s.drop.p:
            self._fault(journal, "drop", env, dst)
            return []
        delay, fid = 0.0, ""
        if s.delay and self._matches(s.delay, env, dst, now) and self.rng.random() < s.delay.p:
            d = s.delay
            if d.dist == "uniform":
                delay = self.rng.uniform(d.low_s, d.high_s)
            elif d.dist == "exponential":
                delay = self.rng.expovariate(1 / d.mean_s) if d.mean_s > 0 else 0.0
            else:
                delay = d.value_s
            fid = self._fault(journal, "delay", env, dst, delay_s=round(delay, 6))
        if (
            s.reorder
            and self._matches(s.reorder, env, dst, now)
            and self.rng.random() < s.reorder.p
        ):
            extra = self.rng.uniform(0, s.reorder.window_s)
            delay += extra
            fid = self._fault(journal, "reorder", env, dst, delay_s=round(extra, 6))
        copies = [(delay, fid)]
        if (
            s.duplicate
            and self._matches(s.duplicate, env, dst, now)
            and self.rng.random() < s.duplicate.p
        ):
            dup = self._fault(journal, "duplicate", env, dst)
            copies.append((delay + 0.001, dup))
        return copies
