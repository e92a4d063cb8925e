"""The forkserver launcher: agents forked from one server that has already imported them.

A ``python -m agentsim agent`` process spends most of its start-up importing (about a second
of CPU for a scripted agent, more for a model), and holds its own copy of every module. Here
the runner starts one server process per run (``forkserver_main``) that imports the agent
code and the engines the scenario uses, loads their read-only state
(``agentsim.engines.preload_engine``), freezes its heap for the garbage collector and then
forks one child per agent. A child is an ordinary agent process: its own pid and session,
its own log file ``logs/NAME.log``, its own ZeroMQ context and socket (both made after the
fork), its own engine, and it watches its parent like any agent.

Nobody outlives the runner: the server exits on EOF of its control socket (the runner died
or closed it) or when it is re-parented; every child sets ``PR_SET_PDEATHSIG`` = SIGKILL on
the server (and checks for the race), so a SIGKILLed runner takes every agent with it. The
server reaps its children and reports their exit codes; the runner signals a child through
a pidfd the server passed it (``SCM_RIGHTS``), so a recycled pid is never hit. Linux only.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import trio

from agentsim.run.errors import RunError
from agentsim.run.launchers.base import AgentHandle, AgentLaunch

_BOOT_TIMEOUT_S = 120.0
_IN_FLIGHT = 32
MAX_MSG = 1 << 20


# ----- the control protocol (one message per SOCK_SEQPACKET datagram) -----------------------
class Spawn(msgspec.Struct, frozen=True, kw_only=True, tag="spawn"):
    """Runner → server: fork one agent."""

    name: str
    argv: list[str]
    env: dict[str, str] = msgspec.field(default_factory=dict)
    log: str


class Started(msgspec.Struct, frozen=True, kw_only=True, tag="started"):
    """Server → runner: imports done, ready to fork."""

    pid: int
    preload_s: float = 0.0


class Spawned(msgspec.Struct, frozen=True, kw_only=True, tag="spawned"):
    """Server → runner: the child runs (its pidfd travels with this message)."""

    name: str
    pid: int


class SpawnFailed(msgspec.Struct, frozen=True, kw_only=True, tag="spawn_failed"):
    name: str
    detail: str


class Exited(msgspec.Struct, frozen=True, kw_only=True, tag="exited"):
    """Server → runner: a child was reaped (``code`` as ``Popen.returncode``: -N = signal N)."""

    name: str
    pid: int
    code: int


FromServer = Started | Spawned | SpawnFailed | Exited
encoder = msgspec.json.Encoder()
_from_server = msgspec.json.Decoder(FromServer)
spawn_decoder = msgspec.json.Decoder(Spawn)


def available() -> bool:
    """Whether this host can run the forkserver (Linux: pidfds, PDEATHSIG, SEQPACKET)."""
    return sys.platform == "linux" and hasattr(os, "pidfd_open") and hasattr(os, "fork")


# ----- runner side -------------------------------------------------------------------------
class _Slot:
    """Where the server's answer to one request lands."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.reply: Started | Spawned | SpawnFailed | None = None
        self.fds: list[int] = []

    def fill(self, reply: Started | Spawned | SpawnFailed, fds: list[int]) -> None:
        self.reply, self.fds = reply, list(fds)
        self.done.set()


class ForkedHandle:
    """An agent forked by the server. Its exit code comes from the server; signals go
    through its pidfd."""

    def __init__(self, launcher: ForkServerLauncher, name: str, pid: int, pidfd: int) -> None:
        self.name = name
        self.pid = pid
        self.code: int | None = None
        self._launcher = launcher
        self._pidfd = pidfd
        self._exited = trio.Event()

    def _set_exit(self, code: int) -> None:
        if self.code is None:
            self.code = code
            with contextlib.suppress(RuntimeError):  # outside trio: nobody waits on it
                trio.lowlevel.notify_closing(self._pidfd)
            os.close(self._pidfd)
            self._exited.set()

    def _gone(self) -> bool:
        """The process has ended (its pidfd is readable): for when the server is gone."""
        p = select.poll()
        p.register(self._pidfd, select.POLLIN)
        return bool(p.poll(0))

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.code is not None
        return self.code

    async def _watch_orphan(self) -> None:
        """The server died first: its children die with it (PDEATHSIG); wait for that."""
        if self.code is None:
            await trio.lowlevel.wait_readable(self._pidfd)
            self._set_exit(-signal.SIGKILL)

    def poll(self) -> int | None:
        if self.code is None:
            self._launcher.pump()
        if self.code is None and self._launcher.server_gone and self._gone():
            self._set_exit(-signal.SIGKILL)
        return self.code

    def _signal(self, sig: int) -> None:
        if self.code is None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._pidfd, sig)

    def terminate(self) -> None:
        self._signal(signal.SIGCONT)  # a paused agent must be able to die
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)


