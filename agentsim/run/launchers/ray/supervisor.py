"""The Ray actor that holds one agent's place on a node and runs its process there.

One ``AgentSupervisor`` per agent: Ray schedules it with the agent's resources (or into its
placement-group bundle); it starts ``python -m agentsim agent ...`` as its child on that node
and supervises it — signals (pause, resume, stop), the exit code, and the agent's output,
which it holds until the runner has copied it into the run folder's ``logs/``.

The child cannot outlive its supervisor: it is started from a thread that lives until the
child has exited, through a tiny prelude that sets ``PR_SET_PDEATHSIG`` = SIGKILL and then
``exec``\\ s the agent, so a killed actor, a lost node or a dead runner (Ray kills the actors a
dead driver owned) takes the agent with it — even a paused one. The agent also watches its
parent pid, as every spawned agent does.

This module is imported on every node; it needs nothing but the standard library (Ray
itself is imported only inside methods, where it is running anyway).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

# Runs as ``python -c PRELUDE PARENT_PID ARGS...``: die with the parent, then become the agent.
PRELUDE = (
    "import ctypes,os,signal,sys\n"
    "ctypes.CDLL(None,use_errno=True).prctl(1,signal.SIGKILL)\n"  # PR_SET_PDEATHSIG
    "os.getppid()==int(sys.argv[1]) or os._exit(70)\n"  # the parent died before prctl
    "os.execv(sys.executable,[sys.executable,'-m','agentsim',*sys.argv[2:]])\n"
)

LOG_KEEP = 4 * 2**20
"""Bytes of output held for the runner beyond what it has copied; older output is dropped
(and said so) when a runner stops reading."""


class AgentSupervisor:
    """One agent process on this node (a threaded Ray actor; see the module docstring)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.code: int | None = None
        self._cond = threading.Condition()
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._eof = False
        self._next_control = 0
        self._spawn_error = ""

    # ----- start ----------------------------------------------------------------------------
    def spawn(self, args: list[str], env: dict[str, str], cache: str) -> dict[str, Any]:
        """Start the agent (``python -m agentsim ARGS``) and say where it runs.

        Args:
            args: the arguments after ``python -m agentsim``.
            env: variables set for the agent on top of this worker's environment.
            cache: the node-local model cache (``~`` is this node's home); ``""`` keeps the
                node's own ``AGENTSIM_CACHE`` / user cache.
        """
        import ray

        child_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AGENTSIM_CURVE"))
        }
        child_env.update(env)
        if cache:
            child_env["AGENTSIM_CACHE"] = os.path.expanduser(cache)
        started = threading.Event()
        thread = threading.Thread(
            target=self._own,
            args=(args, child_env, started),
            name=f"agent-{self.name}",
            daemon=True,
        )
        thread.start()
        started.wait()
        if self.proc is None:
            raise RuntimeError(f"agent {self.name} could not start: {self._spawn_error}")
        ctx = ray.get_runtime_context()
        return {
            "pid": self.proc.pid,
            "node_id": ctx.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            "host": socket.gethostname(),
            "supervisor_pid": os.getpid(),
            "cache": child_env.get("AGENTSIM_CACHE", ""),
        }

    def _own(self, args: list[str], env: dict[str, str], started: threading.Event) -> None:
        """Start the child, copy its output, reap it. PDEATHSIG is tied to *this* thread,
        which therefore lives exactly as long as the child."""
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", PRELUDE, str(os.getpid()), *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as e:
            self._spawn_error = str(e)
            with self._cond:
                self._eof = True
                self.code = 127
            started.set()
            return
        started.set()
        assert self.proc.stdout is not None
        out = self.proc.stdout.fileno()
        while chunk := os.read(out, 65536):
            with self._cond:
                self._buf += chunk
                self._cond.notify_all()
        self.proc.stdout.close()
        code = self.proc.wait()
        with self._cond:
            self._eof = True
            self.code = code
            self._cond.notify_all()

    # ----- the runner's reads ---------------------------------------------------------------
    def next_log(self, offset: int, wait_s: float) -> tuple[bytes, int | None, int]:
        """Output from ``offset`` on, once there is some (or after ``wait_s``).

        Returns ``(data, exit code or None, offset of data)``: the exit code only once every
        byte has been handed out. The offset is larger than asked when output was dropped.
        Everything before ``offset`` is taken as copied and released.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._eof or self._base + len(self._buf) > offset, wait_s)
            copied = min(max(0, offset - self._base), len(self._buf))
            del self._buf[:copied]
            self._base += copied
            if len(self._buf) > LOG_KEEP:
                drop = len(self._buf) - LOG_KEEP
                del self._buf[:drop]
                self._base += drop
            data = bytes(self._buf[: 1 << 20])
            done = self._eof and len(data) == len(self._buf)
            return data, (self.code if done else None), self._base

    # ----- control, applied in the order the runner sent it ---------------------------------
    def control(self, seq: int, action: str, arg: float) -> int | None:
        """``signal`` (``arg`` = signal number) or ``stop`` (``arg`` = grace seconds: SIGCONT +
        SIGTERM, then SIGKILL). Calls run on a thread pool, so each waits for its ``seq``.

        Returns the exit code for ``stop`` (``None`` for ``signal``)."""
        with self._cond:
            self._cond.wait_for(lambda: self._next_control == seq, 30.0)
        try:
            if action == "signal":
                self._signal(int(arg))
                return None
            return self._stop(arg)
        finally:
            with self._cond:
                self._next_control = max(self._next_control, seq + 1)
                self._cond.notify_all()

    def _signal(self, signum: int) -> None:
        proc = self.proc
        if proc is not None and self.code is None:  # not reaped yet: the pid is still ours
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signum)

    def _stop(self, grace_s: float) -> int | None:
        self._signal(signal.SIGCONT)  # a paused agent must be able to die
        self._signal(signal.SIGTERM)
        with self._cond:
            if not self._cond.wait_for(lambda: self.code is not None, grace_s):
                self._signal(signal.SIGKILL)
                self._cond.wait_for(lambda: self.code is not None, 5.0)
            return self.code
