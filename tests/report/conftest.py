"""Fixtures for the report tests: small real runs (agent processes, ZeroMQ) made by the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agentsim.testing import only_run_dir

VOTERS = """
[agents.v{i}]
engine = "scripted"
options = {{ table = "gsm8k", error_rate = {err} }}
"""


def vote_scenario(folder: Path, *, tasks: int, faults: str = "", name: str = "vote-report") -> Path:
    """Three scripted voters who often disagree (no_consensus), plus optional ``[faults]``."""
    text = f'[run]\nname = "{name}"\nseed = 3\n\n[tasks]\nsuite = "gsm8k"\nlimit = {tasks}\n'
    for i, err in enumerate((0.5, 0.5, 0.6), start=1):
        text += VOTERS.format(i=i, err=err)
    text += '\n[protocol]\nkind = "vote"\ndeadline_s = 0.5\n' + faults
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def faulty_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run with injected drops (message_timeout, message_lost) and no_consensus.

    Made once per session with ``python -m agentsim run`` (stderr is a pipe, so no progress).
    """
    folder = tmp_path_factory.mktemp("faulty")
    scen = vote_scenario(
        folder, tasks=8, faults='\n[faults]\ndrop = { p = 0.4, kinds = ["ask"] }\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "agentsim", "run", str(scen), "--out", str(folder / "runs")],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = only_run_dir(folder / "runs")
    (run_dir / "cli-stderr.txt").write_text(proc.stderr, encoding="utf-8")
    return run_dir
