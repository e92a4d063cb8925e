"""ZeroMQ transports: the runner's ROUTER and an agent's DEALER, on trio."""

from __future__ import annotations

import errno
from collections import deque

import trio
import zmq

from agentsim.bus.broker import Undeliverable
from agentsim.bus.ipcdir import private_dir
from agentsim.bus.zsock import TrioSocket

_HWM = 100_000


def default_endpoint(transport: str, bind: str = "") -> tuple[str, str | None]:
    """Where the runner binds: ``ipc://`` in a private temp dir, or loopback TCP.

    Returns the endpoint and the directory to remove at the end (for ipc).
    """
    if bind:
        return bind, None
    if transport == "tcp":
        return "tcp://127.0.0.1:*", None
    d = private_dir()  # removed by the runner at the end (see agentsim.bus.ipcdir)
    return f"ipc://{d}/bus", str(d)


class RouterTransport:
    """The runner's ROUTER socket; identities are agent names.

    With ``curve_secret`` the socket is a CURVE server: traffic is encrypted and every
    connecting peer is checked by the ZAP handler (which must be bound in the same context).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        curve_secret: bytes | None = None,
    ):
        self.ctx = context or zmq.Context.instance()
        sock = self.ctx.socket(zmq.ROUTER)
        if curve_secret is not None:
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.CURVE_SECRETKEY, curve_secret)
            sock.setsockopt(zmq.ZAP_DOMAIN, b"agentsim")
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.SNDHWM, _HWM)
        sock.setsockopt(zmq.RCVHWM, _HWM)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(endpoint)
        self.endpoint: str = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.sock = TrioSocket(sock)

    async def recv(self) -> tuple[bytes, bytes]:
        frames = await self.sock.recv_multipart()
        if len(frames) != 2:
            return (frames[0] if frames else b"?"), b""
        return frames[0], frames[1]

    async def recv_batch(self) -> list[tuple[bytes, bytes]]:
        """Every ``(identity, frame)`` already queued (at least one)."""
        out = []
        for frames in await self.sock.recv_batch():
            if len(frames) != 2:
                out.append(((frames[0] if frames else b"?"), b""))
            else:
                out.append((frames[0], frames[1]))
        return out

    def send_nowait(self, identity: bytes, frame: bytes) -> bool:
        try:
            return self.sock.send_nowait([identity, frame])
        except zmq.ZMQError as e:
            if e.errno == errno.EHOSTUNREACH:
                raise Undeliverable(identity.decode()) from e
            raise

    async def send(self, identity: bytes, frame: bytes) -> None:
        try:
            await self.sock.send_multipart([identity, frame])
        except zmq.ZMQError as e:
            if e.errno == errno.EHOSTUNREACH:
                raise Undeliverable(identity.decode()) from e
            raise

    def close(self) -> None:
        self.sock.close()


class DealerLink:
    """An agent's DEALER socket with IDENTITY = its name."""

    def __init__(
        self, endpoint: str, name: str, *, curve: tuple[bytes, bytes, bytes] | None = None
    ) -> None:
        """``curve`` = (own public, own secret, server public), all Z85."""
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, name.encode())
        if curve is not None:
            public, secret, server = curve
            sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
            sock.setsockopt(zmq.CURVE_SERVERKEY, server)
        sock.setsockopt(zmq.SNDHWM, _HWM)
        sock.setsockopt(zmq.RCVHWM, _HWM)
        sock.setsockopt(zmq.LINGER, 2000)
        sock.connect(endpoint)
        self.sock = TrioSocket(sock)
        self._inbox: deque[bytes] = deque()
        self._unyielded = 0

    async def send(self, frame: bytes) -> None:
        # Sending rarely blocks; yield to the scheduler every few sends rather than every one.
        if self.sock.send_nowait([frame]):
            self._unyielded += 1
            if self._unyielded >= 16:
                self._unyielded = 0
                await trio.lowlevel.checkpoint()
            return
        await self.sock.send_multipart([frame])

    async def recv(self) -> bytes:
        # Take everything already queued in one wake-up; hand it out one frame at a time.
        # The scheduler is visited once per batch (on refill), not once per frame.
        if not self._inbox:
            await trio.lowlevel.checkpoint()
            self._inbox.extend(
                frames[-1] if frames else b"" for frames in await self.sock.recv_batch()
            )
        return self._inbox.popleft()

    def close(self) -> None:
        self.sock.close(linger=500)
