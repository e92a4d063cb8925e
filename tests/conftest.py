from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_cli(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, **kw: Any) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            [sys.executable, "-m", "agentsim", *args],
            cwd=kw.pop("cwd", tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **kw,
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()


# ----- nothing left behind ------------------------------------------------------------------
# Child processes (runners, agents) get a private TMPDIR for the session; the tests' own
# process keeps the real one, and what it makes there carries its pid (agentsim.bus.ipcdir).
# At the end, any agentsim-* folder left in either is a leak and fails the session.
_SESSION_TMP: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    import os
    import tempfile

    real = tempfile.gettempdir()  # cached now: this process keeps using the real one
    private = tempfile.mkdtemp(prefix="asim-suite-", dir=real)
    _SESSION_TMP.update(real=real, private=private, before=_ours(Path(real)))
    os.environ["TMPDIR"] = private


def _ours(where: Path) -> set[Path]:
    """agentsim-* folders in ``where`` left by this process (their owner file names it)."""
    import os

    found = set()
    for d in where.glob("agentsim-*"):
        try:
            if (d / "owner").read_text().strip() == str(os.getpid()):
                found.add(d)
        except OSError:
            continue
    return found


def _leaked() -> list[Path]:
    private = Path(_SESSION_TMP["private"])
    left = [
        *private.glob("agentsim-*"),
        *(_ours(Path(_SESSION_TMP["real"])) - _SESSION_TMP["before"]),
    ]
    return sorted(left)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import shutil
    import time

    if not _SESSION_TMP:
        return
    deadline = time.monotonic() + 5.0  # agents of a killed runner clean up as they exit
    while (left := _leaked()) and time.monotonic() < deadline:
        time.sleep(0.1)
    shutil.rmtree(_SESSION_TMP["private"], ignore_errors=True)
    if left:
        names = ", ".join(p.name for p in left[:10])
        session.config.get_terminal_writer().line(
            f"agentsim: the test session left {len(left)} temporary folder(s): {names}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
