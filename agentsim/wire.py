"""The wire protocol: one ``Envelope`` type with a tagged-union body, encoded as MessagePack.

Every frame between the runner and an agent (and between agents, through the broker) is one
encoded ``Envelope``. Field names are stable; every field added later gets a default so that
old journals still decode. Frames from other processes are untrusted: ``decode`` raises
``MalformedFrame`` with a short reason whatever went wrong, and the caller records it. A frame
that decodes is safe to journal: every field is typed, and the few free-form ones (tool
schemas, response schemas, engine options) must be JSON values within ``JSON_MAX_DEPTH`` and
``JSON_MAX_NODES``. Who may send which body to whom is ``refusal``'s rule, shared by the
broker and the agents.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from typing import Annotated, Any, cast

import msgspec

from agentsim.chat import ChatMessage, Completion, EngineConfig, Sampling

RUNNER = "runner"
BROADCAST = "*"

MAX_FRAME_BYTES = 16 * 1024 * 1024
"""The largest frame any agentsim socket accepts (ZMQ_MAXMSGSIZE); a bigger one is dropped."""
JSON_MAX_DEPTH = 32
JSON_MAX_NODES = 20_000
"""Bounds on one free-form JSON field (a tool list, a response schema, engine options)."""

Name = Annotated[str, msgspec.Meta(max_length=256)]
Count = Annotated[int, msgspec.Meta(ge=0)]


def json_problem(value: object, where: str) -> str | None:
    """Why ``value`` is not a bounded JSON value (``None`` when it is one).

    Checked without recursion, so a hostile depth costs a loop, not the stack. Msgpack can
    carry what JSON cannot (Ext values, bytes, timestamps, non-string keys, NaN); any of those
    would fail later, when the journal writes the body, so they are refused at decode.
    """
    stack: list[tuple[object, int, str]] = [(value, 1, where)]
    nodes = 0
    while stack:
        v, depth, path = stack.pop()
        nodes += 1
        if nodes > JSON_MAX_NODES:
            return f"{where} has more than {JSON_MAX_NODES} values"
        if depth > JSON_MAX_DEPTH:
            return f"{where} is nested deeper than {JSON_MAX_DEPTH} levels"
        t = type(v)
        if v is None or t is str or t is bool or t is int:
            continue
        if t is float:
            if not math.isfinite(cast(float, v)):
                return f"{path} is {v!r}, not a JSON number"
        elif t is dict:
            for k, x in cast(dict[object, object], v).items():
                if type(k) is not str:
                    return f"{path} has a {type(k).__name__} key, JSON keys are strings"
                stack.append((x, depth + 1, f"{path}.{k[:40]}"))
        elif t is list or t is tuple:  # a tuple only from local code: it encodes as an array
            stack.extend(
                (x, depth + 1, f"{path}[{i}]") for i, x in enumerate(cast(list[object], v))
            )
        else:
            return f"{path} is a {t.__name__}, not a JSON value"
    return None


def _require_json(value: object, where: str) -> None:
    problem = json_problem(value, where)
    if problem is not None:
        raise ValueError(problem)


class Hello(msgspec.Struct, frozen=True, kw_only=True, tag="hello"):
    """Agent → runner on connect: who it is, before it loads a model."""

    agent: str
    pid: int
    host: str = ""
    version: str = ""


class Configure(msgspec.Struct, frozen=True, kw_only=True, tag="configure"):
    """Runner → agent: which engine to build, how often to beat, whom to hear from.

    ``peers`` are the agents whose ``Peer`` messages this agent accepts (the run's other
    agents); a ``Peer`` from anyone else is refused and reported.
    """

    engine: EngineConfig
    heartbeat_s: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    broker_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    slow_factor: Annotated[float, msgspec.Meta(ge=1)] = 1.0
    tools: list[str] = msgspec.field(default_factory=list)
    peers: list[Name] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        _require_json(self.engine.options, "engine.options")


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
    share_with: list[Name] = msgspec.field(default_factory=list)
    peer_inbox: bool = False
    peer_template: str = ""

    def __post_init__(self) -> None:
        if self.tools is not None:
            _require_json(self.tools, "tools")
            for i, tool in enumerate(self.tools):
                fn = tool.get("function")
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise ValueError(f"tools[{i}] is not an OpenAI tool schema (function.name)")
        if self.response_schema is not None:
            _require_json(self.response_schema, "response_schema")


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


class SeqGap(msgspec.Struct, frozen=True, kw_only=True):
    """Sequence numbers ``first..last`` of the stream ``src → dst`` that never arrived."""

    src: Name
    dst: Name
    first: Count
    last: Count


class Error(msgspec.Struct, frozen=True, kw_only=True, tag="error"):
    """A typed error, usually answering an ``Ask`` (``kind`` is a failure kind).

    ``ref`` names the message that revealed it; ``gap`` what a ``message_lost`` misses.
    """

    kind: str
    detail: str
    in_reply_to: str = ""
    ref: str = ""
    gap: SeqGap | None = None


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

    run_id: Name
    msg_id: Name
    seq: Count
    src: Name
    dst: Name
    body: Body
    task_id: Name = ""
    round: Count = 0
    sent_at: int = 0


class MalformedFrame(ValueError):
    """Bytes that are not an ``Envelope``; the reason is short and safe to record."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)


