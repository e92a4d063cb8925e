"""``agentsim run SWEEP.toml --parallel N``: configurations at once, the same results as serial."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

AGENTSIM = [sys.executable, "-m", "agentsim"]
STABLE = ("task_id", "answer", "extracted", "gold", "correct", "completed", "rounds", "by")
STABLE += ("prompt_tokens", "completion_tokens", "failures")

SWEEP = """
[run]
name = "sw"
heartbeat_s = 0.5
[tasks]
suite = "gsm8k"
limit = 3
[agents.a]
engine = "scripted"
options = { table = "gsm8k", error_rate = 0.4, latency_s = 0.1 }
[agents.b]
engine = "scripted"
options = { table = "gsm8k", error_rate = 0.3, latency_s = 0.1 }
[agents.c]
engine = "scripted"
options = { table = "gsm8k", error_rate = 0.2, latency_s = 0.1 }
[protocol]
kind = "vote"
agents = ["a", "b", "c"]
[[sweep.configs]]
name = "vote"
[[sweep.configs]]
name = "solo"
protocol = { kind = "solo", agents = ["a"] }
[sweep.axes]
"run.seed" = [1, 2]
"""


def per_config(sweep_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Results by configuration (the run folder's name without its timestamp)."""
    out = {}
    for run in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        lines = (run / "results.jsonl").read_text().splitlines()
        out[run.name.rsplit("-", 2)[0]] = [
            {k: r[k] for k in STABLE} for r in map(json.loads, lines)
        ]
    return out


def interval(run: Path) -> tuple[float, float]:
    env = json.loads((run / "env.json").read_text())
    return dt.datetime.fromisoformat(env["started"]).timestamp(), (
        run / "summary.json"
    ).stat().st_mtime


def sweep(tmp: Path, *extra: str) -> Path:
    out = tmp / f"out{len(extra)}"
    done = subprocess.run(
        [*AGENTSIM, "run", str(tmp / "sw.toml"), "--out", str(out), "--quiet", *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (parent,) = out.iterdir()
    assert (parent / "comparison.md").exists()
    return parent


@pytest.mark.slow
def test_parallel_sweep_gives_the_serial_results_per_configuration(tmp_path: Path) -> None:
    (tmp_path / "sw.toml").write_text(SWEEP)
    serial = sweep(tmp_path)
    parallel = sweep(tmp_path, "--parallel", "2")
    got, want = per_config(parallel), per_config(serial)
    assert (
        sorted(got)
        == sorted(want)
        == sorted(f"{c}-seed_{s}" for c in ("vote", "solo") for s in (1, 2))
    )
    assert got == want
    # The configurations differ from each other (the comparison is not trivially true).
    assert len({json.dumps(v) for v in want.values()}) > 1
    # Each parallel configuration ran in its own runner process, two at a time.
    runs = sorted(p for p in parallel.iterdir() if p.is_dir())
    for run in runs:
        argv = json.loads((run / "env.json").read_text())["argv"]
        assert "--config" in argv
    spans = [interval(r) for r in runs]
    overlapping = sum(
        1 for i, a in enumerate(spans) for b in spans[i + 1 :] if a[0] < b[1] and b[0] < a[1]
    )
    assert overlapping >= 1, spans


def test_parallel_and_config_arguments_are_checked(tmp_path: Path) -> None:
    (tmp_path / "sw.toml").write_text(SWEEP)
    bad = subprocess.run(
        [*AGENTSIM, "run", str(tmp_path / "sw.toml"), "--parallel", "0"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "agentsim: error: --parallel must be >= 1, got 0 (command line)"
    unknown = subprocess.run(
        [*AGENTSIM, "run", str(tmp_path / "sw.toml"), "--config", "nope"],
        capture_output=True,
        text=True,
    )
    assert unknown.returncode == 2
    assert unknown.stderr.strip().startswith(
        "agentsim: error: --config must name a configuration of"
    )
    assert "vote-seed=1" in unknown.stderr and "solo-seed=2" in unknown.stderr
