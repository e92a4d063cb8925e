"""Task suites (question → gold answer → scorer)."""

from __future__ import annotations

import random
from pathlib import Path

from agentsim.tasks.base import Scorer, Task, TaskError
from agentsim.tasks.gsm8k import load_gsm8k, score_numeric
from agentsim.tasks.jsonl import load_jsonl, score_exact
from agentsim.tasks.scoring import score_task
from agentsim.tasks.study import SUITES as STUDY_SUITES
from agentsim.tasks.study import load_study

BUILTIN_SUITES = (
    "gsm8k",
    "bfcl",
    "bfcl_simple_python",
    "bfcl_multiple",
    "bfcl_parallel",
    "bfcl_irrelevance",
    *STUDY_SUITES,
)


def resolve_suite_path(suite: str, base_dir: Path) -> Path:
    p = Path(suite)
    if p.is_absolute() or p.exists():
        return p
    return base_dir / p


def load_suite(
    suite: str,
    *,
    base_dir: Path,
    limit: int = 0,
    shuffle: bool = False,
    seed: int = 0,
    offset: int = 0,
    examples: int = 0,
) -> tuple[list[Task], Scorer]:
    """Load a suite by built-in name or ``.jsonl`` path; returns the tasks and their scorer.

    ``examples`` (study suites) puts that many worked examples from the held-apart split of
    each task's type in ``task.meta["examples"]``; other suites have no worked examples.
    """
    tasks: list[Task]
    scorer: Scorer
    if suite in STUDY_SUITES:
        tasks, scorer = load_study(suite, examples=examples, seed=seed), score_task
    elif examples:
        raise TaskError(
            f"examples = {examples} needs a suite with a held-apart examples split "
            f"({', '.join(STUDY_SUITES)}), got {suite!r}"
        )
    elif suite == "gsm8k":
        tasks, scorer = load_gsm8k(), score_numeric
    elif suite.startswith("bfcl"):
        from agentsim.tasks.bfcl_suite import load_bfcl_suite

        tasks, scorer = load_bfcl_suite(suite)
    else:
        tasks = load_jsonl(resolve_suite_path(suite, base_dir))
        numeric = all(_is_number(t.answer) for t in tasks)
        scorer = score_numeric if numeric else score_exact
    if shuffle:
        random.Random(seed).shuffle(tasks)
    tasks = tasks[offset:]
    if limit:
        tasks = tasks[:limit]
    return tasks, scorer


def _is_number(s: str) -> bool:
    try:
        float(s.replace(",", ""))
    except ValueError:
        return False
    return True


__all__ = ["BUILTIN_SUITES", "Scorer", "Task", "TaskError", "load_suite", "resolve_suite_path"]
