"""BFCL as a task suite: each task carries its function schemas; answers are scored by AST match."""

from __future__ import annotations

import json

from agentsim.tasks.base import Score, Scorer, Task
from agentsim.tasks.bfcl import CATEGORIES, BFCLTask, load_bfcl, score_bfcl
from agentsim.tools import parse_tool_calls


def load_bfcl_suite(name: str) -> tuple[list[Task], Scorer]:
    """``bfcl`` (all four categories) or ``bfcl_<category>``."""
    category = name.removeprefix("bfcl").lstrip("_")
    cats = [c for c in CATEGORIES if not category or c == category]
    originals = load_bfcl(cats)
    by_id: dict[str, BFCLTask] = {t.id: t for t in originals}
    tasks = [
        Task(
            id=t.id,
            question="\n".join(m.content or "" for m in t.messages if m.role == "user"),
            answer=json.dumps(t.answers, sort_keys=True),
            category=t.category,
            meta={"functions": t.tools, "instruction": ""},
        )
        for t in originals
    ]

    def scorer(task: Task, text: str) -> Score:
        calls = parse_tool_calls(text).tool_calls
        result = score_bfcl(by_id[task.id], calls)
        shown = json.dumps(
            [{"name": c.function.name, "arguments": c.function.arguments} for c in calls]
        )
        return Score(extracted=shown if calls else "", correct=result.correct)

    return tasks, scorer
