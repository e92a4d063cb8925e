"""CURVE authentication for runs across hosts: key files, and a ZAP handler on trio.

Keys are ZeroMQ certificate files (``NAME.key`` public, ``NAME.key_secret`` secret) written by
``agentsim keys``. The runner's ROUTER is a CURVE server; a ZAP handler in the same context
accepts a connecting agent only when its public key is in the allowed set, and reports every
refusal so that it is journaled.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import trio
import zmq
import zmq.auth

from agentsim.bus.zsock import TrioSocket

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
DOMAIN = "agentsim"


class KeyFileError(ValueError):
    """A key file is missing or unreadable (the message names the file)."""


def create_keys(directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` (mode 0600) and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(directory), name)
    os.chmod(secret, 0o600)
    return Path(public), Path(secret)


def load_public(path: str | Path) -> bytes:
    try:
        public, _ = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as e:
        raise KeyFileError(f"cannot read public key {path}: {e}") from None
    if not public:
        raise KeyFileError(f"no public key in {path}")
    return public


def load_secret(path: str | Path) -> tuple[bytes, bytes]:
    """``(public, secret)`` from a ``.key_secret`` file."""
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as e:
        raise KeyFileError(f"cannot read secret key {path}: {e}") from None
    if not secret:
        raise KeyFileError(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


def allowed_keys(paths: Iterable[str | Path]) -> set[bytes]:
    """Public keys from files, or from every ``*.key`` file in a listed directory."""
    keys: set[bytes] = set()
    for p in paths:
        path = Path(p)
        if path.is_dir():
            keys |= {load_public(f) for f in sorted(path.glob("*.key"))}
        else:
            keys.add(load_public(path))
    return keys


class ZapHandler:
    """Answers ZAP requests for the CURVE server: known public key → 200, else 400."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        allowed: set[bytes],
        on_refused: Callable[[str, str], None],
    ) -> None:
        self.allowed = set(allowed)
        self.on_refused = on_refused
        sock = context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(ZAP_ENDPOINT)
        self.sock = TrioSocket(sock)

    def allow(self, public_z85: bytes) -> None:
        self.allowed.add(public_z85)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            frames = await self.sock.recv_multipart()
            # [routing id, b"", version, request id, domain, address, identity, mechanism, *credentials]
            if len(frames) < 8:
                continue
            route, _, version, request_id, _domain, address, _identity, mechanism = frames[:8]
            creds = frames[8:]
            key = zmq.utils.z85.encode(creds[0]) if mechanism == b"CURVE" and creds else b""
            ok = key in self.allowed
            if not ok:
                reason = (
                    "unknown public key"
                    if key
                    else f"mechanism {mechanism.decode(errors='replace')} refused"
                )
                self.on_refused(
                    address.decode(errors="replace"),
                    f"{reason} {key.decode(errors='replace')}".strip(),
                )
            status, text = (b"200", b"OK") if ok else (b"400", b"unknown key")
            await self.sock.send_multipart(
                [route, b"", version, request_id, status, text, key, b""]
            )

    def close(self) -> None:
        self.sock.close()


class CurveSetup:
    """The runner's side of CURVE: its key pair and the ZAP handler of allowed agent keys."""

    def __init__(self, server_public: bytes, server_secret: bytes, zap: ZapHandler) -> None:
        self.server_public = server_public
        self.server_secret = server_secret
        self.zap = zap

    def local_agent_env(self) -> dict[str, str]:
        """A fresh key pair for an agent this runner spawns, allowed and passed by environment."""
        public, secret = zmq.curve_keypair()
        self.zap.allow(public)
        return {
            "AGENTSIM_CURVE_PUBLIC": public.decode(),
            "AGENTSIM_CURVE_SECRET": secret.decode(),
            "AGENTSIM_CURVE_SERVER": self.server_public.decode(),
        }


def curve_from_env() -> tuple[bytes, bytes, bytes] | None:
    env = os.environ
    if "AGENTSIM_CURVE_SECRET" not in env:
        return None
    return (
        env["AGENTSIM_CURVE_PUBLIC"].encode(),
        env["AGENTSIM_CURVE_SECRET"].encode(),
        env["AGENTSIM_CURVE_SERVER"].encode(),
    )
