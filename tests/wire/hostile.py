"""Hypothesis strategies for hostile frames: well-formed envelopes with hostile contents.

msgspec can only encode what its types allow, so frames are written by a small MessagePack
writer of our own: it encodes maps with any keys, Ext values, bytes, nesting thousands of
levels deep (``Deep``) and integers at the 64-bit edges — what another process may send.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st


@dataclass(frozen=True)
class Ext:
    code: int
    data: bytes


@dataclass(frozen=True)
class Deep:
    """``depth`` nested arrays (or single-entry maps) around ``nil``."""

    depth: int
    maps: bool = False


def pack(v: Any) -> bytes:
    """MessagePack for ``v``; iterative for ``Deep`` so any depth can be written."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, Deep):
        return (b"\x81\xa1k" if v.maps else b"\x91") * v.depth + b"\xc0"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if v >= 0:
            return b"\xcf" + struct.pack(">Q", min(v, 2**64 - 1))
        return b"\xd3" + struct.pack(">q", max(v, -(2**63)))
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        raw = v.encode("utf-8", "surrogatepass")
        return b"\xdb" + struct.pack(">I", len(raw)) + raw
    if isinstance(v, bytes):
        return b"\xc6" + struct.pack(">I", len(v)) + v
    if isinstance(v, Ext):
        return b"\xc9" + struct.pack(">Ib", len(v.data), v.code) + v.data
    if isinstance(v, list | tuple):
        return b"\xdd" + struct.pack(">I", len(v)) + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        return (
            b"\xdf" + struct.pack(">I", len(v)) + b"".join(pack(k) + pack(x) for k, x in v.items())
        )
    raise TypeError(type(v))


AGENTS = ["alice", "bob", "mallory"]
KINDS = [
    "hello",
    "configure",
    "ready",
    "ask",
    "reply",
    "peer",
    "tool_call",
    "tool_result",
    "heartbeat",
    "error",
    "shutdown",
]
CONTROL = {"configure", "ask", "tool_call", "shutdown"}

odd_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "\x00", "\u202e", "runner", "*", "alice\x00bob", "🦜" * 50, "\ud800"]),
)
hostile_value = st.one_of(
    st.builds(Deep, st.integers(30, 5000), st.booleans()),
    st.builds(Ext, st.integers(-128, 127), st.binary(max_size=16)),
    st.binary(max_size=64),
    st.sampled_from(
        [float("nan"), float("inf"), -(2**63), 2**64 - 1, -1, True, None, {}, [], "x" * 300]
    ),
    st.dictionaries(
        st.one_of(st.integers(), st.tuples(st.integers()), st.binary(max_size=4), st.none()),
        st.integers(),
        min_size=1,
        max_size=3,
    ),
    st.builds(lambda n: "Z" * n, st.integers(10_000, 300_000)),
    odd_text,
)
json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=8)),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=10,
)


def _body(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """A body of ``kind`` that would decode, with plausible (not necessarily honest) fields."""
    msgs = st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "system", "assistant"]), "content": odd_text}
        ),
        max_size=2,
    )
    tool = st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries({"name": odd_text, "parameters": json_like}),
        }
    )
    fields: dict[str, st.SearchStrategy[Any]] = {
        "hello": st.fixed_dictionaries({"agent": odd_text, "pid": st.integers(0, 2**31)}),
        "configure": st.fixed_dictionaries(
            {"engine": st.fixed_dictionaries({"engine": st.just("scripted")})}
        ),
        "ready": st.fixed_dictionaries(
            {
                "agent": odd_text,
                "pid": st.integers(0, 9),
                "engine": odd_text,
                "model": odd_text,
                "load_s": st.floats(0, 9),
                "rss_bytes": st.integers(0, 9),
            }
        ),
        "ask": st.fixed_dictionaries(
            {"messages": msgs},
            optional={"tools": st.lists(tool, max_size=2), "response_schema": json_like},
        ),
        "reply": st.fixed_dictionaries(
            {"in_reply_to": odd_text, "completion": st.fixed_dictionaries({"text": odd_text})}
        ),
        "peer": st.fixed_dictionaries({"content": odd_text}),
        "tool_call": st.fixed_dictionaries(
            {"call_id": odd_text, "name": odd_text, "arguments": odd_text}
        ),
        "tool_result": st.fixed_dictionaries({"call_id": odd_text, "content": odd_text}),
        "heartbeat": st.fixed_dictionaries({"busy": st.booleans()}),
        "error": st.fixed_dictionaries(
            {"kind": st.sampled_from(["message_lost", "engine_error", "zzz"]), "detail": odd_text}
        ),
        "shutdown": st.fixed_dictionaries({"reason": odd_text}),
    }
    return fields[kind].map(lambda d: {"type": kind, **d})


# Where a hostile value is planted: a header field, a body field, an unknown key, or a nested
# free-form field (tools, response schema, engine options, completion).
PLACES = [
    ("seq",),
    ("src",),
    ("dst",),
    ("msg_id",),
    ("round",),
    ("zzz_unknown",),
    ("body", "zzz_unknown"),
    ("body", "content"),
    ("body", "messages"),
    ("body", "tools"),
    ("body", "response_schema"),
    ("body", "engine", "options"),
    ("body", "engine", "options", "deep"),
    ("body", "completion", "text"),
    ("body", "tools", 0, "function", "parameters"),
    ("body",),
]


def _plant(env: dict[str, Any], place: tuple[Any, ...], value: Any) -> None:
    node: Any = env
    for key in place[:-1]:
        if isinstance(key, int):
            if not isinstance(node, list) or not node:
                return
            node = node[key]
        else:
            if not isinstance(node, dict):
                return
            if not isinstance(node.get(key), dict | list):
                node[key] = {}
            node = node[key]
    if isinstance(node, dict):
        node[place[-1]] = value


@st.composite
def envelope(draw: st.DrawFn, sender: str, number: int) -> dict[str, Any]:
    """An envelope dict from ``sender``: any kind, to anyone, honest or not, maybe hostile."""
    kind = draw(st.sampled_from(KINDS))
    env: dict[str, Any] = {
        "run_id": "fuzz",
        "msg_id": f"{sender}-fuzz-{number}",
        "seq": draw(st.one_of(st.integers(1, 40), st.just(number + 1))),
        "src": draw(st.sampled_from([sender, sender, *AGENTS, "runner", "*", ""])),
        "dst": draw(st.sampled_from(["runner", "*", *AGENTS, "nobody"])),
        "body": draw(_body(kind)),
        "task_id": draw(st.sampled_from(["", "gsm8k-0", "gsm8k-1"])),
    }
    for _ in range(draw(st.integers(0, 2))):
        _plant(env, draw(st.sampled_from(PLACES)), draw(hostile_value))
    return env


@st.composite
def frame(draw: st.DrawFn, sender: str, number: int) -> bytes:
    """One frame: mostly hostile envelopes, some random bytes, some truncated envelopes."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.binary(max_size=200))
    raw = pack(draw(envelope(sender, number)))
    if choice == 1:
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    return raw


@st.composite
def frames(
    draw: st.DrawFn, senders: list[str], min_size: int, max_size: int
) -> list[tuple[str, bytes]]:
    """``(sender, frame)`` pairs from several senders."""
    n = draw(st.integers(min_size, max_size))
    out = []
    for i in range(n):
        sender = draw(st.sampled_from(senders))
        out.append((sender, draw(frame(sender, i))))
    return out
