"""(Re)build a run folder's reports from its ``journal.jsonl`` alone.

The runner calls this at the end of a run (handed in by whoever assembled it) and
``agentsim report RUN`` calls it again later: both give the same numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentsim.environments.metrics import game_summary, write_cooperation_plot
from agentsim.journal import read_journal
from agentsim.report.html import render_html
from agentsim.report.markdown import render_markdown
from agentsim.report.summary import summarize


def write_reports(path: Path) -> dict[str, Any]:
    """Write summary.json, report.md and report.html (and cooperation.png for a game)."""
    records = list(read_journal(path / "journal.jsonl"))
    summary = summarize(records)
    if game := game_summary(records):
        summary["game"] = game
        write_cooperation_plot(game, path / "cooperation.png")
    results = [r for r in records if r.get("event") == "task_result"]
    (path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (path / "report.md").write_text(render_markdown(summary, results), encoding="utf-8")
    (path / "report.html").write_text(render_html(summary, records), encoding="utf-8")
    return summary
