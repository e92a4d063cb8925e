"""Live failure detectors: pure functions over the request table, the agents' state and
the journal's history, so the same checks can be rerun offline.

The runner calls them on its liveness beat (``deadlock``) and after each reply
(``livelock``); each returns the failure to record, or ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from agentsim.failures import Failure
from agentsim.run.requests import Pending

LIVELOCK_REPEATS = 3
"""Identical exchanges (same agent, same last message, same reply) that make a livelock."""


class AgentView(Protocol):
    """What the deadlock detector reads of an agent."""

    @property
    def alive(self) -> bool: ...
    @property
    def busy(self) -> bool: ...
    @property
    def beat_at(self) -> float: ...


def deadlock(
    waiting: Mapping[str, Pending],
    agents: Mapping[str, AgentView],
    *,
    task_id: str,
    now: float,
    last_activity: float,
    heartbeat_s: float,
) -> Failure | None:
    """Everyone waiting, nothing in flight: the runner awaits replies (``waiting``), every
    agent it awaits is alive and idle — and said so a full beat after the request went out
    (not a stale beat) — and nothing moved on the bus for two heartbeats."""
    if not waiting or now - last_activity < 2 * heartbeat_s:
        return None
    for p in waiting.values():
        s = agents.get(p.agent)
        if s is None or not s.alive or s.busy or s.beat_at - p.t0 < heartbeat_s:
            return None
    names = sorted({p.agent for p in waiting.values()})
    return Failure(
        kind="deadlock",
        task_id=task_id,
        agents=names,
        evidence=sorted(waiting),
        detail=f"runner waits on {', '.join(names)}; they are idle and nothing is in flight",
    )


def livelock(agent: str, seen: Sequence[str], *, task_id: str, round: int) -> Failure | None:
    """``seen``: the msg ids of one repeated exchange so far (same agent, same last message,
    same reply). A livelock when it reaches ``LIVELOCK_REPEATS``."""
    if len(seen) != LIVELOCK_REPEATS:
        return None
    return Failure(
        kind="livelock",
        task_id=task_id,
        agents=[agent],
        round=round,
        evidence=list(seen),
        detail=f"{agent} gave the same reply to the same message {LIVELOCK_REPEATS} times",
    )


def fault_causes(
    failure: Failure,
    by_msg: Mapping[str, Sequence[str]],
    by_agent: Mapping[str, Sequence[str]],
) -> list[str]:
    """Injected faults that explain a failure: faults on its evidence messages (``by_msg``)
    and process faults (kill, pause, slow) on its agents (``by_agent``), each once, so that a
    failure traces to its cause."""
    if failure.category not in ("transport", "tool", "specification", "inter_agent"):
        return []
    found: list[str] = []
    for mid in failure.evidence:
        found += by_msg.get(mid, [])
    for agent in failure.agents:
        found += by_agent.get(agent, [])
    return [f for f in dict.fromkeys(found) if f not in failure.evidence]
