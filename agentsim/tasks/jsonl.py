"""A user's own tasks: one JSON object per line with ``question``, ``answer``, optional ``id``."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from agentsim.tasks.base import Score, Task, TaskError


class _Line(msgspec.Struct, frozen=True):
    question: str
    answer: str | int | float
    id: str | int | None = None
    category: str = ""


_decoder = msgspec.json.Decoder(_Line)


def load_jsonl(path: Path) -> list[Task]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        raise TaskError(f"tasks file {path} cannot be read: {e.strerror}") from None
    tasks: list[Task] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = _decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise TaskError(f"tasks line is not a valid task: {e} ({path}:{n})") from None
        tid = str(item.id) if item.id is not None else f"{path.stem}-{len(tasks)}"
        tasks.append(
            Task(id=tid, question=item.question, answer=str(item.answer), category=item.category)
        )
    if not tasks:
        raise TaskError(f"tasks file holds no task ({path})")
    return tasks


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


def score_exact(task: Task, text: str) -> Score:
    """Correct when the normalised gold answer appears in the normalised text's last line."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    last = _norm(lines[-1]) if lines else ""
    gold = _norm(task.answer)
    return Score(extracted=last, correct=bool(gold) and f" {gold} " in f" {last} ")
