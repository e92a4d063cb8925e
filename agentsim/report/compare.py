"""``agentsim compare RUN_DIR...``: one row per configuration, as in the seed study's Table 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentsim.journal import read_journal
from agentsim.report.study import examples_effect, initial_vote, load_run, study
from agentsim.report.study_render import markdown_to_html, plot_failure_mix, render_study


def find_runs(paths: list[Path]) -> list[Path]:
    """Run folders among ``paths`` (a sweep's parent folder stands for its children)."""
    runs: list[Path] = []
    for p in paths:
        if (p / "journal.jsonl").is_file():
            runs.append(p)
        elif p.is_dir():
            runs += sorted(c for c in p.iterdir() if (c / "journal.jsonl").is_file())
    return runs


def _energy_per_token(run: Path, tokens: int) -> float | None:
    joules = None
    for rec in read_journal(run / "journal.jsonl"):
        if rec.get("event") == "energy" and rec.get("joules") is not None:
            joules = float(rec["joules"])
    if joules is None or tokens <= 0:
        return None
    return joules / tokens


def compare_rows(runs: list[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for run in runs:
        s = json.loads((run / "summary.json").read_text())
        n = max(1, s["tasks_done"])
        gen = s["completion_tokens_per_task"] * n
        rss = max((a.get("rss_mb") or 0.0 for a in s["agents"].values()), default=0.0)
        rows.append(
            {
                "run": run.name,
                "protocol": s["protocol"],
                "seed": s["seed"],
                "agents": len(s["agents"]),
                "tasks": s["tasks_done"],
                "accuracy": s["accuracy"],
                "ci95": s["accuracy_ci95"],
                "completion_rate": s["completion_rate"],
                "latency_p50_s": s["latency_p50_s"],
                "latency_p95_s": s["latency_p95_s"],
                "prompt_tokens_per_task": s["prompt_tokens_per_task"],
                "completion_tokens_per_task": s["completion_tokens_per_task"],
                "tokens_per_s": s["tokens_per_s"],
                "peak_rss_mb_per_agent": rss,
                "energy_j_per_token": _energy_per_token(run, int(gen)),
                "failures": s["failures"],
                "malformed_call_rate": s.get("malformed_call_rate"),
                "partial": s["partial"],
            }
        )
    for r in rows:
        same_seed = [b for b in rows if b["protocol"] == "solo" and b["seed"] == r["seed"]]
        base = (
            same_seed[0] if same_seed else next((b for b in rows if b["protocol"] == "solo"), None)
        )
        if base is None or base["accuracy"] == 0:
            r["relative_gain"] = None
        else:
            r["relative_gain"] = round((r["accuracy"] - base["accuracy"]) / base["accuracy"], 4)
    return rows


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def render_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| config | protocol | acc (95% CI) | rel. gain vs solo | completion | latency p50/p95 s "
        "| tokens/task prompt/compl. | tok/s | peak RSS MB/agent | J/token | malformed calls | failures |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lo, hi = r["ci95"]
        fails = ", ".join(f"{k} {v}" for k, v in r["failures"].items()) or "—"
        gain = "n/a" if r["relative_gain"] is None else f"{r['relative_gain']:+.1%}"
        lines.append(
            f"| {r['run']} | {r['protocol']} | {r['accuracy']:.3f} ({lo:.3f}–{hi:.3f}) | {gain} "
            f"| {r['completion_rate']:.3f} | {r['latency_p50_s']:.2f}/{r['latency_p95_s']:.2f} "
            f"| {r['prompt_tokens_per_task']:.0f}/{r['completion_tokens_per_task']:.0f} | {_fmt(r['tokens_per_s'], 1)} "
            f"| {r['peak_rss_mb_per_agent']:.0f} | {_fmt(r['energy_j_per_token'], 4)} "
            f"| {_fmt(r['malformed_call_rate'])} | {fails} |"
        )
    return "\n".join(lines) + "\n"


def plot_quality_vs_cost(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for r in rows:
        cost = r["prompt_tokens_per_task"] + r["completion_tokens_per_task"]
        lo, hi = r["ci95"]
        ax.errorbar(
            [cost],
            [r["accuracy"]],
            yerr=[[r["accuracy"] - lo], [hi - r["accuracy"]]],
            fmt="o",
            capsize=4,
        )
        ax.annotate(
            r["run"][:24],
            (cost, r["accuracy"]),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    ax.set_xlabel("tokens per task (prompt + completion)")
    ax.set_ylabel("accuracy (95% Wilson CI)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("quality vs cost")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def render_html(rows: list[dict[str, Any]], runs: list[Path], out_dir: Path, png: Path) -> str:
    """A self-contained comparison page: the table, the plot inline, links to each run's report."""
    import base64
    import html
    import os

    image = base64.b64encode(png.read_bytes()).decode()
    head = [
        "config",
        "protocol",
        "accuracy (95% CI)",
        "rel. gain vs solo",
        "completion",
        "latency p50/p95 s",
        "tokens/task",
        "tok/s",
        "peak RSS MB/agent",
        "J/token",
        "malformed calls",
        "failures",
    ]
    body = []
    for r, run in zip(rows, runs, strict=True):
        link = os.path.relpath(run / "report.html", out_dir)
        lo, hi = r["ci95"]
        gain = "n/a" if r["relative_gain"] is None else f"{r['relative_gain']:+.1%}"
        cells = [
            f'<a href="{html.escape(link)}">{html.escape(r["run"])}</a>',
            html.escape(r["protocol"]),
            f"{r['accuracy']:.3f} ({lo:.3f}–{hi:.3f})",
            gain,
            f"{r['completion_rate']:.3f}",
            f"{r['latency_p50_s']:.2f} / {r['latency_p95_s']:.2f}",
            f"{r['prompt_tokens_per_task']:.0f} + {r['completion_tokens_per_task']:.0f}",
            _fmt(r["tokens_per_s"], 1),
            f"{r['peak_rss_mb_per_agent']:.0f}",
            _fmt(r["energy_j_per_token"], 4),
            _fmt(r["malformed_call_rate"]),
            html.escape(", ".join(f"{k} {v}" for k, v in r["failures"].items()) or "—"),
        ]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>agentsim comparison</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}th{background:#f3f3f3}</style>"
        "</head><body><h1>Comparison</h1><table><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(body)
        + "</table>"
        + f"<h2>Quality vs cost</h2><img alt='quality vs cost' src='data:image/png;base64,{image}'>"
        + "</body></html>\n"
    )


def write_comparison(runs: list[Path], out_dir: Path) -> str:
    rows = compare_rows(runs)
    table = render_table(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.md").write_text("# Comparison\n\n" + table, encoding="utf-8")
    (out_dir / "comparison.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    plot_quality_vs_cost(rows, out_dir / "quality_vs_cost.png")
    page = render_html(rows, runs, out_dir, out_dir / "quality_vs_cost.png")
    (out_dir / "comparison.html").write_text(page, encoding="utf-8")
    study_runs = [load_run(r) for r in runs if (r / "scenario.json").is_file()]
    study_runs += [d for r in study_runs if (d := initial_vote(r)) is not None]
    groups = [g for g in study(study_runs) if len(g["rows"]) > 1]
    effects = examples_effect(study_runs)
    if not groups and not effects:
        return table
    text = render_study(groups, effects)
    (out_dir / "study.md").write_text(text, encoding="utf-8")
    (out_dir / "study.json").write_text(
        json.dumps({"groups": groups, "examples_effect": effects}, indent=2) + "\n",
        encoding="utf-8",
    )
    (out_dir / "study.html").write_text(markdown_to_html(text), encoding="utf-8")
    plot_failure_mix(groups, out_dir / "failure_mix.png")
    return table + "\n" + text
