"""The cost charts of ``report.html``: tokens and latency per agent and per round.

Pure data from the journal (replies and the asks they answer); the template draws the bars.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from agentsim.report.summary import percentile


def bars(
    rows: list[tuple[str, list[tuple[float, str]], str]], width: int = 320
) -> list[dict[str, Any]]:
    """Scale stacked bar segments to pixels: ``rows`` is (label, [(value, css)], caption)."""
    top = max((sum(v for v, _ in segs) for _, segs, _ in rows), default=0.0) or 1.0
    out = []
    for label, segs, caption in rows:
        x = 0.0
        parts = []
        for value, css in segs:
            w = width * value / top
            parts.append({"x": round(x, 1), "w": round(w, 1), "css": css, "value": value})
            x += w
        out.append({"label": label, "segments": parts, "caption": caption})
    return out


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def cost_tables(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Tokens and latency per agent and per round, from replies (latency = ask → reply)."""
    asked: dict[str, float] = {}
    per_agent: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"prompt": 0, "completion": 0, "lat": [], "decode_s": 0.0, "replies": 0}
    )
    per_round: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"prompt": 0, "completion": 0, "lat": [], "decode_s": 0.0, "replies": 0}
    )
    for rec in records:
        if rec.get("event") != "envelope":
            continue
        body = rec.get("body") if isinstance(rec.get("body"), dict) else None
        if body is None:
            continue
        if rec.get("kind") == "ask":
            asked[str(rec.get("msg_id"))] = float(rec.get("t", 0.0))
        elif rec.get("kind") == "reply":
            comp = body.get("completion") or {}
            usage = comp.get("usage") or {}
            timings = comp.get("timings") or {}
            for bucket in (per_agent[str(rec.get("src"))], per_round[int(rec.get("round") or 0)]):
                bucket["prompt"] += int(usage.get("prompt_tokens") or 0)
                bucket["completion"] += int(usage.get("completion_tokens") or 0)
                bucket["decode_s"] += float(timings.get("decode_s") or 0.0)
                bucket["replies"] += 1
                t_ask = asked.get(str(body.get("in_reply_to")))
                if t_ask is not None:
                    bucket["lat"].append(float(rec.get("t", 0.0)) - t_ask)

    def table(groups: dict[Any, dict[str, Any]], label: str) -> dict[str, Any]:
        rows = []
        for key, g in sorted(
            groups.items(), key=lambda kv: str(kv[0]) if label == "agent" else int(kv[0])
        ):
            lat = g["lat"]
            rows.append(
                {
                    "key": str(key),
                    "replies": g["replies"],
                    "prompt": g["prompt"],
                    "completion": g["completion"],
                    "lat_mean": _mean(lat),
                    "lat_p95": percentile(lat, 95),
                    "tok_s": g["completion"] / g["decode_s"] if g["decode_s"] > 0 else None,
                }
            )
        tokens = bars(
            [
                (
                    f"{label} {r['key']}" if label == "round" else r["key"],
                    [(r["prompt"], "prompt"), (r["completion"], "completion")],
                    f"{r['prompt']} + {r['completion']}",
                )
                for r in rows
            ]
        )
        latency = bars(
            [
                (
                    f"{label} {r['key']}" if label == "round" else r["key"],
                    [(r["lat_mean"], "latency")],
                    f"{r['lat_mean'] * 1000:.1f} ms mean, {r['lat_p95'] * 1000:.1f} ms p95",
                )
                for r in rows
            ]
        )
        return {"rows": rows, "tokens": tokens, "latency": latency}

    return {"agent": table(per_agent, "agent"), "round": table(per_round, "round")}
