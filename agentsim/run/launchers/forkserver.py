"""The forkserver launcher: agents forked from one server that has already imported them.

A ``python -m agentsim agent`` process spends most of its start-up importing (about a second
of CPU for a scripted agent, more for a model), and holds its own copy of every module. Here
the runner starts one server process per run (``python -m agentsim.run.launchers.forkserver``)
that imports the agent code and the engines the scenario uses, loads their read-only state
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

import argparse
import contextlib
import gc
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
_IN_FLIGHT = 8
_MAX_MSG = 1 << 20


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
_enc = msgspec.json.Encoder()
_from_server = msgspec.json.Decoder(FromServer)
_to_server = msgspec.json.Decoder(Spawn)


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
            "agentsim.run.launchers.forkserver",
            "--fd",
            str(fd),
            "--runner-pid",
            str(os.getpid()),
            "--warm",
            _enc.encode(self.warm).decode(),
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
        data = _enc.encode(msg)
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
                data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_MSG, 4)
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


# ----- server side -------------------------------------------------------------------------
def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG = SIGKILL: the kernel kills us when our parent exits."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)


def _preload(warm: list[dict[str, object]]) -> None:
    """Import what every agent imports, then each warm engine's code and shared state."""
    import agentsim.agent.core
    import agentsim.agent.process
    import agentsim.bus.auth
    import agentsim.bus.zmq_transport  # noqa: F401
    from agentsim.engines import EngineConfig, preload_engine

    for cfg in warm:
        preload_engine(msgspec.convert(cfg, EngineConfig))


def _child(spawn: Spawn, server_pid: int, close_fds: list[int]) -> None:
    """In the forked child: become agent ``spawn.name``; never returns."""
    code = 70
    try:
        os.setsid()
        _die_with_parent()
        if os.getppid() != server_pid:  # the server died before PDEATHSIG was armed
            os._exit(0)
        for fd in close_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        log = os.open(spawn.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(devnull)
        os.close(log)
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        os.environ.update(spawn.env)
        gc.enable()
        from agentsim.agent import process

        parser = process.build_parser(argparse.ArgumentParser(prog="agentsim agent"))
        code = process.main(parser.parse_args(spawn.argv))  # exits the process itself
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 2
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def serve(sock: socket.socket, runner_pid: int, warm: list[dict[str, object]]) -> int:
    """The server loop: fork on ``Spawn``, report ``Exited``; returns when the runner is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides when we stop
    gc.disable()
    t0 = time.perf_counter()
    _preload(warm)
    gc.collect()
    gc.freeze()  # children's collections then leave the shared heap pages alone
    me = os.getpid()
    poller = select.epoll()
    poller.register(sock.fileno(), select.EPOLLIN)
    children: dict[int, tuple[int, str]] = {}  # pidfd -> (pid, name)
    sock.send(_enc.encode(Started(pid=me, preload_s=round(time.perf_counter() - t0, 3))))
    while True:
        events = poller.poll(1.0)
        if os.getppid() != runner_pid:
            return 0
        for fd, _ev in events:
            if fd == sock.fileno():
                data = sock.recv(_MAX_MSG)
                if not data:
                    return 0
                spawn = _to_server.decode(data)
                sys.stdout.flush()
                sys.stderr.flush()
                close = [sock.fileno(), poller.fileno(), *children]
                try:
                    pid = os.fork()
                except OSError as e:  # out of processes or memory: the runner reports it
                    sock.send(_enc.encode(SpawnFailed(name=spawn.name, detail=str(e))))
                    continue
                if pid == 0:
                    _child(spawn, me, close)
                pidfd = os.pidfd_open(pid)
                children[pidfd] = (pid, spawn.name)
                poller.register(pidfd, select.EPOLLIN)
                reply = _enc.encode(Spawned(name=spawn.name, pid=pid))
                socket.send_fds(sock, [reply], [pidfd])
            else:
                pid, name = children.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                sock.send(_enc.encode(Exited(name=name, pid=pid, code=code)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agentsim.run.launchers.forkserver")
    p.add_argument("--fd", type=int, required=True, help="the control socket (SOCK_SEQPACKET)")
    p.add_argument("--runner-pid", type=int, required=True)
    p.add_argument("--warm", default="[]", help="JSON list of engine configs to preload")
    a = p.parse_args(argv)
    sock = socket.socket(fileno=a.fd)
    try:
        return serve(sock, a.runner_pid, msgspec.json.decode(a.warm))
    except (BrokenPipeError, ConnectionResetError):
        return 0  # the runner went away mid-message


if __name__ == "__main__":
    sys.exit(main())
