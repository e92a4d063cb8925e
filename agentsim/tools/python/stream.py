"""Run one sandbox process: stream its output under a byte cap, kill it at the wall limit.

Output is read as it is written, never buffered whole: once stdout and stderr together pass
the cap the process group is killed, so a flood costs the agent at most the cap in memory and
a fraction of a second. At the wall limit the whole group is killed (the OS sandbox's pid
namespace dies with its first process, taking every descendant with it).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_CHUNK = 65536
_REAP_S = 5.0


@dataclass(frozen=True)
class Finished:
    """How a sandbox process ended and what it wrote (each stream at most the cap)."""

    stdout: bytes
    stderr: bytes
    returncode: int | None
    timed_out: bool
    flooded: bool
    elapsed_s: float


def run_streaming(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: int,
    wall_s: float,
    output_bytes: int,
    pass_fds: Sequence[int] = (),
    cwd: str | None = None,
) -> Finished:
    """Start ``argv`` in a new session and collect its output until exit, flood or deadline.

    Raises:
        OSError: the process could not be started.
    """
    start = time.monotonic()
    deadline = start + wall_s
    proc = subprocess.Popen(
        list(argv),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        pass_fds=tuple(pass_fds),
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    out = {out_fd: bytearray(), err_fd: bytearray()}
    total = 0
    timed_out = flooded = False
    with proc, selectors.DefaultSelector() as sel:
        for stream in (proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
            sel.register(stream, selectors.EVENT_READ)
        try:
            while sel.get_map() and not flooded:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                for key, _ in sel.select(left):
                    fd = key.fd
                    try:
                        chunk = os.read(fd, _CHUNK)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    room = output_bytes - total
                    out[fd] += chunk[: max(room, 0)]
                    total += len(chunk)
                    if total > output_bytes:
                        flooded = True
                        break
            if not (timed_out or flooded):
                try:
                    proc.wait(max(deadline - time.monotonic(), 0))
                except subprocess.TimeoutExpired:
                    timed_out = True
        finally:
            if proc.poll() is None:
                kill_group(proc)
    return Finished(
        stdout=bytes(out[out_fd]),
        stderr=bytes(out[err_fd]),
        returncode=proc.returncode,
        timed_out=timed_out,
        flooded=flooded,
        elapsed_s=time.monotonic() - start,
    )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group the sandbox runs in, then reap its leader."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(_REAP_S)
