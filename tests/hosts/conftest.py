from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    d = tmp_path / "keys"
    subprocess.run(
        [sys.executable, "-m", "agentsim", "keys", "runner", "alice", "bob", "--dir", str(d)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [sys.executable, "-m", "agentsim", "keys", "bob", "--dir", str(tmp_path / "impostor")],
        check=True,
        capture_output=True,
    )
    return d


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()
