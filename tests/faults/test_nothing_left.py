"""A finished, failed, interrupted, terminated or killed run — and explore — leave no
``agentsim-*`` folder in the temp dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agentsim.testing import journal, only_run_dir, pid_alive, wait_for

SCENARIO = """
[run]
name = "tidy"
heartbeat_s = 0.2
ready_timeout_s = {ready}
[tasks]
suite = "gsm8k"
limit = {limit}
[agents.a]
engine = "scripted"
tools = ["python"]
[agents.a.options]
table = "gsm8k"
latency_s = {latency}
script = ['{{"tool": "python", "arguments": {{"code": "print(6 * 7)"}}}}', '{{"final_answer": "{{gold}}"}}']
[agents.b]
engine = "scripted"
options = {{ table = "gsm8k", latency_s = {latency} }}
[protocol]
kind = "react"
agents = ["a"]
max_steps = 3
deadline_s = 5
"""


def setup(
    tmp_path: Path, *, limit: int = 2, latency: float = 0.01, ready: float = 60
) -> tuple[Path, dict[str, str]]:
    f = tmp_path / "s.toml"
    f.write_text(SCENARIO.format(limit=limit, latency=latency, ready=ready))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return f, {**os.environ, "TMPDIR": str(tmp)}


def left(env: dict[str, str]) -> list[str]:
    return sorted(p.name for p in Path(env["TMPDIR"]).glob("agentsim-*"))


def agentsim(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentsim", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_a_finished_run_leaves_nothing(tmp_path: Path) -> None:
    f, env = setup(tmp_path)
    p = agentsim(str(f), "--out", str(tmp_path / "runs"), "--quiet", env=env)
    assert p.returncode == 0, p.stderr
    tools = [r for r in journal(only_run_dir(tmp_path / "runs")) if r.get("kind") == "tool_result"]
    assert tools  # the python tool ran (it makes a folder of its own)
    assert left(env) == []


@pytest.mark.slow
def test_a_failed_run_leaves_nothing(tmp_path: Path) -> None:
    f, env = setup(tmp_path, ready=0.001)
    p = agentsim(str(f), "--out", str(tmp_path / "runs"), "--quiet", env=env)
    assert p.returncode == 1 and "never became ready" in p.stderr, p.stderr
    assert left(env) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["int", "term", "kill"]
)
def test_a_stopped_run_leaves_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    f, env = setup(tmp_path, limit=50, latency=0.2)
    out = tmp_path / "runs"
    err = (tmp_path / "stderr").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentsim", str(f), "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=err,
        env=env,
    )
    try:
        assert wait_for(lambda: out.exists() and any(out.iterdir()), 60)
        run = only_run_dir(out)
        assert wait_for(lambda: any(r["event"] == "task_result" for r in journal(run)), 60)
        assert left(env), "the run made no temp folder to clean up"
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
    if sig != signal.SIGKILL:
        assert code == 130, (tmp_path / "stderr").read_text()
        assert json.loads((run / "summary.json").read_text())["partial"] is True
    pids = [r["pid"] for r in journal(run) if r["event"] == "agent_spawned"]
    assert wait_for(lambda: not any(pid_alive(p) for p in pids), 10)
    # a SIGKILLed runner cannot clean up: its agents do, as they notice it is gone
    assert wait_for(lambda: left(env) == [], 10), left(env)


@pytest.mark.slow
def test_explore_leaves_nothing(tmp_path: Path) -> None:
    f, env = setup(tmp_path)
    p = agentsim("explore", str(f), "--budget", "5", env=env)
    assert p.returncode in (0, 1), p.stderr
    assert "schedules" in p.stderr
    assert left(env) == []
