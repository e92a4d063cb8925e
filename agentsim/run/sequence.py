"""A run's message sequence, in a form two runs can be compared by: what a replay must repeat.

Every envelope of the journal is kept per stream (``src>dst``) in broker order — the order a
sender sent them in, which timing cannot change — with what timing or the process decides
taken out: message ids (pid-derived) become stream positions (``runner>bob#3``), wherever a
body refers to one (``in_reply_to``, ``ref``, ``peers_seen``). Control traffic (hello,
configure, ready, shutdown; heartbeats are not journaled) and the transport reports agents
send about what they saw arrive (gaps, repeats) are run machinery and left out. Bodies are
compared whole: asks with their messages and sampling, replies with their completions,
tool calls with their arguments, tool results with their content.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import Any, NamedTuple

from agentsim.journal import read_journal

CONTROL_KINDS = frozenset({"hello", "configure", "ready", "heartbeat", "shutdown"})
REPORT_ERRORS = frozenset(
    {"message_lost", "out_of_order", "duplicate_delivery", "malformed_message"}
)
_ID_FIELDS = ("in_reply_to", "ref")
_ID_LISTS = ("peers_seen",)

Stream = list[tuple[str, str, int, Any]]
"""One stream's messages: (kind, task_id, round, body with ids named by position)."""


def message_sequence(path: Path, tasks: Collection[str] | None = None) -> dict[str, Stream]:
    """The compared form of journal ``path``'s messages, by stream; ``tasks`` keeps only
    the messages of those tasks."""
    kept = []
    for rec in read_journal(path):
        if rec.get("event") != "envelope" or rec.get("kind") in CONTROL_KINDS:
            continue
        body = rec.get("body") or {}
        if rec.get("kind") == "error" and body.get("kind") in REPORT_ERRORS:
            continue
        if tasks is not None and rec.get("task_id") not in tasks:
            continue
        kept.append(rec)
    position: Counter[str] = Counter()
    names: dict[str, str] = {}
    for rec in kept:
        stream = f"{rec['src']}>{rec['dst']}"
        position[stream] += 1
        names[str(rec["msg_id"])] = f"{stream}#{position[stream]}"
    streams: dict[str, Stream] = {}
    for rec in kept:
        body = dict(rec.get("body") or {})
        for key in _ID_FIELDS:
            if body.get(key):
                body[key] = names.get(str(body[key]), "(not in the compared messages)")
        for key in _ID_LISTS:
            if isinstance(body.get(key), list):
                body[key] = [names.get(str(m), "(not compared)") for m in body[key]]
        stream = f"{rec['src']}>{rec['dst']}"
        streams.setdefault(stream, []).append(
            (str(rec["kind"]), str(rec.get("task_id", "")), int(rec.get("round", 0)), body)
        )
    return streams


class Comparison(NamedTuple):
    """How two message sequences compare: ``identical``, how many messages and streams the
    first holds, and the first difference as one line (``""`` when identical)."""

    identical: bool
    messages: int
    streams: int
    difference: str


def compare(before: dict[str, Stream], after: dict[str, Stream]) -> Comparison:
    """Stream by stream, message by message; the first difference found, in stream order."""
    total = sum(len(v) for v in before.values())
    for stream in sorted(set(before) | set(after)):
        a, b = before.get(stream, []), after.get(stream, [])
        for i, (x, y) in enumerate(zip(a, b, strict=False), start=1):
            if x != y:
                return Comparison(False, total, len(before), f"{stream}#{i}: {_diff(x, y)}")
        if len(a) != len(b):
            return Comparison(
                False,
                total,
                len(before),
                f"{stream}: {len(a)} messages recorded, {len(b)} in the replay",
            )
    return Comparison(True, total, len(before), "")


def _diff(x: tuple[str, str, int, Any], y: tuple[str, str, int, Any]) -> str:
    if x[:3] != y[:3]:
        return f"{x[0]} of {x[1]} round {x[2]} recorded, {y[0]} of {y[1]} round {y[2]} replayed"
    keys = sorted(k for k in set(x[3]) | set(y[3]) if x[3].get(k) != y[3].get(k))
    field = keys[0] if keys else "?"
    return (
        f"{x[0]} of {x[1]} round {x[2]} differs in {field}: "
        f"{str(x[3].get(field))[:80]!r} recorded, {str(y[3].get(field))[:80]!r} replayed"
    )
