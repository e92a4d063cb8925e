"""Live progress on the terminal: tasks done, accuracy so far, failures so far, tokens/s, ETA.

The runner calls the ``LiveProgress`` object once per finished task with
``{"done", "total", "result", "failures"}``. The display is a rich progress bar on stderr; it
is off (prints nothing at all) when disabled — ``agentsim run --quiet`` or stderr not a TTY.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def failure_kind(f: Any) -> str:
    """The kind of a failure given as a ``Failure`` struct or as a journal dict."""
    if isinstance(f, dict):
        return str(f.get("kind", "?"))
    return str(getattr(f, "kind", "?"))


class LiveProgress:
    """A rich progress bar fed by the runner's per-task hook; silent when disabled.

    Args:
        total: tasks planned.
        enabled: draw the bar; ``None`` means "when the console is a terminal".
        console: where to draw (stderr by default); tests pass a recording console.
        clock: seconds, monotonic; injectable so tests pin tokens/s.
    """

    def __init__(
        self,
        total: int,
        *,
        enabled: bool | None = None,
        console: Console | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal if enabled is None else enabled
        self.total = total
        self.done = 0
        self.correct = 0
        self.tokens = 0
        self.kinds: Counter[str] = Counter()
        self._clock = clock
        self._first_start: float | None = None
        self._progress = Progress(
            TextColumn("[bold]tasks"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.enabled,
            transient=False,
        )
        self._task = self._progress.add_task("run", total=total, status="starting agents")

    def __enter__(self) -> LiveProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.__exit__(t, e, tb)

    @property
    def accuracy(self) -> float:
        return self.correct / self.done if self.done else 0.0

    def tokens_per_s(self) -> float:
        """Completion tokens per wall second since the first task started (agent start-up excluded)."""
        if self._first_start is None:
            return 0.0
        return self.tokens / max(1e-9, self._clock() - self._first_start)

    def status_line(self) -> str:
        top = ", ".join(f"{k} {v}" for k, v in self.kinds.most_common(3))
        more = len(self.kinds) - 3
        fails = f"failures {sum(self.kinds.values())}" + (
            f" ({top}{', …' if more > 0 else ''})" if top else ""
        )
        return f"acc {self.accuracy:.2f} | {fails} | {self.tokens_per_s():.1f} tok/s"

    def _count_failures(self, failures: Iterable[Any]) -> None:
        self.kinds = Counter(failure_kind(f) for f in failures)

    def __call__(self, info: dict[str, Any]) -> None:
        result = info.get("result") or {}
        now = self._clock()
        if self._first_start is None:
            self._first_start = now - float(result.get("latency_s") or 0.0)
        self.done = int(info.get("done", self.done + 1))
        self.correct += 1 if result.get("correct") else 0
        self.tokens += int(result.get("completion_tokens") or 0)
        self._count_failures(info.get("failures") or [])
        if "total" in info and int(info["total"]) != self.total:
            self.total = int(info["total"])
            self._progress.update(self._task, total=self.total)
        self._progress.update(
            self._task, completed=self.done, status=self.status_line(), refresh=True
        )
