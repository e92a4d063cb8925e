"""ZeroMQ transports: the runner's ROUTER and an agent's DEALER, on trio.

Every socket refuses frames over ``MAX_FRAME_BYTES`` (ZMQ_MAXMSGSIZE: libzmq drops the
connection that sent one, so a hostile size never reaches Python). Under CURVE the ROUTER
names each frame's sender by the user id the ZAP handler bound to its key, and routes to that
name through a table it learns from authenticated frames; agents then use a random socket
identity, so no key holder can take another agent's routing identity before it connects.
"""

from __future__ import annotations

import secrets
from collections import deque

import trio
import zmq

from agentsim.bus.broker import Undeliverable
from agentsim.bus.ipcdir import private_dir
from agentsim.bus.zsock import TrioSocket
from agentsim.wire import MAX_FRAME_BYTES

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
        self.authenticated = curve_secret is not None
        self._routes: dict[bytes, bytes] = {}  # authenticated name -> routing id (CURVE)
        self._pending: deque[tuple[bytes, bytes]] = deque()
        if curve_secret is not None:
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.CURVE_SECRETKEY, curve_secret)
            sock.setsockopt(zmq.ZAP_DOMAIN, b"agentsim")
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.SNDHWM, _HWM)
        sock.setsockopt(zmq.RCVHWM, _HWM)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(endpoint)
        self.endpoint: str = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.sock = TrioSocket(sock)

    async def recv(self) -> tuple[bytes, bytes]:
        """One ``(sender, frame)`` (the broker takes ``recv_batch``)."""
        if not self._pending:
            self._pending.extend(await self.recv_batch())
        return self._pending.popleft()

    async def recv_batch(self) -> list[tuple[bytes, bytes]]:
        """Every ``(sender, frame)`` already queued (at least one). The sender is the
        authenticated name under CURVE, else the socket identity; a message that is not
        exactly ``[identity, frame]`` comes back as an empty (malformed) frame."""
        if not self.authenticated:
            out = []
            for frames in await self.sock.recv_batch():
                if len(frames) != 2:
                    out.append(((frames[0] if frames else b"?"), b""))
                else:
                    out.append((frames[0], frames[1]))
            return out
        routes = self._routes
        authed = []
        for frames, user in await self.sock.recv_batch_user():
            if user and routes.get(user) != frames[0]:
                routes[user] = frames[0]
            authed.append((user, frames[1] if len(frames) == 2 else b""))
        return authed

    def recv_ready(self) -> list[tuple[bytes, bytes]]:
        """What is queued now, without waiting (the broker's last drain before it stops)."""
        out = []
        for frames, user in self.sock.recv_ready(user=self.authenticated):
            if self.authenticated:
                out.append((user, frames[1] if len(frames) == 2 else b""))
            elif len(frames) != 2:
                out.append(((frames[0] if frames else b"?"), b""))
            else:
                out.append((frames[0], frames[1]))
        return [*self._pending, *out]

    def _routing_id(self, name: bytes) -> bytes:
        if not self.authenticated:
            return name
        rid = self._routes.get(name)
        if rid is None:  # nobody has authenticated as that name: never guess a socket
            raise Undeliverable(name.decode(errors="replace"))
        return rid

    def send_nowait(self, identity: bytes, frame: bytes) -> bool:
        rid = self._routing_id(identity)
        try:
            return self.sock.send_nowait([rid, frame])
        except zmq.ZMQError as e:  # EHOSTUNREACH (gone), or any refusal: not delivered
            raise Undeliverable(identity.decode(errors="replace")) from e

    async def send(self, identity: bytes, frame: bytes) -> None:
        rid = self._routing_id(identity)
        try:
            await self.sock.send_multipart([rid, frame])
        except zmq.ZMQError as e:
            raise Undeliverable(identity.decode(errors="replace")) from e

    def close(self) -> None:
        self.sock.close()


class DealerLink:
    """An agent's DEALER socket with IDENTITY = its name."""

    def __init__(
        self, endpoint: str, name: str, *, curve: tuple[bytes, bytes, bytes] | None = None
    ) -> None:
        """``curve`` = (own public, own secret, server public), all Z85.

        Without CURVE the socket identity is the agent's name (what the broker checks
        ``src`` against); with it, the name comes from the key and the identity is random.
        """
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sock = self.ctx.socket(zmq.DEALER)
        ident = name if curve is None else f"{name}~{secrets.token_hex(8)}"
        sock.setsockopt(zmq.IDENTITY, ident.encode()[:255])
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
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
