"""``summary.json`` from journal records: the same function runs live and in ``agentsim report``."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from agentsim.failures import KIND_TO_CATEGORY


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (sensible at 0/n and n/n)."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _r(x: float, nd: int = 4) -> float:
    return round(x, nd)


def _quality(r: dict[str, Any]) -> float:
    q = r.get("quality")
    return float(q) if q is not None else (1.0 if r.get("correct") else 0.0)


def by_category(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task type: n, accuracy, mean quality, completion, latency and tokens per sample."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(str(r.get("category") or ""), []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for cat, rows in sorted(groups.items()):
        n = len(rows)
        gen = sum(int(r.get("completion_tokens", 0)) for r in rows)
        decode = sum(float(r.get("decode_s", 0.0)) for r in rows)
        out[cat] = {
            "n": n,
            "accuracy": _r(sum(1 for r in rows if r.get("correct")) / n),
            "quality": _r(sum(_quality(r) for r in rows) / n),
            "completion_rate": _r(sum(1 for r in rows if r.get("completed")) / n),
            "latency_mean_s": _r(sum(float(r.get("latency_s", 0.0)) for r in rows) / n),
            "tokens_per_sample": _r(
                sum(
                    int(r.get("prompt_tokens", 0)) + int(r.get("completion_tokens", 0))
                    for r in rows
                )
                / n,
                1,
            ),
            "tokens_per_s": _r(gen / decode, 2) if decode > 0 else None,
        }
    return out


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate a run's journal records into the summary written to ``summary.json``."""
    start: dict[str, Any] = {}
    end: dict[str, Any] = {}
    planned = 0
    agents: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    messages = 0
    nbytes = 0
    tool_calls = 0
    faults: Counter[str] = Counter()
    energy: float | None = None
    for rec in records:
        ev = rec.get("event")
        if ev == "envelope":
            messages += 1
            nbytes += int(rec.get("bytes", 0))
            tool_calls += rec.get("kind") == "tool_call"
        elif ev == "task_result":
            results.append(rec)
        elif ev == "failure":
            failures.append(rec)
        elif ev == "agent_ready":
            agents[str(rec.get("agent"))] = {
                "pid": rec.get("pid"),
                "engine": rec.get("engine"),
                "model": rec.get("model"),
                "load_s": rec.get("load_s"),
                "rss_mb": _r(int(rec.get("rss_bytes", 0)) / 2**20, 1),
                "threads": rec.get("threads"),
            }
        elif ev == "fault":
            faults[str(rec.get("kind"))] += 1
        elif ev == "run_start":
            start = rec
        elif ev == "run_end":
            end = rec
        elif ev == "tasks_loaded":
            planned = int(rec.get("count", 0))
        elif ev == "energy" and rec.get("joules") is not None:
            energy = float(rec["joules"])
    n = len(results)
    correct = sum(1 for r in results if r.get("correct"))
    completed = sum(1 for r in results if r.get("completed"))
    latencies = [float(r.get("latency_s", 0.0)) for r in results]
    prompt = sum(int(r.get("prompt_tokens", 0)) for r in results)
    gen = sum(int(r.get("completion_tokens", 0)) for r in results)
    engine_s = sum(float(r.get("decode_s", 0.0)) for r in results)
    lo, hi = wilson(correct, n)
    kinds = Counter(str(f.get("kind")) for f in failures)
    by_cat: dict[str, list[int]] = {}
    for r in results:
        tally = by_cat.setdefault(str(r.get("category") or ""), [0, 0])
        tally[0] += 1 if r.get("correct") else 0
        tally[1] += 1
    categories = Counter(KIND_TO_CATEGORY.get(k, "other") for k in kinds.elements())
    return {
        "run_id": start.get("run_id", ""),
        "scenario": start.get("scenario", ""),
        "protocol": start.get("protocol", ""),
        "seed": start.get("seed", 0),
        "partial": not bool(end.get("completed", False)),
        "tasks_planned": planned,
        "tasks_done": n,
        "accuracy": _r(correct / n) if n else 0.0,
        "accuracy_ci95": [_r(lo), _r(hi)],
        "correct": correct,
        "accuracy_by_category": {
            c: _r(k / m) for c, (k, m) in sorted(by_cat.items()) if c and len(by_cat) > 1
        },
        "completion_rate": _r(completed / n) if n else 0.0,
        "latency_p50_s": _r(percentile(latencies, 50)),
        "latency_p95_s": _r(percentile(latencies, 95)),
        "prompt_tokens_per_task": _r(prompt / n, 2) if n else 0.0,
        "completion_tokens_per_task": _r(gen / n, 2) if n else 0.0,
        "tokens_per_s": _r(gen / engine_s, 2) if engine_s > 0 else None,
        "messages": messages,
        "bytes": nbytes,
        "messages_per_task": _r(messages / n, 2) if n else 0.0,
        "tool_calls": tool_calls,
        "malformed_call_rate": _r(
            kinds["tool_call_malformed"] / (tool_calls + kinds["tool_call_malformed"])
        )
        if tool_calls + kinds["tool_call_malformed"]
        else None,
        "quality": _r(sum(_quality(r) for r in results) / n) if n else 0.0,
        "by_category": by_category(results),
        "energy_j": energy,
        "energy_j_per_token": _r(energy / gen, 6) if energy is not None and gen else None,
        "failures": dict(sorted(kinds.items())),
        "failure_categories": dict(sorted(categories.items())),
        "failures_total": sum(kinds.values()),
        "faults_injected": dict(sorted(faults.items())),
        "agents": agents,
        "wall_s": _r(float(end.get("t", 0.0)), 3),
    }
