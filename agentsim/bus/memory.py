"""An in-process bus: the broker's transport and agents' links over trio memory channels.

Used by the deterministic simulation (virtual time, no processes, no sockets) and by
protocol tests. Frames are still encoded envelopes, so the broker, journal, fault layer and
detectors run exactly as on ZeroMQ.
"""

from __future__ import annotations

import math

import trio

from agentsim.bus.broker import Undeliverable


class MemoryHub:
    """The ROUTER side. ``link(name)`` gives an agent its DEALER-like end."""

    def __init__(self) -> None:
        self._in_send, self._in_recv = trio.open_memory_channel[tuple[bytes, bytes]](math.inf)
        self._out: dict[bytes, trio.MemorySendChannel[bytes]] = {}

    def link(self, name: str) -> MemoryLink:
        send, recv = trio.open_memory_channel[bytes](math.inf)
        self._out[name.encode()] = send
        return MemoryLink(self, name.encode(), recv)

    def drop(self, name: str) -> None:
        """The agent is gone: later sends to it are undeliverable."""
        self._out.pop(name.encode(), None)

    async def recv(self) -> tuple[bytes, bytes]:
        return await self._in_recv.receive()

    def recv_ready(self) -> list[tuple[bytes, bytes]]:
        """What is queued now, without waiting."""
        out = []
        while True:
            try:
                out.append(self._in_recv.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return out

    def send_nowait(self, identity: bytes, frame: bytes) -> bool:
        chan = self._out.get(identity)
        if chan is None:
            raise Undeliverable(identity.decode())
        try:
            chan.send_nowait(frame)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise Undeliverable(identity.decode()) from None
        return True

    async def send(self, identity: bytes, frame: bytes) -> None:
        self.send_nowait(identity, frame)
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        self._out.clear()


class MemoryLink:
    """An agent's end. ``pause`` freezes it like SIGSTOP freezes a process: nothing goes
    in or out (heartbeats included) until ``resume``; frames sent to it wait in its queue."""

    def __init__(self, hub: MemoryHub, identity: bytes, recv: trio.MemoryReceiveChannel[bytes]):
        self.hub = hub
        self.identity = identity
        self._recv = recv
        self._running: trio.Event | None = None

    def pause(self) -> None:
        if self._running is None:
            self._running = trio.Event()

    def resume(self) -> None:
        if self._running is not None:
            self._running.set()
            self._running = None

    async def _unfrozen(self) -> None:
        while self._running is not None:
            await self._running.wait()

    async def send(self, frame: bytes) -> None:
        await self._unfrozen()
        self.hub._in_send.send_nowait((self.identity, frame))
        await trio.lowlevel.checkpoint()

    async def recv(self) -> bytes:
        await self._unfrozen()
        frame = await self._recv.receive()
        await self._unfrozen()
        return frame

    def close(self) -> None:
        self.hub.drop(self.identity.decode())
