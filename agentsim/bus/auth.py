"""CURVE authentication for runs across hosts: key files, and a ZAP handler on trio.

Keys are ZeroMQ certificate files (``NAME.key`` public, ``NAME.key_secret`` secret) written by
``agentsim keys NAME``; both carry ``agent = NAME`` in their metadata, which binds the key to
that one agent name. The runner's ROUTER is a CURVE server; a ZAP handler in the same context
accepts a connecting agent only when its public key is allowed, answers with the key's name as
the ZAP user id (so every frame of that connection carries ``User-Id`` = the name, which the
broker compares with the frame's ``src``), and reports every refusal so that it is journaled.
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
RESERVED = ("runner", "*")
"""Names no agent key may carry: the runner's and the broadcast address."""


class KeyFileError(ValueError):
    """A key file is missing or unreadable (the message names the file)."""


def create_keys(directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` (the secret mode 0600), bound to ``name``.

    ZeroMQ certificate files (what ``zmq.auth.load_certificate`` reads), with the binding in
    the ``metadata`` section of both: the public file is what the runner's operator lists.
    """
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.curve_keypair()
    paths = (directory / f"{name}.key", directory / f"{name}.key_secret")
    for path, keys in (
        (paths[0], [("public-key", public)]),
        (paths[1], [("public-key", public), ("secret-key", secret)]),
    ):
        lines = [
            f"#   ZeroMQ CURVE {'Secret' if len(keys) == 2 else 'Public'} Certificate for {name}",
            "#   written by agentsim keys; the agent name is bound to this key",
            "",
            "metadata",
            f'    agent = "{name}"',
            "curve",
            *(f'    {k} = "{v.decode()}"' for k, v in keys),
        ]
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if len(keys) == 2 else 0o644
        )
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    os.chmod(paths[1], 0o600)
    return paths


def key_name(path: str | Path) -> str:
    """The agent name a key file is bound to: its ``agent`` metadata, else the file's stem
    (key files written before names were bound)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"cannot read key file {path}: {e}") from None
    in_metadata = False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            in_metadata = line.strip() == "metadata"
            continue
        key, sep, value = line.strip().partition("=")
        if in_metadata and sep and key.strip() == "agent":
            return value.strip().strip('"')
    return Path(path).name.split(".key")[0]


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


def allowed_keys(paths: Iterable[str | Path]) -> dict[bytes, str]:
    """Public key → bound agent name, from files or every ``*.key`` file in a listed folder.

    A key bound to a reserved name (the runner's own key, in a shared folder) is left out;
    one key bound to two names is an error naming both files.
    """
    keys: dict[bytes, str] = {}
    where: dict[bytes, Path] = {}
    for p in paths:
        path = Path(p)
        for f in sorted(path.glob("*.key")) if path.is_dir() else [path]:
            public, name = load_public(f), key_name(f)
            if name in RESERVED:
                continue
            if public in keys and keys[public] != name:
                raise KeyFileError(
                    f"one key is bound to two names: {keys[public]!r} ({where[public]}) "
                    f"and {name!r} ({f})"
                )
            keys[public], where[public] = name, f
    return keys


class ZapHandler:
    """Answers ZAP requests for the CURVE server: an allowed public key → 200 with the key's
    agent name as user id, anything else → 400 (reported through ``on_refused``)."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        allowed: dict[bytes, str],
        on_refused: Callable[[str, str], None],
    ) -> None:
        self.allowed = {k: n for k, n in allowed.items() if n not in RESERVED}
        self.on_refused = on_refused
        sock = context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, 4096)
        sock.bind(ZAP_ENDPOINT)
        self.sock = TrioSocket(sock)

    def allow(self, public_z85: bytes, name: str) -> None:
        """Admit one more key, bound to ``name``."""
        if name in RESERVED:
            raise ValueError(f"no agent key may be bound to {name!r}")
        self.allowed[public_z85] = name

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
            name = self.allowed.get(key)
            ok = name is not None
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
            user = name.encode() if name is not None else b""
            await self.sock.send_multipart(
                [route, b"", version, request_id, status, text, user, b""]
            )

    def close(self) -> None:
        self.sock.close()


class CurveSetup:
    """The runner's side of CURVE: its key pair and the ZAP handler of allowed agent keys."""

    def __init__(self, server_public: bytes, server_secret: bytes, zap: ZapHandler) -> None:
        self.server_public = server_public
        self.server_secret = server_secret
        self.zap = zap

    def local_agent_env(self, name: str) -> dict[str, str]:
        """A fresh key pair for the agent ``name`` this runner spawns, allowed as that name
        only, and passed by environment."""
        public, secret = zmq.curve_keypair()
        self.zap.allow(public, name)
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
