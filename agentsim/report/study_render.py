"""Markdown for the seed-study comparison (``study.md`` beside ``comparison.md``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from agentsim.report.study import FAILURE_MODES


def _f(v: Any, nd: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def render_group(g: dict[str, Any]) -> str:
    lines = [
        f"## {g['model']} · examples = {g['examples']} · seed {g['seed']} · suite {g['suite']}",
        "",
        "Table 2 (seed-study shape). Quality: 1/0 per task, ROUGE-L F1 for summaries; NRQ: mean "
        "over task types of (Q − Q_base)/Q_base where Q_base > 0; completion: a valid final "
        "response, right or wrong.",
        "",
        "| paradigm | style | tasks | accuracy (95% CI) | quality | NRQ (types) | completion "
        "| latency s | tokens/sample | tok/s | J/token | tokens/correct |",
        "|" + "---|" * 12,
    ]
    for r in g["rows"]:
        lo, hi = r["ci95"]
        nrq = "0 (base)" if r["paradigm"] == "Base" else f"{_f(r['nrq'])} ({r['nrq_types']})"
        lines.append(
            f"| {r['paradigm']} | {r['style']} | {r['tasks']} | {r['accuracy']:.3f} ({lo:.3f}–{hi:.3f}) "
            f"| {r['quality']:.3f} | {nrq} | {r['completion_rate']:.3f} | {_f(r['latency_mean_s'], 2)} "
            f"| {_f(r['tokens_per_sample'], 0)} | {_f(r['tokens_per_s'], 1)} | {_f(r['energy_j_per_token'], 5)} "
            f"| {_f(r['tokens_per_correct'], 0)} |"
        )
    paradigms = [r["paradigm"] for r in g["rows"]]
    lines += ["", "Quality per task type and the winner:", ""]
    lines.append("| task type | " + " | ".join(paradigms) + " | winner |")
    lines.append("|" + "---|" * (len(paradigms) + 2))
    for cat, row in g["per_type"].items():
        cells = " | ".join(_f(row["quality"].get(p)) for p in paradigms)
        lines.append(f"| {cat} | {cells} | {row['winner']} |")
    modes = [m for m, _ in FAILURE_MODES] + ["other"]
    lines += [
        "",
        "Failure mix (seed Fig. 4): tasks without a final answer, by first failure mode:",
        "",
    ]
    lines.append("| paradigm | incomplete | " + " | ".join(modes) + " |")
    lines.append("|" + "---|" * (len(modes) + 2))
    for p, mix in g["failure_mix"].items():
        total = sum(mix.values())
        cells = " | ".join(
            f"{mix.get(m, 0)} ({mix.get(m, 0) / total:.0%})" if total and mix.get(m) else "0"
            for m in modes
        )
        lines.append(f"| {p} | {total} | {cells} |")
    lines += [
        "",
        "Paired tests on the same tasks (exact McNemar on correct/wrong; Holm over this table; "
        "Δ quality = A − B with a paired-bootstrap 95% CI and a paired sign-flip test):",
        "",
        *_test_rows(g["tests"]),
    ]
    significant = [
        t
        for t in g["tests"]
        if min(t["p_mcnemar"], t["p_quality"]) < 0.05 and t["category"] != "all"
    ]
    lines += ["", _verdict(significant), ""]
    return "\n".join(lines)


def _verdict(significant: list[dict[str, Any]]) -> str:
    if not significant:
        return (
            "No task type shows two paradigms differing at p < 0.05 (McNemar or paired "
            "sign-flip, unadjusted)."
        )
    c = Counter(t["category"] for t in significant)
    parts = []
    for t in significant:
        a_wins = t["quality_diff"] > 0 or (t["quality_diff"] == 0 and t["acc_a"] > t["acc_b"])
        win, lose = (t["a"], t["b"]) if a_wins else (t["b"], t["a"])
        parts.append(
            f"{win} > {lose} on {t['category']} (McNemar p = {_p(t['p_mcnemar'])}, "
            f"sign-flip p = {_p(t['p_quality'])})"
        )
    return f"Differences at p < 0.05 in {len(c)} task type(s): " + "; ".join(parts) + "."


def _test_rows(tests: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| A vs B | task type | n | acc A | acc B | only A | only B | McNemar p | Holm p "
        "| Δ quality (95% CI) | sign-flip p |",
        "|" + "---|" * 11,
    ]
    for t in tests:
        lo, hi = t["ci95"]
        mark = " **" if t["p_mcnemar"] < 0.05 else ""
        lines.append(
            f"| {t['a']} vs {t['b']} | {t['category']} | {t['n']} | {t['acc_a']:.3f} | {t['acc_b']:.3f} "
            f"| {t['only_a']} | {t['only_b']} | {_p(t['p_mcnemar'])}{mark} | {_p(t['p_holm'])} "
            f"| {t['quality_diff']:+.3f} ({lo:+.3f}, {hi:+.3f}) | {_p(t['p_quality'])}"
            + (" **" if t["p_quality"] < 0.05 else "")
            + " |"
        )
    return lines


def render_study(groups: list[dict[str, Any]], effects: list[dict[str, Any]] | None = None) -> str:
    if not groups and not effects:
        return ""
    text = "# Seed study\n\n" + "\n".join(render_group(g) for g in groups)
    if effects:
        text += (
            "\n## Worked examples: each paradigm with examples vs without, on the same tasks\n\n"
            + "\n".join(_test_rows(effects))
            + "\n"
        )
    return text


def markdown_to_html(text: str) -> str:
    """The few Markdown shapes ``render_study`` writes (headings, paragraphs, tables) as HTML."""
    import html

    out: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if not table:
            return
        head, *body = table
        out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>")
        for row in body:
            out.append("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
        out.append("</table>")
        table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()).replace("**", "") for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                table.append(cells)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>agentsim seed study</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;"
        "margin-bottom:1em}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}"
        "th{background:#f3f3f3}</style></head><body>"
        + "\n".join(out)
        + "<h2>Failure mix</h2><img alt='failure mix per paradigm' src='failure_mix.png'>"
        + "</body></html>\n"
    )


def plot_failure_mix(groups: list[dict[str, Any]], path: Path) -> None:
    """Stacked bars: tasks without a final answer per paradigm, by failure mode (seed Fig. 4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m, _ in FAILURE_MODES] + ["other"]
    labels = [f"{p} · ex{g['examples']}" for g in groups for p in g["failure_mix"]]
    mixes = [mix for g in groups for mix in g["failure_mix"].values()]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.5), dpi=100)
    left = [0.0] * len(labels)
    drawn = False
    for mode in modes:
        values = [float(mix.get(mode, 0)) for mix in mixes]
        if any(values):
            ax.barh(labels, values, left=left, label=mode)
            left = [a + b for a, b in zip(left, values, strict=True)]
            drawn = True
    if not drawn:
        ax.barh(labels, [0.0] * len(labels))
    ax.set_xlabel("tasks without a final answer")
    ax.invert_yaxis()
    if drawn:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
