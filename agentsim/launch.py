"""Launchers start agents: as OS processes (the real thing) or as in-process trio tasks.

The runner only sees ``AgentHandle``s: a pid, an exit code to wait for, and a way to stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

import trio

from agentsim.agent.core import Agent
from agentsim.bus.memory import MemoryHub
from agentsim.engines import Engine, EngineConfig, make_engine
from agentsim.util import find_exception


class AgentHandle(Protocol):
    name: str
    pid: int

    async def wait(self) -> int:
        """Exit code once the agent has stopped."""
        ...

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...


class Launcher(Protocol):
    async def start(
        self,
        name: str,
        endpoint: str,
        run_id: str,
        *,
        threads: int,
        nursery: trio.Nursery,
        extra_env: dict[str, str] | None = None,
    ) -> AgentHandle: ...


class ProcessHandle:
    def __init__(self, name: str, proc: trio.Process, log: IO[bytes]) -> None:
        self.name = name
        self.proc = proc
        self.pid: int = proc.pid
        self._log = log

    async def wait(self) -> int:
        try:
            return await self.proc.wait()
        finally:
            self._log.close()

    def poll(self) -> int | None:
        return self.proc.poll()

    def terminate(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)  # a paused agent must be able to die
                self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def pause(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)


class ProcessLauncher:
    """``python -m agentsim agent ...`` per agent; its stderr goes to ``logs/NAME.log``."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir

    async def start(
        self,
        name: str,
        endpoint: str,
        run_id: str,
        *,
        threads: int,
        nursery: trio.Nursery,
        extra_env: dict[str, str] | None = None,
    ) -> AgentHandle:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115, ASYNC230 - tiny, local; closed by the handle
        env = dict(os.environ)
        env.update(
            AGENTSIM_CHILD="1",
            PYTHONUNBUFFERED="1",
            TVM_NUM_THREADS=str(threads),
            OMP_NUM_THREADS=str(threads),
            OPENBLAS_NUM_THREADS="1",
        )
        env.update(extra_env or {})
        cmd = [
            sys.executable,
            "-m",
            "agentsim",
            "agent",
            "--connect",
            endpoint,
            "--name",
            name,
            "--run-id",
            run_id,
        ]
        proc = await trio.lowlevel.open_process(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True
        )
        return ProcessHandle(name, proc, log)


class TaskHandle:
    """An agent running as a trio task in the runner's process (simulation, tests)."""

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
    """Runs each agent's main loop as a task over a ``MemoryHub`` (no processes, no sockets)."""

    def __init__(
        self, hub: MemoryHub, engine_factory: Callable[[EngineConfig], Engine] = make_engine
    ) -> None:
        self.hub = hub
        self.engine_factory = engine_factory
        self.handles: dict[str, TaskHandle] = {}
        self._next_pid = 100_000

    async def start(
        self,
        name: str,
        endpoint: str,
        run_id: str,
        *,
        threads: int,
        nursery: trio.Nursery,
        extra_env: dict[str, str] | None = None,
    ) -> AgentHandle:
        self._next_pid += 1
        handle = TaskHandle(name, self._next_pid)
        link = self.hub.link(name)
        agent = Agent(
            link,
            name,
            run_id=run_id,
            engine_factory=self.engine_factory,
            pid=handle.pid,
            inline_engine=True,
        )
        self.handles[name] = handle

        async def _run() -> None:
            from agentsim.engines.scripted import SimulatedCrash

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


def python_executable() -> str:
    return sys.executable