def encode(env: Envelope) -> bytes:
    return _encoder.encode(env)


def decode(frame: bytes) -> Envelope:
    """Bytes → ``Envelope``; anything else raises ``MalformedFrame`` (whatever the cause)."""
    if len(frame) > MAX_FRAME_BYTES:
        raise MalformedFrame(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        return _decoder.decode(frame)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise MalformedFrame(str(e)[:200]) from e
    except RecursionError as e:
        raise MalformedFrame("nested too deeply to decode") from e
    except Exception as e:  # hostile bytes must never escape as anything but MalformedFrame
        raise MalformedFrame(f"{type(e).__name__}: {str(e)[:160]}") from e


# Who may send what to whom. The runner's own envelopes never pass this check: the broker
# posts them itself. Everything else comes from an agent socket.
CONTROL = (Configure, Ask, ToolCallMsg, Heartbeat, Shutdown)
"""Bodies an agent takes from the runner only."""
_TO_AGENTS, _REPORT, _RUNNER_ONLY = 0, 1, 2
_RULE: dict[type, int] = {
    Peer: _TO_AGENTS,
    **dict.fromkeys((Hello, Ready, Reply, ToolResultMsg, Heartbeat, Error), _REPORT),
    **dict.fromkeys((Configure, Ask, ToolCallMsg, Shutdown), _RUNNER_ONLY),
}
_RESERVED = frozenset((RUNNER, BROADCAST, ""))


def refusal(env: Envelope, sender: str) -> str | None:
    """Why an envelope that came in from ``sender`` (an agent's authenticated name) must be
    refused, or ``None``: its ``src`` must be the sender, agents send ``Peer`` to agents and
    report to the runner, and nobody but the runner sends control messages."""
    if env.src != sender:
        return f"src {env.src[:64]!r} is not the sender {sender[:64]!r}"
    if sender in _RESERVED:
        return f"no agent may be called {sender!r}"
    rule = _RULE[type(env.body)]
    if rule == _TO_AGENTS:
        if env.dst == RUNNER or env.dst == sender:
            return f"peer messages go to other agents, not {env.dst!r}"
        return None
    if rule == _REPORT:
        if env.dst != RUNNER:
            return f"{body_kind(env.body)} goes to the runner, not {env.dst[:64]!r}"
        return None
    return f"only the runner sends {body_kind(env.body)}"


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

    With ``per_dst`` (the default) the sequence counts per destination: every stream
    ``src → dst`` is gapless on its own, so its receiver (an agent, or the broker for what is
    addressed to the runner) sees a lost message as a gap. Without it, one sequence per sender.
    """

    def __init__(self, run_id: str, src: str, *, per_dst: bool = True) -> None:
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
