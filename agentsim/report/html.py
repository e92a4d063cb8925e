"""``report.html``: one self-contained page per run, built from the journal alone.

The page holds summary cards, a message sequence diagram per task (one lane per party, one
arrow per envelope in journal order, injected faults, protocol phases and failures on the same
timeline; clicking an arrow shows the full message), a failure table whose evidence links jump
to the messages, and cost charts (tokens and latency per agent and per round). Everything is
inline (CSS, JS, SVG), so the file opens from disk with no network.

Templates live in ``agentsim/report/templates``; ``base.html.j2`` leaves a ``sweep`` block
empty so a cross-run page (``agentsim compare``) can extend it.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from agentsim.report.costs import bars, cost_tables

#: A task diagram draws at most this many rows; the rest is counted, not drawn.
MAX_ROWS_PER_TASK = 400
#: Message content shown in the page is cut at this many characters per string.
MAX_CONTENT_CHARS = 20_000

LANE_W = 150
LEFT = 86
ROW_H = 24
TOP = 44
RUN_BUCKET = "(run)"


@dataclass(slots=True)
class Row:
    """One line of a sequence diagram: an envelope, a fault, a failure or a phase change."""

    kind: str  # "msg" | "fault" | "failure" | "phase"
    y: int
    t: float
    anchor: str = ""
    label: str = ""
    x1: int = 0
    x2: int = 0
    css: str = ""
    ref: str = ""  # msg_id for messages, failure index for failures


@dataclass(slots=True)
class TaskView:
    """Everything the template needs for one task's section."""

    task_id: str
    anchor: str
    result: dict[str, Any] | None
    lanes: list[tuple[str, int]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    hidden: int = 0
    width: int = 0
    height: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def data_json(self) -> Markup:
        return script_json(self.messages)


def anchor_id(prefix: str, ident: str) -> str:
    """A stable HTML id for a message, fault or task (ids from the journal may hold any text)."""
    return f"{prefix}-" + re.sub(r"[^A-Za-z0-9_.-]", "_", ident)


def script_json(data: Any) -> Markup:
    """JSON safe to place inside ``<script type="application/json">``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _cap(value: Any) -> Any:
    """Cut very long strings inside a message body so one huge prompt cannot bloat the page."""
    if isinstance(value, str) and len(value) > MAX_CONTENT_CHARS:
        return (
            value[:MAX_CONTENT_CHARS]
            + f"… [{len(value) - MAX_CONTENT_CHARS} more characters in journal.jsonl]"
        )
    if isinstance(value, dict):
        return {k: _cap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cap(v) for v in value]
    return value


def preview(kind: str, body: dict[str, Any]) -> str:
    """The short label drawn on an arrow."""
    match kind:
        case "ask":
            msgs = body.get("messages") or []
            last = msgs[-1].get("content", "") if msgs and isinstance(msgs[-1], dict) else ""
            return f"ask: {_clip(str(last or ''), 28)}"
        case "reply":
            comp = body.get("completion") or {}
            calls = comp.get("tool_calls") or []
            if calls:
                names = ", ".join(str((c.get("function") or {}).get("name", "?")) for c in calls)
                return f"reply → tool {_clip(names, 24)}"
            return f"reply: {_clip(str(comp.get('text', '')), 28)}"
        case "peer":
            return f"peer: {_clip(str(body.get('content', '')), 28)}"
        case "tool_call":
            return f"tool_call {body.get('name', '?')}({_clip(str(body.get('arguments', '')), 18)})"
        case "tool_result":
            err = body.get("error")
            return f"tool_result: {_clip(str(err or body.get('content', '')), 24)}"
        case "error":
            return f"error {body.get('kind', '?')}"
        case _:
            return kind


class _Lanes:
    def __init__(self, names: Iterable[str]) -> None:
        self.order: list[str] = []
        for n in names:
            self.x(n)

    def x(self, name: str) -> int:
        if name not in self.order:
            self.order.append(name)
        return LEFT + LANE_W // 2 + self.order.index(name) * LANE_W


def _task_view(
    task_id: str,
    events: list[dict[str, Any]],
    base_lanes: list[str],
    result: dict[str, Any] | None,
    failure_index: dict[int, int],
) -> TaskView:
    view = TaskView(task_id=task_id, anchor=anchor_id("task", task_id), result=result)
    lanes = _Lanes(base_lanes)
    drops = {
        str(e.get("msg_id"))
        for e in events
        if e.get("event") == "fault" and e.get("kind") in ("drop", "partition")
    }
    drawn = 0
    for ev in events:
        name = ev.get("event")
        t = float(ev.get("t", 0.0))
        if name == "failure":
            view.failures.append(ev)
        if drawn >= MAX_ROWS_PER_TASK:
            view.hidden += 1
            continue
        y = TOP + drawn * ROW_H
        if name == "envelope":
            msg_id = str(ev.get("msg_id", ""))
            kind = str(ev.get("kind", "?"))
            body = ev.get("body") if isinstance(ev.get("body"), dict) else {}
            src, dst = str(ev.get("src", "?")), str(ev.get("dst", "?"))
            css = f"k-{kind}" + (" dropped" if msg_id in drops else "")
            row = Row(
                "msg",
                y,
                t,
                anchor_id("m", msg_id),
                preview(kind, body or {}),
                lanes.x(src),
                lanes.x(dst),
                css,
                msg_id,
            )
            view.messages[msg_id] = {
                k: _cap(ev.get(k))
                for k in (
                    "msg_id",
                    "t",
                    "dir",
                    "seq",
                    "src",
                    "dst",
                    "kind",
                    "task_id",
                    "round",
                    "bytes",
                    "body",
                )
            }
        elif name == "fault":
            fid = str(ev.get("fault_id", ""))
            where = str(ev.get("dst") or ev.get("agent") or "runner")
            what = f"⚡ {ev.get('kind')} {fid}" + (
                f" on {ev.get('msg_id')}" if ev.get("msg_id") else f" ({where})"
            )
            if ev.get("delay_s") is not None:
                what += f" +{ev.get('delay_s')}s"
            row = Row(
                "fault",
                y,
                t,
                anchor_id("x", fid),
                what,
                lanes.x(where),
                0,
                f"f-{ev.get('kind')}",
                str(ev.get("msg_id", "")),
            )
        elif name == "failure":
            idx = failure_index[id(ev)]
            row = Row(
                "failure",
                y,
                t,
                f"fail-{idx}",
                f"✖ {ev.get('kind')}: {_clip(str(ev.get('detail', '')), 70)}",
                css=f"c-{ev.get('category', 'other')}",
                ref=str(idx),
            )
        elif name == "phase":
            rnd = ev.get("round")
            row = Row(
                "phase",
                y,
                t,
                label=f"{ev.get('phase')}" + (f" · round {rnd}" if rnd is not None else ""),
            )
        else:
            continue
        view.rows.append(row)
        drawn += 1
    view.lanes = [(n, lanes.x(n)) for n in lanes.order]
    view.width = LEFT + LANE_W * max(1, len(lanes.order)) + 10
    view.height = TOP + max(1, len(view.rows)) * ROW_H + 10
    return view


def build_view(summary: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Turn journal records into the template's context (pure data, no HTML)."""
    start = next((r for r in records if r.get("event") == "run_start"), {})
    base_lanes = ["runner", *[str(a) for a in start.get("agents") or []]]
    order: list[str] = []
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    results: dict[str, dict[str, Any]] = {}
    failures: list[dict[str, Any]] = []
    failure_index: dict[int, int] = {}
    msg_task: dict[str, str] = {}
    fault_task: dict[str, str] = {}
    for rec in records:
        ev = rec.get("event")
        tid = str(rec.get("task_id") or "")
        if ev == "task_start" and tid not in order:
            order.append(tid)
        elif ev == "task_result":
            results[tid] = rec
        if ev not in ("envelope", "fault", "failure", "phase"):
            continue
        bucket = tid or RUN_BUCKET
        if ev == "envelope":
            msg_task[str(rec.get("msg_id"))] = bucket
        elif ev == "fault":
            fault_task[str(rec.get("fault_id"))] = bucket
        elif ev == "failure":
            failure_index[id(rec)] = len(failures)
            failures.append(rec)
        by_task[bucket].append(rec)
    order += [t for t in by_task if t not in order and t != RUN_BUCKET]
    if RUN_BUCKET in by_task:
        order.append(RUN_BUCKET)
    tasks = [
        _task_view(t, by_task.get(t, []), base_lanes, results.get(t), failure_index) for t in order
    ]
    fail_rows = []
    for i, f in enumerate(failures):
        links = []
        for ev_id in [str(e) for e in f.get("evidence") or []]:
            if ev_id in msg_task:
                links.append(
                    {"text": ev_id, "href": "#" + anchor_id("m", ev_id), "task": msg_task[ev_id]}
                )
            elif ev_id in fault_task:
                links.append(
                    {"text": ev_id, "href": "#" + anchor_id("x", ev_id), "task": fault_task[ev_id]}
                )
            else:
                links.append({"text": ev_id, "href": "", "task": ""})
        fail_rows.append(
            {
                "i": i,
                "rec": f,
                "links": links,
                "task_anchor": anchor_id("task", str(f.get("task_id") or RUN_BUCKET)),
            }
        )
    costs = cost_tables(records)
    kinds = summary.get("failures") or {}
    return {
        "s": summary,
        "tasks": tasks,
        "failures": fail_rows,
        "costs": costs,
        "failure_bars": bars([(k, [(float(v), "failure")], str(v)) for k, v in kinds.items()]),
        "lane_w": LANE_W,
        "left": LEFT,
        "row_h": ROW_H,
        "max_rows": MAX_ROWS_PER_TASK,
        "failures_json": script_json([{k: _cap(v) for k, v in f.items()} for f in failures]),
    }


_env: jinja2.Environment | None = None


def environment() -> jinja2.Environment:
    """The package's template environment (autoescaping on), built once per process."""
    global _env
    if _env is None:
        _env = jinja2.Environment(
            loader=jinja2.PackageLoader("agentsim.report", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _env.filters["fmt"] = lambda v, spec: format(v, spec) if v is not None else "n/a"
    return _env


def asset(name: str) -> Markup:
    """A static file from the templates folder, inlined verbatim (CSS, JS)."""
    text = (resources.files("agentsim.report") / "templates" / name).read_text(encoding="utf-8")
    return Markup(text)


def render_html(summary: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """The whole ``report.html`` for one run."""
    view = build_view(summary, records)
    return (
        environment()
        .get_template("report.html.j2")
        .render(css=asset("report.css"), js=asset("report.js"), **view)
    )
