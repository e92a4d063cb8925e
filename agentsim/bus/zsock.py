"""pyzmq sockets driven by trio: wait on the socket's FD, read ``EVENTS``, drain until EAGAIN.

ZeroMQ's FD is edge-triggered and is also reset by any send or receive on the socket. So a
task that waits must re-check ``EVENTS`` after every operation any other task performs on the
same socket: every operation "pokes" the one task watching the FD, which then re-reads
``EVENTS``. Only one task watches the FD at a time (trio allows one waiter per FD); others
wait for the watcher to report a change. No busy polling and no threads.
"""

from __future__ import annotations

import trio
import zmq


class TrioSocket:
    """A thin async wrapper over one ``zmq.Socket`` for use from trio tasks."""

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self.sock = sock
        self._fd = int(sock.getsockopt(zmq.FD))
        self._watch_scope: trio.CancelScope | None = None
        self._changed = trio.Event()
        self._closed = False

    def _fire(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _poke(self) -> None:
        if self._watch_scope is not None:
            self._watch_scope.cancel()
        else:
            self._fire()

    async def _wait(self, flag: int) -> None:
        while not (int(self.sock.getsockopt(zmq.EVENTS)) & flag):
            if self._closed:
                raise trio.ClosedResourceError("socket closed")
            if self._watch_scope is not None:
                await self._changed.wait()
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
                self.sock.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                await self._wait(zmq.POLLOUT)
                continue
            self._poke()
            await trio.lowlevel.checkpoint()
            return

    def send_nowait(self, frames: list[bytes]) -> bool:
        """Send without waiting; False when the socket would block (peer HWM reached)."""
        try:
            self.sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            return False
        self._poke()
        return True

    async def recv_multipart(self) -> list[bytes]:
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                await self._wait(zmq.POLLIN)
                continue
            self._poke()
            return frames

    async def recv_batch(self, limit: int = 256) -> list[list[bytes]]:
        """Wait for at least one message, then take every one already queued (up to ``limit``)."""
        batch: list[list[bytes]] = []
        while True:
            try:
                while len(batch) < limit:
                    batch.append(self.sock.recv_multipart(zmq.NOBLOCK))
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
        self._poke()
        trio.lowlevel.notify_closing(self._fd)
        self.sock.close(linger=linger)
