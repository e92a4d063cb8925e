"""The wire protocol: one ``Envelope`` type with a tagged-union body, encoded as MessagePack.

Every frame between the runner and an agent (and between agents, through the broker) is one
encoded ``Envelope``. Field names are stable; every field added later gets a default so that
old journals still decode. Frames from other processes are untrusted: ``decode`` raises
``MalformedFrame`` with a short reason, and the caller records it.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import msgspec

from agentsim.chat import ChatMessage, Completion, Sampling

RUNNER = "runner"
BROADCAST = "*"


class Hello(msgspec.Struct, frozen=True, kw_only=True, tag="hello"):
    """Agent → runner on connect: who it is, before it loads a model."""

    agent: str
    pid: int
    host: str = ""
    version: str = ""


class Configure(msgspec.Struct, frozen=True, kw_only=True, tag="configure"):
    """Runner → agent: which engine to build and how often to beat."""

    engine: dict[str, Any]
    heartbeat_s: float = 1.0
    broker_timeout_s: float = 10.0
    slow_factor: float = 1.0
    tools: list[str] = msgspec.field(default_factory=list)


class Ready(msgspec.Struct, frozen=True, kw_only=True, tag="ready"):
    """Agent → runner once its engine is loaded."""

    agent: str
    pid: int
    engine: str
    model: str
    load_s: float
    rss_bytes: int
    threads: int = 1
    context_length: int = 0
    extra: dict[str, str] = msgspec.field(default_factory=dict)


class Ask(msgspec.Struct, frozen=True, kw_only=True, tag="ask"):
    """Runner → agent: produce one completion.

    ``share_with`` names agents that receive the answer as a ``Peer`` message (sent before the
    ``Reply``, so peers hold it before the next round starts). With ``peer_inbox`` the agent
    adds the peer messages it received for this task to the prompt, using ``peer_template``.
    """

    messages: list[ChatMessage]
    sampling: Sampling = msgspec.field(default_factory=Sampling)
    tools: list[dict[str, Any]] | None = None
    response_schema: dict[str, Any] | None = None
    deadline_s: float = 60.0
    share_with: list[str] = msgspec.field(default_factory=list)
    peer_inbox: bool = False
    peer_template: str = ""


class Reply(msgspec.Struct, frozen=True, kw_only=True, tag="reply"):
    """Agent → runner: the completion for the ``Ask`` named by ``in_reply_to``."""

    in_reply_to: str
    completion: Completion
    peers_seen: list[str] = msgspec.field(default_factory=list)
    request_hash: str = ""


class Peer(msgspec.Struct, frozen=True, kw_only=True, tag="peer"):
    """Agent ↔ agent content (still routed through the broker)."""

    content: str


class ToolCallMsg(msgspec.Struct, frozen=True, kw_only=True, tag="tool_call"):
    """A tool call that runs in another process (remote tools)."""

    call_id: str
    name: str
    arguments: str


class ToolResultMsg(msgspec.Struct, frozen=True, kw_only=True, tag="tool_result"):
    """The result of a ``ToolCallMsg``; ``error`` is a tool failure kind when it failed."""

    call_id: str
    content: str
    name: str = ""
    error: str = ""
    in_reply_to: str = ""
    elapsed_s: float = 0.0


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True, tag="heartbeat"):
    busy: bool = False


class Error(msgspec.Struct, frozen=True, kw_only=True, tag="error"):
    """A typed error, usually answering an ``Ask`` (``kind`` is a failure kind)."""

    kind: str
    detail: str
    in_reply_to: str = ""
    ref: str = ""


class Shutdown(msgspec.Struct, frozen=True, kw_only=True, tag="shutdown"):
    reason: str = ""


Body = (
    Hello
    | Configure
    | Ready
    | Ask
    | Reply
    | Peer
    | ToolCallMsg
    | ToolResultMsg
    | Heartbeat
    | Error
    | Shutdown
)


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """One message. ``seq`` increases by one per sender: a gap reveals a lost message."""

    run_id: str
    msg_id: str
    seq: int
    src: str
    dst: str
    body: Body
    task_id: str = ""
    round: int = 0
    sent_at: int = 0


class MalformedFrame(ValueError):
    """Bytes that are not an ``Envelope``; the reason is short and safe to record."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)


def encode(env: Envelope) -> bytes:
    return _encoder.encode(env)


def decode(frame: bytes) -> Envelope:
    try:
        return _decoder.decode(frame)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise MalformedFrame(str(e)[:200]) from e


_TAGS: dict[type, str] = {}


def body_kind(body: Body) -> str:
    """The tag of a body, as it appears on the wire and in the journal."""
    cls = type(body)
    tag = _TAGS.get(cls)
    if tag is None:
        tag = _TAGS[cls] = str(cls.__struct_config__.tag)
    return tag


class Outbox:
    """Stamps envelopes of one sender: unique ids and a gapless sequence.

    With ``per_dst`` the sequence counts per destination (the runner talks to many agents,
    and each agent checks the runner's sequence for gaps); otherwise per sender (agents,
    whose every message passes the broker, which checks it).
    """

    def __init__(self, run_id: str, src: str, *, per_dst: bool = False) -> None:
        self.run_id = run_id
        self.src = src
        self.per_dst = per_dst
        self._seqs: dict[str, itertools.count[int]] = {}
        self._prefix = f"{src}-{os.getpid():x}-"
        self._ids = itertools.count(1)

    def make(self, dst: str, body: Body, *, task_id: str = "", round: int = 0) -> Envelope:
        return Envelope(
            run_id=self.run_id,
            msg_id=f"{self._prefix}{next(self._ids)}",
            seq=next(self._seqs.setdefault(dst if self.per_dst else "", itertools.count(1))),
            src=self.src,
            dst=dst,
            body=body,
            task_id=task_id,
            round=round,
            sent_at=time.monotonic_ns(),
        )
