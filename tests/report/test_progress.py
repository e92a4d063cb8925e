"""The live progress display: rendered into a recording rich console, and under a real pty."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from agentsim.failures import Failure
from agentsim.report.progress import LiveProgress

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=160, color_system=None), buf


def result(correct: bool, tokens: int, latency: float = 1.0) -> dict[str, Any]:
    return {"correct": correct, "completion_tokens": tokens, "latency_s": latency}


def failure(kind: str) -> Failure:
    return Failure(kind=kind, category="inter_agent", task_id="t", agents=["a"], detail="d")


def test_progress_shows_done_accuracy_failures_by_kind_and_tokens_per_second() -> None:
    console, buf = terminal()
    clock = Clock()
    fails: list[Any] = []
    with LiveProgress(4, enabled=True, console=console, clock=clock) as progress:
        clock.now = 101.0  # first task took 1 s (its latency), so timing starts at 100.0
        progress({"done": 1, "total": 4, "result": result(True, 30), "failures": fails})
        clock.now = 102.0
        fails += [failure("no_consensus"), failure("message_timeout"), failure("no_consensus")]
        progress({"done": 2, "total": 4, "result": result(False, 10), "failures": fails})
        clock.now = 104.0
        progress({"done": 3, "total": 4, "result": result(True, 20), "failures": fails})
    text = ANSI.sub("\n", buf.getvalue())
    last = [line for line in text.splitlines() if "tasks" in line][-1]
    assert "3/4" in last
    assert "acc 0.67" in last
    assert "failures 3 (no_consensus 2, message_timeout 1)" in last
    assert "15.0 tok/s" in last  # 60 tokens over 4 s since the first task started
    assert "eta" in last
    assert re.search(r"\d:\d\d:\d\d", last), last  # elapsed time
    assert progress.accuracy == 2 / 3


def test_progress_accepts_failures_as_journal_dicts_and_lists_only_the_top_three_kinds() -> None:
    console, buf = terminal()
    fails = [{"kind": k} for k in ("a", "a", "b", "c", "d")]
    with LiveProgress(1, enabled=True, console=console) as progress:
        progress({"done": 1, "total": 1, "result": result(False, 0), "failures": fails})
    assert "failures 5 (a 2, b 1, c 1, …)" in ANSI.sub("\n", buf.getvalue())
    assert progress.kinds["a"] == 2


def test_disabled_progress_prints_nothing() -> None:
    console, buf = terminal()
    with LiveProgress(2, enabled=False, console=console) as progress:
        progress({"done": 1, "total": 2, "result": result(True, 5), "failures": []})
    assert buf.getvalue() == ""


def test_progress_is_off_by_default_when_the_console_is_not_a_terminal() -> None:
    buf = io.StringIO()
    with LiveProgress(2, console=Console(file=buf)) as progress:
        progress({"done": 1, "total": 2, "result": result(True, 5), "failures": []})
    assert progress.enabled is False
    assert buf.getvalue() == ""


def _scenario(tmp_path: Path) -> Path:
    text = '[run]\nname = "pty"\nseed = 1\n\n[tasks]\nsuite = "gsm8k"\nlimit = 5\n'
    for name in ("a", "b", "c"):
        text += f'\n[agents.{name}]\nengine = "scripted"\noptions = {{ table = "gsm8k", error_rate = 0.5 }}\n'
    text += '\n[protocol]\nkind = "vote"\n'
    path = tmp_path / "pty.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _run_on_pty(tmp_path: Path, *extra: str) -> str:
    """Run ``agentsim run`` with stderr on a pseudo-terminal; return what it drew there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentsim",
            "run",
            str(_scenario(tmp_path)),
            "--out",
            str(tmp_path / "runs"),
            *extra,
        ],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**os.environ, "COLUMNS": "160"},
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        _, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return ANSI.sub("\n", b"".join(chunks).decode("utf-8", "replace"))


def test_agentsim_run_draws_progress_on_a_terminal(tmp_path: Path) -> None:
    drawn = _run_on_pty(tmp_path)
    assert "5/5" in drawn
    assert re.search(r"acc \d\.\d\d \| failures \d+", drawn), drawn
    assert "tok/s" in drawn


def test_agentsim_run_quiet_draws_nothing_on_a_terminal(tmp_path: Path) -> None:
    assert "tok/s" not in _run_on_pty(tmp_path, "--quiet")


def test_agentsim_run_draws_nothing_when_stderr_is_not_a_terminal(faulty_run: Path) -> None:
    stderr = (faulty_run / "cli-stderr.txt").read_text(encoding="utf-8")
    assert "tok/s" not in stderr
    assert "tasks" not in stderr
