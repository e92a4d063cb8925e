"""The in-process launcher: agents as trio tasks over the in-memory bus (no processes).

The agent main loop is the same one an agent process runs; only the link differs. Under
``trio.testing.MockClock`` a whole run then takes virtual time (see ``agentsim.run.simulate``).
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from agentsim.agent.core import Agent
from agentsim.bus.memory import MemoryHub
from agentsim.engines import Engine, EngineConfig, make_engine
from agentsim.engines.scripted import SimulatedCrash
from agentsim.run.launchers.base import AgentHandle, AgentLaunch
from agentsim.util import find_exception


class TaskHandle:
    """An agent running as a trio task in the runner's process; ``kill`` cancels it."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid
        self.code: int | None = None
        self.done = trio.Event()
        self.scope = trio.CancelScope()
        self.paused = False

    async def wait(self) -> int:
        await self.done.wait()
        return self.code if self.code is not None else -9

    def poll(self) -> int | None:
        return self.code

    def terminate(self) -> None:
        self.kill()

    def kill(self) -> None:
        if self.code is None:
            self.code = -9
        self.scope.cancel()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False


class InProcessLauncher:
    """Runs each agent's main loop as a task over a ``MemoryHub``."""

    def __init__(
        self, hub: MemoryHub, engine_factory: Callable[[EngineConfig], Engine] = make_engine
    ) -> None:
        self.hub = hub
        self.engine_factory = engine_factory
        self.handles: dict[str, TaskHandle] = {}
        self._next_pid = 100_000

    async def start(self, launch: AgentLaunch, *, nursery: trio.Nursery) -> AgentHandle:
        self._next_pid += 1
        handle = TaskHandle(launch.name, self._next_pid)
        link = self.hub.link(launch.name)
        agent = Agent(
            link,
            launch.name,
            run_id=launch.run_id,
            engine_factory=self.engine_factory,
            pid=handle.pid,
            inline_engine=True,
        )
        self.handles[launch.name] = handle

        async def _run() -> None:
            try:
                with handle.scope:
                    handle.code = await agent.run()
            except BaseException as exc:
                if find_exception(exc, SimulatedCrash) is None:
                    raise
                handle.code = 17
            finally:
                if handle.code is None:
                    handle.code = -9
                link.close()
                handle.done.set()

        nursery.start_soon(_run)
        return handle

    def close(self) -> None:
        """The hub is closed by the runner (it is the run's transport)."""
