"""Process faults: kill, pause and slow agents as ``[faults]`` says.

Message faults (drop, delay, duplicate, reorder, partition) are applied by the broker's
fault layer (``agentsim.bus.faults_seeded``); the faults that act on agent processes are
applied here, through the agents' handles. Each injection is journaled as a ``fault`` event
with an id named after its rule (``kill-bob-0``: the first kill rule on bob), the same in
every run of the scenario, and kept per agent so that a failure of that agent names its
cause.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from agentsim.bus.faults_seeded import SeededFaults
from agentsim.bus.faults_spec import FaultsSpec
from agentsim.journal import Journal
from agentsim.run.launchers.base import AgentHandle

TargetLookup = Callable[[str], AgentHandle | None]
"""The handle of a live, locally launched agent (``None``: remote, gone, or unknown)."""


class ProcessFaults:
    """The process faults of one run and the fault ids injected on each agent.

    In a forked replay the recorded run's kills and pauses apply until the fork task starts
    (those still pending are then dropped, a pause in progress ends), and the fork table's
    are timed from that moment.
    """

    def __init__(
        self,
        spec: FaultsSpec | None,
        journal: Journal,
        *,
        fork_spec: FaultsSpec | None = None,
        forked: trio.Event | None = None,
    ) -> None:
        self.spec = spec
        self.fork_spec = fork_spec
        self.forked = forked
        self.journal = journal
        self.by_agent: dict[str, list[str]] = {}

    @classmethod
    def of(cls, layer: SeededFaults | None, journal: Journal) -> ProcessFaults:
        """The process faults of the run whose message-fault layer is ``layer``."""
        if layer is None:
            return cls(None, journal)
        if layer.fork is None:
            return cls(layer.spec, journal)
        return cls(layer.spec, journal, fork_spec=layer.fork.spec, forked=layer.forked)

    def injected(
        self, kind: str, agent: str, index: int = 0, prefix: str = "", **extra: Any
    ) -> str:
        """Journal one injection on ``agent`` (rule ``index`` of ``kind``); returns its id."""
        fid = f"{prefix}{kind}-{agent}-{index}"
        self.journal.write("fault", fault_id=fid, kind=kind, agent=agent, **extra)
        self.by_agent.setdefault(agent, []).append(fid)
        return fid

    def slow_factor(self, agent: str) -> float:
        """The engine slow-down for ``agent`` (1.0: none), journaled when there is one."""
        rules = self.spec.slow if self.spec else []
        found = [(i, x.factor) for i, x in enumerate(rules) if x.agent == agent]
        if not found:
            return 1.0
        index, factor = found[0]
        self.injected("slow", agent, index, factor=factor)
        return factor

    async def serve(
        self, nursery: trio.Nursery, target: TargetLookup, sent: Callable[[str], int]
    ) -> None:
        """Start the kills and pauses in ``nursery``, timed from now (``sent``: messages an
        agent has sent, for ``after_messages``); a fork's from the fork task's start."""
        if self.fork_spec is None or self.forked is None:
            if self.spec is not None:
                self._start(nursery, self.spec, trio.current_time(), target, sent, "")
            return
        recorded = trio.CancelScope()
        forked = self.forked

        async def before() -> None:
            with recorded:
                async with trio.open_nursery() as inner:
                    if self.spec is not None:
                        self._start(inner, self.spec, trio.current_time(), target, sent, "")

        async def after(spec: FaultsSpec) -> None:
            await forked.wait()
            recorded.cancel()
            async with trio.open_nursery() as inner:
                self._start(inner, spec, trio.current_time(), target, sent, "fork-")

        nursery.start_soon(before)
        nursery.start_soon(after, self.fork_spec)

    def _start(
        self,
        nursery: trio.Nursery,
        spec: FaultsSpec,
        t0: float,
        target: TargetLookup,
        sent: Callable[[str], int],
        prefix: str,
    ) -> None:
        async def kill(index: int, agent: str, when: float, after: int) -> None:
            if after:
                while sent(agent) < after:  # noqa: ASYNC110 - a counter, not an event
                    await trio.sleep(0.01)
            else:
                await trio.sleep_until(t0 + when)
            handle = target(agent)
            if handle is None:
                return
            self.injected("kill", agent, index, prefix, after_messages=after, at_s=when)
            handle.kill()

        async def pause(index: int, agent: str, when: float, duration: float) -> None:
            await trio.sleep_until(t0 + when)
            handle = target(agent)
            if handle is None:
                return
            fid = self.injected("pause", agent, index, prefix, duration_s=duration)
            handle.pause()
            try:
                await trio.sleep(duration)
            finally:  # also when a fork ends the recorded run's faults early
                handle.resume()
                self.journal.write("fault_end", fault_id=fid, kind="pause", agent=agent)

        for i, k in enumerate(spec.kill):
            nursery.start_soon(kill, i, k.agent, k.at_s, k.after_messages)
        for i, p in enumerate(spec.pause):
            nursery.start_soon(pause, i, p.agent, p.at_s, p.duration_s)
