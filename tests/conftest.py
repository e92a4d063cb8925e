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
