"""``agentsim compare RUN_DIR...``: one row per configuration, as in the seed study's Table 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentsim.journal import read_journal


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
        "| tokens/task prompt/compl. | tok/s | peak RSS MB/agent | J/token | failures |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lo, hi = r["ci95"]
        fails = ", ".join(f"{k} {v}" for k, v in r["failures"].items()) or "—"
        gain = "n/a" if r["relative_gain"] is None else f"{r['relative_gain']:+.1%}"
        lines.append(
            f"| {r['run']} | {r['protocol']} | {r['accuracy']:.3f} ({lo:.3f}–{hi:.3f}) | {gain} "
            f"| {r['completion_rate']:.3f} | {r['latency_p50_s']:.2f}/{r['latency_p95_s']:.2f} "
            f"| {r['prompt_tokens_per_task']:.0f}/{r['completion_tokens_per_task']:.0f} | {_fmt(r['tokens_per_s'], 1)} "
            f"| {r['peak_rss_mb_per_agent']:.0f} | {_fmt(r['energy_j_per_token'], 4)} | {fails} |"
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


def write_comparison(runs: list[Path], out_dir: Path) -> str:
    rows = compare_rows(runs)
    table = render_table(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.md").write_text("# Comparison\n\n" + table, encoding="utf-8")
    (out_dir / "comparison.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    plot_quality_vs_cost(rows, out_dir / "quality_vs_cost.png")
    return table