class ForkServerLauncher:
    """Starts the server on the first ``start`` and asks it for one child per agent.

    Args:
        log_dir: the run's ``logs/`` folder (``forkserver.log`` and one ``NAME.log`` per agent).
        warm: engine configs (``EngineConfig`` as dicts) whose code and read-only state the
            server loads before forking, e.g. a model's weights and tokenizer.
    """

    def __init__(self, log_dir: Path, *, warm: list[dict[str, object]] | None = None) -> None:
        self.log_dir = log_dir
        self.warm = list(warm or [])
        self.server_gone = False
        self.server_pid = 0
        self.preload_s = 0.0
        self._sock: socket.socket | None = None
        self._proc: trio.Process | None = None
        self._handles: dict[int, ForkedHandle] = {}
        self._nursery: trio.Nursery | None = None
        self._boot_lock = trio.Lock()
        # Spawns in flight at once: enough to keep the server forking back to back, few
        # enough that the newborn agents' start-up does not starve the runner and server.
        self._in_flight = trio.Semaphore(_IN_FLIGHT)
        self._booted = _Slot()
        self._waiting: dict[str, _Slot] = {}

    async def start(self, launch: AgentLaunch, *, nursery: trio.Nursery) -> AgentHandle:
        async with self._boot_lock:
            if self._sock is None:
                await self._boot(nursery)
        if launch.name in self._waiting:
            raise RunError(f"agent {launch.name} is already being started")
        threads = str(launch.threads)
        env = {"TVM_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, **launch.env}
        argv = ["--connect", launch.endpoint, "--name", launch.name, "--run-id", launch.run_id]
        log = str(self.log_dir / f"{launch.name}.log")
        slot = self._waiting[launch.name] = _Slot()
        try:
            async with self._in_flight:
                await self._send(Spawn(name=launch.name, argv=argv, env=env, log=log))
                await slot.done.wait()
        finally:
            del self._waiting[launch.name]
        match slot.reply:
            case Spawned(pid=pid) if slot.fds:
                handle = ForkedHandle(self, launch.name, pid, slot.fds[0])
                self._handles[pid] = handle
                return handle
            case SpawnFailed(detail=detail):
                raise RunError(f"forkserver could not start agent {launch.name}: {detail}")
            case None:
                raise RunError(f"the forkserver exited{self._log_tail()}")
        raise RunError(f"forkserver answered {slot.reply!r} to a spawn of {launch.name}")

    def server_command(self, fd: int) -> list[str]:
        """The server's command line (``fd``: its end of the control socket)."""
        return [
            sys.executable,
            "-m",
            "agentsim.run.launchers.forkserver_main",
            "--fd",
            str(fd),
            "--runner-pid",
            str(os.getpid()),
            "--warm",
            encoder.encode(self.warm).decode(),
        ]

    async def _boot(self, nursery: trio.Nursery) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env.update(
            AGENTSIM_CHILD="1",
            PYTHONUNBUFFERED="1",
            OPENBLAS_NUM_THREADS="1",
            TVM_USE_RUNTIME_LIB="1",
        )
        cmd = self.server_command(theirs.fileno())
        with open(self.log_dir / "forkserver.log", "ab") as log:  # noqa: ASYNC230 - tiny, local
            self._proc = await trio.lowlevel.open_process(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
                pass_fds=(theirs.fileno(),),
            )
        theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._nursery = nursery
        nursery.start_soon(self._read_loop)
        with trio.move_on_after(_BOOT_TIMEOUT_S):
            await self._booted.done.wait()
        if isinstance(self._booted.reply, Started):
            self.server_pid, self.preload_s = self._booted.reply.pid, self._booted.reply.preload_s
            return
        raise RunError(f"the forkserver did not start{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = (self.log_dir / "forkserver.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        tail = " | ".join(x.strip()[:200] for x in lines[-5:])
        return f"; last log lines: {tail}" if tail else ""

    async def _send(self, msg: Spawn) -> None:
        """Queue one request; waits (never blocks the run's loop) while the socket is full."""
        data = encoder.encode(msg)
        while True:
            if self._sock is None or self.server_gone:
                raise RunError(f"the forkserver is gone{self._log_tail()}")
            try:
                self._sock.send(data)
                return
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)
            except OSError as e:
                raise RunError(f"the forkserver is gone: {e}{self._log_tail()}") from e

    async def _read_loop(self) -> None:
        while self._sock is not None and not self.server_gone:
            await trio.lowlevel.wait_readable(self._sock)
            self.pump()

    def pump(self) -> None:
        """Handle every message already queued (never blocks): exits, spawn replies, EOF."""
        sock = self._sock
        while sock is not None and not self.server_gone:
            try:
                data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MSG, 4)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self._lost_server()
                return
            msg = _from_server.decode(data)
            match msg:
                case Exited(pid=pid, code=code):
                    handle = self._handles.pop(pid, None)
                    if handle is not None:
                        handle._set_exit(code)
                case Started():
                    self._booted.fill(msg, fds)
                case Spawned(name=name) | SpawnFailed(name=name):
                    slot = self._waiting.get(name)
                    if slot is not None:
                        slot.fill(msg, fds)
                    else:  # nobody waits (cancelled): don't leak the pidfd
                        for fd in fds:
                            os.close(fd)

    def _lost_server(self) -> None:
        self.server_gone = True
        for slot in [self._booted, *self._waiting.values()]:
            slot.done.set()  # their reply stays None: "the forkserver exited"
        if self._nursery is not None:
            for handle in self._handles.values():
                with contextlib.suppress(RuntimeError):  # the nursery may be closed already
                    self._nursery.start_soon(handle._watch_orphan)

    def close(self) -> None:
        """Close the control socket and end the server (called once every agent has
        stopped; any child still there dies with the server)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        proc = self._proc
        deadline = time.monotonic() + 0.5
        while proc is not None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # it exits on EOF at once, unless the host is very busy
        if proc is not None and proc.poll() is None:
            proc.kill()
            deadline = time.monotonic() + 2.0
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
