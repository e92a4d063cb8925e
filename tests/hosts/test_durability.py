"""Durability and scale: a SIGKILLed runner leaves a readable journal and no agents; a soak with
256 agent processes and faults loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agentsim.testing import journal, only_run_dir, pid_alive, wait_for

AGENTSIM = [sys.executable, "-m", "agentsim"]


def agents(n: int, opts: str) -> str:
    return "".join(
        f'[agents.a{i}]\nengine = "scripted"\noptions = {{ {opts} }}\n' for i in range(n)
    )


def test_sigkilled_runner_leaves_a_readable_partial_run_and_no_agents(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(
        '[run]\nname = "k"\n[tasks]\nsuite = "gsm8k"\nlimit = 300\n'
        + agents(3, 'table = "gsm8k", latency_s = 0.05')
        + '[protocol]\nkind = "vote"\n'
    )
    p = subprocess.Popen(
        [*AGENTSIM, str(f), "--out", "runs", "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(
            lambda: (tmp_path / "runs").exists() and any((tmp_path / "runs").iterdir()), 20
        )
        run = only_run_dir(tmp_path / "runs")
        assert wait_for(lambda: sum(r["event"] == "task_result" for r in journal(run)) >= 3, 60)
        pids = [r["pid"] for r in journal(run) if r["event"] == "agent_spawned"]
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    # agents notice their runner is gone on their own, within a bounded time
    assert wait_for(lambda: not any(pid_alive(pid) for pid in pids), 5), "orphan agents"
    q = subprocess.run([*AGENTSIM, "report", str(run)], capture_output=True, text=True, timeout=60)
    assert q.returncode == 0, q.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["partial"] is True
    assert summary["tasks_done"] >= 3
    assert "PARTIAL" in (run / "report.md").read_text()


@pytest.mark.slow
def test_soak_256_agent_processes_with_faults_loses_nothing(tmp_path: Path) -> None:
    n = 256
    f = tmp_path / "s.toml"
    f.write_text(
        '[run]\nname = "soak"\nheartbeat_s = 2.0\nready_timeout_s = 300\nstats_s = 1.0\n'
        '[tasks]\nsuite = "gsm8k"\nlimit = 12\n'
        + agents(n, 'table = "gsm8k", error_rate = 0.3')
        + '[protocol]\nkind = "vote"\ndeadline_s = 10\n'
        '[faults]\ndelay = { p = 0.2, dist = "uniform", low_s = 0.0, high_s = 0.05 }\n'
        'duplicate = { p = 0.01, kinds = ["ask"] }\ndrop = { p = 0.005, kinds = ["reply"] }\n'
    )
    p = subprocess.run(
        [*AGENTSIM, str(f), "--out", "runs", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    run = only_run_dir(tmp_path / "runs")
    recs = journal(run)
    assert len([r for r in recs if r["event"] == "agent_ready"]) == n
    results = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    assert len(results) == 12
    stats = next(r for r in recs if r["event"] == "broker_stats")
    envelopes = sum(1 for r in recs if r["event"] == "envelope")
    assert (
        stats["accepted"] + stats["posted"] == envelopes
    )  # every message the broker took is journaled
    faults = [r for r in recs if r["event"] == "fault"]
    assert faults, "faults were on"
    rss = [r["rss_bytes"] for r in recs if r["event"] == "runner_stats"]
    assert len(rss) >= 3
    assert max(rss) - rss[len(rss) // 3] < 64 * 2**20, rss  # no growth beyond 64 MiB after warm-up
