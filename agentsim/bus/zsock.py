"""pyzmq sockets driven by trio: wait on the socket's FD, read ``EVENTS``, drain until EAGAIN.

ZeroMQ's FD is edge-triggered and is also reset by any send or receive on the socket. So a
task that waits must re-check ``EVENTS`` after every operation any other task performs on the
same socket: every operation "pokes" the one task watching the FD, which then re-reads
``EVENTS``. Only one task watches the FD at a time (trio allows one waiter per FD); others
wait for the watcher to report a change. No busy polling and no threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import trio
import zmq

_T = TypeVar("_T")

# Plain ints: pyzmq's enum flags cost a measurable share of the per-message time.
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE_NOBLOCK = int(zmq.NOBLOCK) | int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)
_EVENTS = int(zmq.EVENTS)


class TrioSocket:
    """A thin async wrapper over one ``zmq.Socket`` for use from trio tasks."""

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self.sock = sock
        self._fd = int(sock.getsockopt(zmq.FD))
        self._watch_scope: trio.CancelScope | None = None
        self._changed = trio.Event()
        self._waiters = 0
        self._closed = False

    def _fire(self) -> None:
        if self._waiters:
            self._changed.set()
            self._changed = trio.Event()

    def _poke(self) -> None:
        if self._watch_scope is not None:
            self._watch_scope.cancel()
        else:
            self._fire()

    def _send(self, frames: list[bytes]) -> None:
        """Send one multipart message; raises ``zmq.Again`` (nothing sent) when it would block."""
        sock = self.sock
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            sock.send(frame, _SNDMORE_NOBLOCK if i < last else _NOBLOCK)

    def _recv(self) -> list[bytes]:
        sock = self.sock
        frames = [sock.recv(_NOBLOCK)]
        while sock.getsockopt(_RCVMORE):
            frames.append(sock.recv(_NOBLOCK))
        return frames

    def _recv_user(self) -> tuple[list[bytes], bytes]:
        """One multipart message and the ``User-Id`` its connection authenticated as (the ZAP
        handler's answer; ``b""`` when there is none)."""
        sock = self.sock
        parts = [sock.recv(_NOBLOCK, copy=False)]
        while parts[-1].more:
            parts.append(sock.recv(_NOBLOCK, copy=False))
        try:
            user = parts[-1].get("User-Id")
        except zmq.ZMQError:
            user = ""
        return [p.bytes for p in parts], str(user).encode()

    async def _wait(self, flag: int) -> None:
        while not (int(self.sock.getsockopt(_EVENTS)) & flag):
            if self._closed:
                raise trio.ClosedResourceError("socket closed")
            if self._watch_scope is not None:
                self._waiters += 1
                try:
                    await self._changed.wait()
                finally:
                    self._waiters -= 1
                continue
            with trio.CancelScope() as scope:
                self._watch_scope = scope
                try:
                    await trio.lowlevel.wait_readable(self._fd)
                finally:
                    self._watch_scope = None
                    self._fire()

    async def send_multipart(self, frames: list[bytes]) -> None:
        while True:
            try:
                self._send(frames)
            except zmq.Again:
                await self._wait(zmq.POLLOUT)
                continue
            self._poke()
            await trio.lowlevel.checkpoint()
            return

    def send_nowait(self, frames: list[bytes]) -> bool:
        """Send without waiting; False when the socket would block (peer HWM reached)."""
        try:
            self._send(frames)
        except zmq.Again:
            return False
        self._poke()
        return True

    async def recv_multipart(self) -> list[bytes]:
        while True:
            try:
                frames = self._recv()
            except zmq.Again:
                await self._wait(zmq.POLLIN)
                continue
            self._poke()
            return frames

    async def recv_batch(self, limit: int = 256) -> list[list[bytes]]:
        """Wait for at least one message, then take every one already queued (up to ``limit``)."""
        return await self._batch(self._recv, limit)

    def recv_ready(self, *, user: bool = False) -> list[tuple[list[bytes], bytes]]:
        """Every message already queued, without waiting (with its ``User-Id`` if ``user``)."""
        out: list[tuple[list[bytes], bytes]] = []
        try:
            while True:
                out.append(self._recv_user() if user else (self._recv(), b""))
        except zmq.Again:
            pass
        if out:
            self._poke()
        return out

    async def recv_batch_user(self, limit: int = 256) -> list[tuple[list[bytes], bytes]]:
        """``recv_batch`` with each message's authenticated ``User-Id`` (see ``_recv_user``)."""
        return await self._batch(self._recv_user, limit)

    async def _batch(self, take: Callable[[], _T], limit: int) -> list[_T]:
        batch: list[_T] = []
        while True:
            try:
                while len(batch) < limit:
                    batch.append(take())
            except zmq.Again:
                pass
            if batch:
                self._poke()
                return batch
            await self._wait(zmq.POLLIN)

    def close(self, linger: int = 0) -> None:
        if self._closed:
            return
        self._closed = True
        if self._watch_scope is not None:
            self._watch_scope.cancel()
        self._changed.set()
        trio.lowlevel.notify_closing(self._fd)
        self.sock.close(linger=linger)
