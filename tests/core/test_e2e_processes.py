"""End to end with real agent processes and real ZeroMQ sockets (scripted engines)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agentsim.testing import journal, only_run_dir, pid_alive, start_run, wait_for

AGENT = """
[agents.{name}]
engine = "scripted"
[agents.{name}.options]
table = "gsm8k"
error_rate = {err}
conformity = 0.5
latency_s = {lat}
"""


def scenario(tmp: Path, protocol: str, tasks: int, latency: float = 0.0, extra: str = "") -> Path:
    text = f'[run]\nname = "t"\nseed = 3\nheartbeat_s = 0.2\n\n[tasks]\nsuite = "gsm8k"\nlimit = {tasks}\n\n'
    for name, err in (("alice", 0.1), ("bob", 0.3), ("carol", 0.5)):
        text += AGENT.format(name=name, err=err, lat=latency)
    text += f'\n[protocol]\nkind = "{protocol}"\nrounds = 2\ndeadline_s = 20\n' + extra
    f = tmp / "s.toml"
    f.write_text(text)
    return f


def results(run_dir: Path) -> list[dict[str, Any]]:
    if not (run_dir / "results.jsonl").exists():
        return []
    return [
        json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines() if x.strip()
    ]


def test_three_agent_processes_run_a_debate_to_completion(tmp_path: Path) -> None:
    f = scenario(tmp_path, "debate", 6)
    p = subprocess.run(
        [sys.executable, "-m", "agentsim", str(f), "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    run = only_run_dir(tmp_path / "runs")
    res = results(run)
    assert [r["task_id"] for r in res] == [f"gsm8k-{i}" for i in range(6)]
    recs = journal(run)
    ready = [r for r in recs if r["event"] == "agent_ready"]
    pids = {r["agent"]: r["pid"] for r in ready}
    assert sorted(pids) == ["alice", "bob", "carol"]
    assert len(set(pids.values())) == 3 and p.returncode == 0
    assert all(pid != os.getpid() for pid in pids.values())
    assert not any(pid_alive(pid) for pid in pids.values())
    # every ask has a reply journaled, and peers really travelled agent -> agent
    kinds = [r["kind"] for r in recs if r["event"] == "envelope"]
    assert kinds.count("ask") == kinds.count("reply") == 6 * 3 * 2
    assert kinds.count("peer") == 6 * 3 * 2
    for name in ("scenario.toml", "env.json", "summary.json", "report.md"):
        assert (run / name).is_file()
    before = json.loads((run / "summary.json").read_text())
    (run / "summary.json").unlink()
    q = subprocess.run(
        [sys.executable, "-m", "agentsim", "report", str(run)], capture_output=True, text=True
    )
    assert q.returncode == 0, q.stderr
    assert json.loads((run / "summary.json").read_text()) == before
    assert before["tasks_done"] == 6 and not before["partial"]
    assert before["messages"] == len([r for r in recs if r["event"] == "envelope"])


def test_killed_agent_is_recorded_and_run_continues(tmp_path: Path) -> None:
    f = scenario(tmp_path, "vote", 12, latency=0.05)
    p, run = start_run(f, tmp_path / "runs")
    try:
        assert wait_for(lambda: len(results(run)) >= 2, 60)
        victim = next(
            r for r in journal(run) if r["event"] == "agent_ready" and r["agent"] == "bob"
        )
        killed_at = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        _out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    res = results(run)
    assert len(res) == 12
    crashes = [
        r
        for r in journal(run)
        if r["event"] == "failure" and r["kind"] == "agent_crash" and not r.get("task_id")
    ]
    assert len(crashes) == 1
    assert crashes[0]["agents"] == ["bob"] and crashes[0]["at"] > 0
    assert time.monotonic() - killed_at < 60
    # tasks after the crash were still answered by the two survivors
    assert all(r["completed"] for r in res[-3:])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["failures"]["agent_crash"] >= 1


def test_ctrl_c_ends_the_run_within_5s_with_a_flushed_journal_and_no_orphans(
    tmp_path: Path,
) -> None:
    f = scenario(tmp_path, "vote", 200, latency=0.2)
    p, run = start_run(f, tmp_path / "runs")
    try:
        assert wait_for(lambda: len(results(run)) >= 1, 60)
        pids = [r["pid"] for r in journal(run) if r["event"] == "agent_spawned"]
        assert len(pids) == 3
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        _out, err = p.communicate(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
    assert elapsed < 5.0
    assert p.returncode == 130, err
    assert b"Traceback" not in err
    recs = journal(run)
    assert recs[-1]["event"] == "run_end" and recs[-1]["completed"] is False
    summary = json.loads((run / "summary.json").read_text())
    assert summary["partial"] is True
    assert 1 <= summary["tasks_done"] < 200
    assert wait_for(lambda: not any(pid_alive(pid) for pid in pids), 3)


def test_react_with_real_processes_follows_the_exact_observation_flow(tmp_path: Path) -> None:
    f = tmp_path / "react.toml"
    f.write_text(
        '[run]\nname = "react"\n[tasks]\nsuite = "gsm8k"\nlimit = 3\n'
        '[agents.solver]\nengine = "scripted"\ntools = ["calculator"]\n[agents.solver.options]\n'
        'table = "gsm8k"\nscript = [\'{"tool": "calculator", "arguments": {"expression": "16 - 3 - 4"}}\', '
        '\'{"tool": "calculator", "arguments": {"expression": "9 * 2"}}\', \'{"final_answer": "{gold}"}\']\n'
        '[protocol]\nkind = "react"\n'
    )
    p = subprocess.run(
        [sys.executable, "-m", "agentsim", str(f), "--out", str(tmp_path / "runs"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    run = only_run_dir(tmp_path / "runs")
    recs = journal(run)
    for task in ("gsm8k-0", "gsm8k-1", "gsm8k-2"):
        flow = [
            (r["kind"], r["src"]) for r in recs if r["event"] == "envelope" and r["task_id"] == task
        ]
        assert flow == [
            ("ask", "runner"),
            ("reply", "solver"),
            ("tool_call", "runner"),
            ("tool_result", "solver"),
        ] * 2 + [("ask", "runner"), ("reply", "solver")]
        results = [
            r["body"]["content"]
            for r in recs
            if r["event"] == "envelope" and r["task_id"] == task and r["kind"] == "tool_result"
        ]
        assert results == ["9", "18"]
        last_ask = [
            r
            for r in recs
            if r["event"] == "envelope" and r["task_id"] == task and r["kind"] == "ask"
        ][-1]
        assert [m["content"] for m in last_ask["body"]["messages"] if m["role"] == "tool"] == [
            "9",
            "18",
        ]
    assert all(r["correct"] for r in results_of(run))


def results_of(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines() if x.strip()]
