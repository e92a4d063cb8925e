"""Exit codes, ``UsageError`` and the one place the CLI prints a failure line.

Exit codes: 0 success, 1 a run that could not complete, 2 bad input (one line, no
traceback), 130 interrupted (Ctrl-C; the journal is flushed and a partial summary written).
"""

from __future__ import annotations

import sys
from typing import Literal

from agentsim.run.errors import RunError, RunSetupError
from agentsim.scenario.errors import ScenarioError

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit 2."""


BAD_INPUT: tuple[type[Exception], ...] = (UsageError, ScenarioError, RunSetupError)
"""Exceptions that mean the user's input is wrong (their text is the whole message)."""

Failure = Literal["error", "run failed", "interrupted"]

_EXIT: dict[Failure, int] = {
    "error": EXIT_BAD_INPUT,
    "run failed": EXIT_RUN_FAILED,
    "interrupted": EXIT_INTERRUPTED,
}


def fail(kind: Failure, message: str) -> int:
    """Print ``agentsim: KIND: MESSAGE`` on stderr; returns the exit code for ``kind``."""
    sep = "; " if kind == "interrupted" else ": "
    print(f"agentsim: {kind}{sep}{message}", file=sys.stderr)
    return _EXIT[kind]


def explain(exc: BaseException) -> tuple[Failure, str] | None:
    """How the CLI reports ``exc``: bad input, a failed run, or ``None`` (a bug: re-raise)."""
    if isinstance(exc, BAD_INPUT):
        return "error", str(exc)
    if isinstance(exc, RunError):
        return "run failed", str(exc)
    return None


__all__ = [
    "BAD_INPUT",
    "EXIT_BAD_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RUN_FAILED",
    "RunError",
    "UsageError",
    "explain",
    "fail",
]
