"""``agentsim export``: a run's transcripts and results in formats other tools read.

- ``openai``: one JSON line per (task, agent) conversation in OpenAI chat format — the
  messages the runner sent in its ``Ask`` bodies, each reply appended as an ``assistant``
  message — plus a ``metadata`` object naming the run, task, agent and model.
- ``csv``: one row per task result (stdlib ``csv``).
- ``parquet``: the same table through pyarrow, only when pyarrow is importable.

Everything is read from ``journal.jsonl``, like the other reports.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FORMATS = ("openai", "csv", "parquet")
DEFAULT_NAMES = {
    "openai": "transcripts.openai.jsonl",
    "csv": "results.csv",
    "parquet": "results.parquet",
}

#: Result columns in a fixed order; keys a newer runner adds follow in first-seen order.
RESULT_COLUMNS = (
    "task_id",
    "answer",
    "extracted",
    "gold",
    "correct",
    "completed",
    "rounds",
    "by",
    "prompt_tokens",
    "completion_tokens",
    "decode_s",
    "latency_s",
    "messages",
    "bytes",
    "failures",
)


class ExportError(Exception):
    """The export cannot be made as asked (missing optional dependency, bad format)."""


def _assistant(completion: dict[str, Any]) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": completion.get("text", "")}
    if completion.get("tool_calls"):
        msg["tool_calls"] = completion["tool_calls"]
    return msg


def conversations(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One OpenAI-format conversation per (task, agent), in the order the tasks started.

    An ``Ask`` whose messages extend the conversation so far replaces it (protocols resend the
    history each round); one that does not is appended as a new segment, so nothing is lost.
    """
    run_id = ""
    models: dict[str, str] = {}
    convs: dict[tuple[str, str], dict[str, Any]] = {}
    asks: dict[str, tuple[str, str]] = {}
    for rec in records:
        ev = rec.get("event")
        if ev == "run_start":
            run_id = str(rec.get("run_id", ""))
        elif ev == "agent_ready":
            models[str(rec.get("agent"))] = str(rec.get("model", ""))
        if ev != "envelope" or not rec.get("task_id"):
            continue
        raw = rec.get("body")
        body: dict[str, Any] = raw if isinstance(raw, dict) else {}
        kind = rec.get("kind")
        if kind == "ask":
            key = (str(rec["task_id"]), str(rec.get("dst")))
            conv = convs.setdefault(
                key, {"messages": [], "tools": None, "asks": 0, "replies": 0, "usage": {}}
            )
            sent = list(body.get("messages") or [])
            so_far = conv["messages"]
            conv["messages"] = sent if sent[: len(so_far)] == so_far else so_far + sent
            if body.get("tools"):
                conv["tools"] = body["tools"]
            conv["asks"] += 1
            asks[str(rec.get("msg_id"))] = key
        elif kind == "reply":
            key_or_none = asks.get(str(body.get("in_reply_to")))
            if key_or_none is None:
                continue
            conv = convs[key_or_none]
            completion = body.get("completion") or {}
            conv["messages"].append(_assistant(completion))
            conv["replies"] += 1
            for k, v in (completion.get("usage") or {}).items():
                conv["usage"][k] = conv["usage"].get(k, 0) + int(v or 0)
    out = []
    for (task_id, agent), conv in convs.items():
        line: dict[str, Any] = {"messages": conv["messages"]}
        if conv["tools"]:
            line["tools"] = conv["tools"]
        line["metadata"] = {
            "run_id": run_id,
            "task_id": task_id,
            "agent": agent,
            "model": models.get(agent, ""),
            "asks": conv["asks"],
            "replies": conv["replies"],
            "usage": conv["usage"],
        }
        out.append(line)
    return out


def result_rows(records: Iterable[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and one row per ``task_result``; lists (failures) are joined with ``;``."""
    rows: list[dict[str, Any]] = []
    columns = list(RESULT_COLUMNS)
    for rec in records:
        if rec.get("event") != "task_result":
            continue
        row = {k: v for k, v in rec.items() if k not in ("event", "t")}
        for k in row:
            if k not in columns:
                columns.append(k)
        for k, v in row.items():
            if isinstance(v, list):
                row[k] = ";".join(str(x) for x in v)
            elif isinstance(v, dict):
                row[k] = json.dumps(v, sort_keys=True)
        rows.append(row)
    return columns, rows


def write_openai(records: list[dict[str, Any]], dest: Path) -> int:
    convs = conversations(records)
    with open(dest, "w", encoding="utf-8") as fh:
        for c in convs:
            fh.write(json.dumps(c, ensure_ascii=False) + "\n")
    return len(convs)


def write_csv(records: list[dict[str, Any]], dest: Path) -> int:
    columns, rows = result_rows(records)
    with open(dest, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(rows)
    return len(rows)


def write_parquet(records: list[dict[str, Any]], dest: Path) -> int:
    try:
        import pyarrow as pa  # type: ignore[import-not-found, unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise ExportError(
            "--format parquet needs pyarrow, which is not installed (pip install pyarrow)"
        ) from None
    columns, rows = result_rows(records)
    table = pa.table({c: [r.get(c) for r in rows] for c in columns})
    pq.write_table(table, dest)
    return len(rows)


def export(records: list[dict[str, Any]], fmt: str, dest: Path) -> int:
    """Write ``records`` as ``fmt`` to ``dest``; returns the number of lines/rows written."""
    match fmt:
        case "openai":
            return write_openai(records, dest)
        case "csv":
            return write_csv(records, dest)
        case "parquet":
            return write_parquet(records, dest)
        case _:
            raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
