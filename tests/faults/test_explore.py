"""``explore`` finds and shrinks a planted protocol bug, and clears the correct protocol."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agentsim.run.explore import run_once, violations
from agentsim.scenario.validate import load_scenario

HERE = Path(__file__).resolve().parent

SCENARIO = """
[run]
name = "explore"
heartbeat_s = 0.5
[tasks]
suite = "gsm8k"
limit = 3
[agents.a]
engine = "scripted"
options = {{ table = "gsm8k" }}
[agents.b]
engine = "scripted"
options = {{ table = "gsm8k", error_rate = 0.5 }}
[agents.c]
engine = "scripted"
options = {{ table = "gsm8k", error_rate = 0.5 }}
[protocol]
kind = "{proto}"
deadline_s = 2
"""


def write(tmp_path: Path, cls: str) -> Path:
    f = tmp_path / "s.toml"
    f.write_text(SCENARIO.format(proto=f"{HERE / 'protocols' / 'late_vote.py'}:{cls}"))
    return f


@pytest.mark.slow
def test_explore_finds_and_shrinks_a_vote_that_counts_a_duplicate_twice(tmp_path: Path) -> None:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentsim",
            "explore",
            str(write(tmp_path, "BuggyLateVote")),
            "--budget",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert p.returncode == 1, p.stdout + p.stderr
    assert "a reply was counted twice" in p.stdout
    table = p.stdout.split("paste into the scenario):")[1].strip()
    assert table.startswith("[faults]")
    # shrunk: a duplicate rule and at most one other
    rules = [ln.split(" =")[0] for ln in table.splitlines()[1:] if ln.strip()]
    assert "duplicate" in rules and len(rules) <= 2, table
    # the printed table, pasted back, reproduces the violation
    scenario = load_scenario(write(tmp_path, "BuggyLateVote"))
    faults = tomllib.loads(table)["faults"]
    baseline = run_once(scenario, {}, tmp_path)
    assert any(
        "counted twice" in v for v in violations(run_once(scenario, faults, tmp_path), baseline, 3)
    )


@pytest.mark.slow
def test_explore_clears_the_correct_protocol(tmp_path: Path) -> None:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentsim",
            "explore",
            str(write(tmp_path, "LateVote")),
            "--budget",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "no invariant broken in 40 fault schedules" in p.stdout
