"""The scenario's ``[faults]`` table: its schema and the checks that need no run.

::

    [faults]
    seed = 11                                                 # default: run.seed
    drop = { p = 0.1, agents = ["bob"], kinds = ["reply"] }   # per agent (either end)
    delay = { p = 1.0, dist = "uniform", low_s = 0.01, high_s = 0.2, links = ["runner->bob"] }
    duplicate = { p = 0.05, tasks = ["gsm8k-3"] }
    reorder = { p = 0.2, window_s = 0.05 }
    partition = [{ groups = [["alice"], ["bob", "carol"]], start_s = 1.0, heal_s = 5.0 }]
    kill = [{ agent = "bob", at_s = 3.0 }, { agent = "carol", after_messages = 40 }]
    pause = [{ agent = "bob", at_s = 2.0, duration_s = 3.0 }]
    slow = [{ agent = "bob", factor = 3.0 }]

A message rule applies to the deliveries its scope selects (every one when the scope is
empty): ``agents`` (either end), ``links`` (``"src->dst"``), ``kinds`` (body kinds),
``tasks`` (task ids) and a window ``start_s``..``end_s`` in seconds from the first task.
Whether a selected delivery is hit is decided by ``p`` from the fault seed and the message's
identity (``agentsim.bus.faults_seeded``); a window in seconds is, by nature, as repeatable
as the run's timing — ``tasks`` is the exactly repeatable way to aim a fault.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

import msgspec

from agentsim.wire import RUNNER

Prob = Annotated[float, msgspec.Meta(ge=0, le=1)]
NonNeg = Annotated[float, msgspec.Meta(ge=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
Seed = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]

MessageKind = Literal["ask", "reply", "peer", "tool_call", "tool_result", "error"]
"""Body kinds a message fault may select (control messages — hello, configure, ready,
heartbeat, shutdown — are run machinery, not part of an experiment; only a partition stops
heartbeats)."""

MESSAGE_RULES = ("drop", "delay", "duplicate", "reorder")
PROCESS_RULES = ("kill", "pause", "slow")


class _F(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    pass


class Scope(_F, frozen=True):
    """Which deliveries a message fault applies to (empty = all), and how often."""

    p: Prob = 1.0
    agents: list[str] = msgspec.field(default_factory=list)
    links: list[str] = msgspec.field(default_factory=list)
    kinds: list[MessageKind] = msgspec.field(default_factory=list)
    tasks: list[str] = msgspec.field(default_factory=list)
    start_s: NonNeg = 0.0
    end_s: NonNeg = 0.0


class DelaySpec(Scope, frozen=True):
    dist: Literal["fixed", "uniform", "exponential"] = "fixed"
    value_s: NonNeg = 0.05
    low_s: NonNeg = 0.0
    high_s: NonNeg = 0.1
    mean_s: NonNeg = 0.05


class ReorderSpec(Scope, frozen=True):
    window_s: Positive = 0.05


class PartitionSpec(_F, frozen=True):
    groups: list[list[str]]
    start_s: NonNeg = 0.0
    heal_s: NonNeg = 0.0
    tasks: list[str] = msgspec.field(default_factory=list)


class KillSpec(_F, frozen=True):
    agent: str
    at_s: NonNeg = 0.0
    after_messages: Annotated[int, msgspec.Meta(ge=0, le=2**31)] = 0


class PauseSpec(_F, frozen=True):
    agent: str
    at_s: NonNeg = 0.0
    duration_s: Positive = 1.0


class SlowSpec(_F, frozen=True):
    agent: str
    factor: Annotated[float, msgspec.Meta(ge=1, le=1e6)] = 2.0


class FaultsSpec(_F, frozen=True):
    seed: Seed | None = None
    drop: Scope | None = None
    delay: DelaySpec | None = None
    duplicate: Scope | None = None
    reorder: ReorderSpec | None = None
    partition: list[PartitionSpec] = msgspec.field(default_factory=list)
    kill: list[KillSpec] = msgspec.field(default_factory=list)
    pause: list[PauseSpec] = msgspec.field(default_factory=list)
    slow: list[SlowSpec] = msgspec.field(default_factory=list)


class FaultConfigError(ValueError):
    """A bad ``[faults]`` table; ``str()`` reads ``FIELD RULE[, got VALUE]`` (the caller
    adds the place)."""


def _decode_error(e: msgspec.ValidationError) -> FaultConfigError:
    msg = str(e)
    head, sep, path = msg.rpartition(" - at `$")
    if not sep:
        head, path = msg, ""
    field = "faults" + re.sub(r"\[(\d+)\]", r"[\1]", path.rstrip("`"))
    unknown = re.match(r"Object contains unknown field `([^`]+)`", head)
    if unknown:
        return FaultConfigError(f"{field}.{unknown.group(1)} is not a known key")
    missing = re.match(r"Object missing required field `([^`]+)`", head)
    if missing:
        return FaultConfigError(f"{field}.{missing.group(1)} is required")
    enum = re.match(r"Invalid enum value (.+)$", head)
    if enum:
        return FaultConfigError(f"{field} must be one of {_choices(field)}, got {enum.group(1)}")
    m = re.match(r"Expected `([^`]+)`(.*?)(?:, got `[^`]+`)?$", head)
    if m:
        typ, rest = m.group(1), m.group(2).strip()
        if rest:
            return FaultConfigError(f"{field} must be {rest}")
        return FaultConfigError(f"{field} must be of type {typ}")
    return FaultConfigError(f"{field} {head[:1].lower()}{head[1:]}")


def _choices(field: str) -> str:
    if ".kinds" in field:
        return ", ".join(get_args(MessageKind))
    if field.endswith(".dist"):
        return "fixed, uniform, exponential"
    return "the documented values"


def parse_faults(
    raw: dict[str, Any], agents: list[str], *, declared: list[str] | None = None
) -> FaultsSpec:
    """Decode and check ``[faults]`` against ``agents`` (those the run starts).

    Partition groups may also name any of ``declared`` (every agent of the scenario): one
    ``[faults]`` table then fits every configuration of a sweep, and a group member that is
    not started is simply not there to cut off.

    Raises:
        FaultConfigError: the first problem, as ``FIELD RULE[, got VALUE]``.
    """
    if not isinstance(raw, dict):
        raise FaultConfigError("faults must be a table")
    try:
        spec = msgspec.convert(raw, FaultsSpec)
    except msgspec.ValidationError as e:
        raise _decode_error(e) from None
    _check_names(spec, set(agents), set(declared or agents) | set(agents))
    _check_ranges(spec)
    return spec


def _check_names(spec: FaultsSpec, agents: set[str], grouped: set[str]) -> None:
    def need(field: str, name: str, *, runner: bool, among: set[str] = agents) -> None:
        if name in among or (runner and name == RUNNER):
            return
        which = "a declared agent or 'runner'" if runner else "a declared agent"
        raise FaultConfigError(f"{field} must name {which}, got {name!r}")

    for i, p in enumerate(spec.partition):
        seen: set[str] = set()
        if len(p.groups) < 2:
            raise FaultConfigError(
                f"faults.partition[{i}].groups must list at least two groups (a partition "
                f"separates groups from each other), got {len(p.groups)}"
            )
        for j, group in enumerate(p.groups):
            if not group:
                raise FaultConfigError(f"faults.partition[{i}].groups[{j}] must not be empty")
            for name in group:
                need(f"faults.partition[{i}].groups[{j}]", name, runner=True, among=grouped)
                if name in seen:
                    raise FaultConfigError(
                        f"faults.partition[{i}].groups[{j}] must not repeat a name of another "
                        f"group, got {name!r}"
                    )
                seen.add(name)
    for key in PROCESS_RULES:
        for i, item in enumerate(getattr(spec, key)):
            need(f"faults.{key}[{i}].agent", item.agent, runner=False)
    for key in MESSAGE_RULES:
        scope = getattr(spec, key)
        if scope is None:
            continue
        for i, name in enumerate(scope.agents):
            need(f"faults.{key}.agents[{i}]", name, runner=False)
        for i, link in enumerate(scope.links):
            src, sep, dst = link.partition("->")
            if not sep or not src.strip() or not dst.strip():
                raise FaultConfigError(
                    f"faults.{key}.links[{i}] must look like 'a->b', got {link!r}"
                )
            need(f"faults.{key}.links[{i}]", src.strip(), runner=True)
            need(f"faults.{key}.links[{i}]", dst.strip(), runner=True)
            if src.strip() == dst.strip():
                raise FaultConfigError(
                    f"faults.{key}.links[{i}] must join two different parties, got {link!r}"
                )


def _check_ranges(spec: FaultsSpec) -> None:
    for key in MESSAGE_RULES:
        scope = getattr(spec, key)
        if scope is not None and scope.end_s and scope.end_s <= scope.start_s:
            raise FaultConfigError(
                f"faults.{key}.end_s must be > start_s ({scope.start_s:g}) or 0 (no end), "
                f"got {scope.end_s:g}"
            )
    d = spec.delay
    if d is not None and d.dist == "uniform" and d.high_s < d.low_s:
        raise FaultConfigError(
            f"faults.delay.high_s must be >= low_s ({d.low_s:g}), got {d.high_s:g}"
        )
    for i, p in enumerate(spec.partition):
        if p.heal_s and p.heal_s <= p.start_s:
            raise FaultConfigError(
                f"faults.partition[{i}].heal_s must be > start_s ({p.start_s:g}) or 0 (never "
                f"heals), got {p.heal_s:g}"
            )
    for i, k in enumerate(spec.kill):
        if k.at_s and k.after_messages:
            raise FaultConfigError(
                f"faults.kill[{i}] must set at_s or after_messages, not both, got at_s = "
                f"{k.at_s:g} and after_messages = {k.after_messages}"
            )
    slowed = [s.agent for s in spec.slow]
    for i, s in enumerate(spec.slow):
        if slowed.index(s.agent) != i:
            raise FaultConfigError(
                f"faults.slow[{i}].agent must not repeat an agent slowed before, got {s.agent!r}"
            )
