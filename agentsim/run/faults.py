"""Process faults: kill, pause and slow agents as ``[faults]`` says.

Message faults (drop, delay, duplicate, reorder, partition) are applied by the broker's
fault layer (``agentsim.bus.faults_seeded``); the faults that act on agent processes are
applied here, through the agents' handles. Each injection is journaled as a ``fault`` event
with an id (``pfault-N``), kept per agent so that a failure of that agent names its cause.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from agentsim.bus.faults_seeded import FaultsSpec
from agentsim.journal import Journal
from agentsim.run.launchers.base import AgentHandle

TargetLookup = Callable[[str], AgentHandle | None]
"""The handle of a live, locally launched agent (``None``: remote, gone, or unknown)."""


class ProcessFaults:
    """The process faults of one run and the fault ids injected on each agent."""

    def __init__(self, spec: FaultsSpec | None, journal: Journal) -> None:
        self.spec = spec
        self.journal = journal
        self.by_agent: dict[str, list[str]] = {}
        self._seq = 0

    def injected(self, kind: str, agent: str, **extra: Any) -> str:
        """Journal one injection on ``agent``; returns its fault id."""
        self._seq += 1
        fid = f"pfault-{self._seq}"
        self.journal.write("fault", fault_id=fid, kind=kind, agent=agent, **extra)
        self.by_agent.setdefault(agent, []).append(fid)
        return fid

    def slow_factor(self, agent: str) -> float:
        """The engine slow-down for ``agent`` (1.0: none), journaled when there is one."""
        slow = [x.factor for x in self.spec.slow if x.agent == agent] if self.spec else []
        if not slow:
            return 1.0
        self.injected("slow", agent, factor=slow[0])
        return slow[0]

    async def serve(
        self, nursery: trio.Nursery, target: TargetLookup, sent: Callable[[str], int]
    ) -> None:
        """Start one task per kill and pause in ``nursery``, timed from now (``sent``:
        messages an agent has sent, for ``after_messages``)."""
        if self.spec is None:
            return
        t0 = trio.current_time()

        async def kill(agent: str, when: float, after: int) -> None:
            if after:
                while sent(agent) < after:  # noqa: ASYNC110 - a counter, not an event
                    await trio.sleep(0.01)
            else:
                await trio.sleep_until(t0 + when)
            handle = target(agent)
            if handle is None:
                return
            self.injected("kill", agent, after_messages=after, at_s=when)
            handle.kill()

        async def pause(agent: str, when: float, duration: float) -> None:
            await trio.sleep_until(t0 + when)
            handle = target(agent)
            if handle is None:
                return
            fid = self.injected("pause", agent, duration_s=duration)
            handle.pause()
            await trio.sleep(duration)
            handle.resume()
            self.journal.write("fault_end", fault_id=fid, kind="pause", agent=agent)

        for k in self.spec.kill:
            nursery.start_soon(kill, k.agent, k.at_s, k.after_messages)
        for p in self.spec.pause:
            nursery.start_soon(pause, p.agent, p.at_s, p.duration_s)
