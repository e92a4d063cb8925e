"""Live progress on the terminal: tasks done, accuracy so far, failures so far, tokens/s."""

from __future__ import annotations

import time
from collections import Counter
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class LiveProgress:
    """A rich progress bar fed by the runner's per-task hook; silent when disabled."""

    def __init__(self, total: int, *, enabled: bool, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.correct = 0
        self.tokens = 0
        self.t0 = time.perf_counter()
        self._progress = Progress(
            TextColumn("[bold]tasks"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
            transient=False,
        )
        self._task = self._progress.add_task("run", total=total, status="starting agents")

    def __enter__(self) -> LiveProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.__exit__(t, e, tb)

    def status_line(self, info: dict[str, Any]) -> str:
        done = int(info["done"])
        kinds = Counter(f.kind for f in info["failures"])
        top = ", ".join(f"{k} {v}" for k, v in kinds.most_common(3))
        rate = self.tokens / max(1e-9, time.perf_counter() - self.t0)
        acc = self.correct / done if done else 0.0
        fails = f"failures {sum(kinds.values())}" + (f" ({top})" if top else "")
        return f"acc {acc:.2f} | {fails} | {rate:.1f} tok/s"

    def __call__(self, info: dict[str, Any]) -> None:
        result = info["result"]
        self.correct += 1 if result.get("correct") else 0
        self.tokens += int(result.get("completion_tokens", 0))
        self._progress.update(self._task, completed=int(info["done"]), status=self.status_line(info))
