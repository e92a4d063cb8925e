"""The forkserver's server process: import once, then fork one agent per request.

Started by ``ForkServerLauncher`` (``python -m agentsim.run.launchers.forkserver_main``) with
its end of a SOCK_SEQPACKET socket pair. It imports the agent code and preloads the engines
the scenario uses (``agentsim.engines.preload_engine``), freezes its heap for the garbage
collector, and then serves ``Spawn`` requests: each child sets ``PR_SET_PDEATHSIG`` on the
server, becomes its own session, sends its output to its own log file and runs the ordinary
agent main (``agentsim.agent.process``), which makes its ZeroMQ context after the fork. The
server reaps children and reports their exit codes; it exits when the runner closes the
socket or dies. It stays single-threaded, so that forking is safe.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import select
import signal
import socket
import sys
import time

import msgspec

from agentsim.run.launchers.forkserver import (
    MAX_MSG,
    Exited,
    Spawn,
    Spawned,
    SpawnFailed,
    Started,
    encoder,
    spawn_decoder,
)


def _prctl(option: int, arg: int | bytes) -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0)


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG = SIGKILL: the kernel kills us when our parent exits."""
    _prctl(1, int(signal.SIGKILL))


def _name_process(name: str) -> None:
    """PR_SET_NAME: ``top`` and ``ps -o comm`` show the agent, not the server's command."""
    _prctl(15, f"agent:{name}".encode()[:15])


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
        _name_process(spawn.name)
        sys.argv = ["agentsim agent", *spawn.argv]
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
    sock.send(encoder.encode(Started(pid=me, preload_s=round(time.perf_counter() - t0, 3))))
    endpoints: set[str] = set()
    try:
        return _serve(sock, runner_pid, me, poller, children, endpoints)
    finally:
        # Our children die with us (PDEATHSIG) before they can tidy up: a runner killed
        # outright leaves its ipc:// folder to us (removed only if its owner is gone).
        from agentsim.bus.ipcdir import release_if_orphaned

        for endpoint in endpoints:
            release_if_orphaned(endpoint)


def _serve(
    sock: socket.socket,
    runner_pid: int,
    me: int,
    poller: select.epoll,
    children: dict[int, tuple[int, str]],
    endpoints: set[str],
) -> int:
    while True:
        events = poller.poll(1.0)
        if os.getppid() != runner_pid:
            return 0
        for fd, _ev in events:
            if fd == sock.fileno():
                data = sock.recv(MAX_MSG)
                if not data:
                    return 0
                spawn = spawn_decoder.decode(data)
                if "--connect" in spawn.argv[:-1]:
                    endpoints.add(spawn.argv[spawn.argv.index("--connect") + 1])
                sys.stdout.flush()
                sys.stderr.flush()
                close = [sock.fileno(), poller.fileno(), *children]
                try:
                    pid = os.fork()
                except OSError as e:  # out of processes or memory: the runner reports it
                    sock.send(encoder.encode(SpawnFailed(name=spawn.name, detail=str(e))))
                    continue
                if pid == 0:
                    _child(spawn, me, close)
                pidfd = os.pidfd_open(pid)
                children[pidfd] = (pid, spawn.name)
                poller.register(pidfd, select.EPOLLIN)
                reply = encoder.encode(Spawned(name=spawn.name, pid=pid))
                socket.send_fds(sock, [reply], [pidfd])
            else:
                pid, name = children.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                sock.send(encoder.encode(Exited(name=name, pid=pid, code=code)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agentsim.run.launchers.forkserver_main")
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
