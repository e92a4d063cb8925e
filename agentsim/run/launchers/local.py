"""The local launcher: one ``python -m agentsim agent`` OS process per agent."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import trio

from agentsim.run.launchers.base import AgentHandle, AgentLaunch


class ProcessHandle:
    """An agent OS process; its output file is closed when it has exited."""

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
    """``python -m agentsim agent ...`` per agent in its own session; its stdout and stderr
    go to ``logs/NAME.log`` in the run folder."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir

    async def start(self, launch: AgentLaunch, *, nursery: trio.Nursery) -> AgentHandle:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{launch.name}.log", "ab")  # noqa: SIM115, ASYNC230 - tiny, local; closed by the handle
        threads = str(launch.threads)
        env = dict(os.environ)
        env.update(
            AGENTSIM_CHILD="1",
            PYTHONUNBUFFERED="1",
            TVM_NUM_THREADS=threads,
            OMP_NUM_THREADS=threads,
            OPENBLAS_NUM_THREADS="1",
        )
        env.update(launch.env)
        cmd = [
            sys.executable,
            "-m",
            "agentsim",
            "agent",
            "--connect",
            launch.endpoint,
            "--name",
            launch.name,
            "--run-id",
            launch.run_id,
        ]
        proc = await trio.lowlevel.open_process(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True
        )
        return ProcessHandle(launch.name, proc, log)

    def close(self) -> None:
        """Nothing is held between agents: each handle owns its process and log file."""
