"""What a task is, and how an answer is scored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec


class Task(msgspec.Struct, frozen=True, kw_only=True):
    """One unit of work: a question, its gold answer, and suite-specific extras."""

    id: str
    question: str
    answer: str
    category: str = ""
    meta: dict[str, Any] = msgspec.field(default_factory=dict)


class Score(msgspec.Struct, frozen=True, kw_only=True):
    """A scored answer; ``quality`` is a graded score in [0, 1] where the task has one (ROUGE)."""

    extracted: str
    correct: bool
    quality: float | None = None


Scorer = Callable[[Task, str], Score]


class TaskError(ValueError):
    """A task file is unusable; the message names the file, line and field."""
