"""``report.md``: the summary as a page people can read in a terminal or on a forge."""

from __future__ import annotations

from typing import Any


def render_markdown(summary: dict[str, Any], results: list[dict[str, Any]]) -> str:
    s = summary
    lo, hi = s["accuracy_ci95"]
    status = "PARTIAL (run did not complete)" if s["partial"] else "complete"
    lines = [
        f"# Run {s['run_id']}",
        "",
        f"Scenario `{s['scenario']}`, protocol `{s['protocol']}`, seed {s['seed']} — {status}.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| tasks | {s['tasks_done']} of {s['tasks_planned']} |",
        f"| accuracy | {s['accuracy']:.3f} (95% CI {lo:.3f}–{hi:.3f}) |",
        f"| completion rate | {s['completion_rate']:.3f} |",
        f"| latency p50 / p95 | {s['latency_p50_s']:.3f} s / {s['latency_p95_s']:.3f} s |",
        f"| tokens per task (prompt / completion) | {s['prompt_tokens_per_task']} / {s['completion_tokens_per_task']} |",
        f"| tokens/s (engine) | {s['tokens_per_s'] if s['tokens_per_s'] is not None else 'n/a'} |",
        f"| messages / bytes | {s['messages']} / {s['bytes']} |",
        f"| failures | {s['failures_total']} |",
        f"| tool calls / malformed-call rate | {s.get('tool_calls', 0)} / "
        f"{s['malformed_call_rate'] if s.get('malformed_call_rate') is not None else 'n/a'} |",
        f"| wall time | {s['wall_s']} s |",
        "",
        "## Agents",
        "",
        "| agent | pid | engine | model | load s | RSS MB | threads |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, a in s["agents"].items():
        lines.append(
            f"| {name} | {a['pid']} | {a['engine']} | {a['model']} | {a['load_s']} | {a['rss_mb']} | {a['threads']} |"
        )
    if s.get("accuracy_by_category"):
        lines += ["", "## Accuracy by category", "", "| category | accuracy |", "|---|---|"]
        lines += [f"| {c} | {a:.3f} |" for c, a in s["accuracy_by_category"].items()]
    lines += ["", "## Failures by kind", ""]
    if s["failures"]:
        lines += ["| kind | count |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in s["failures"].items()]
    else:
        lines.append("None recorded.")
    if s["faults_injected"]:
        lines += ["", "## Injected faults", "", "| fault | count |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in s["faults_injected"].items()]
    lines += [
        "",
        "## Tasks",
        "",
        "| task | gold | extracted | correct | rounds | latency s | failures |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        fails = ", ".join(r.get("failures", [])) or "—"
        lines.append(
            f"| {r['task_id']} | {r['gold']} | {r['extracted'] or '—'} | {'yes' if r['correct'] else 'no'} "
            f"| {r['rounds']} | {r['latency_s']:.3f} | {fails} |"
        )
    from agentsim.environments.metrics import game_markdown

    lines += game_markdown(s.get("game", {}))
    return "\n".join(lines) + "\n"
