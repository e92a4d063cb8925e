"""Replay with real agent processes: recorded completions and tool results, the same fault
decisions, the same message sequence; a fork replays exactly up to its task and then runs
under the new faults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentsim.run.sequence import compare, message_sequence
from agentsim.testing import journal, only_run_dir, run_scenario

# A router whose specialist calls two tools; the python tool prints the clock, so a replay
# that ran the tool again instead of replaying its result could not repeat the sequence.
SCENARIO = """
[run]
name = "replay-tools"
seed = 4
heartbeat_s = 0.2
[tasks]
suite = "gsm8k"
limit = 4
[agents.sup]
engine = "scripted"
options = { script = ['ROUTE: calc', 'Final Answer: {gold}'], table = "gsm8k", latency_s = 0.01 }
[agents.calc]
engine = "scripted"
tools = ["calculator", "python"]
[agents.calc.options]
table = "gsm8k"
latency_s = 0.01
script = [
  '{"tool": "calculator", "arguments": {"expression": "2+3*4"}}',
  '{"tool": "python", "arguments": {"code": "import time; print(time.time_ns())"}}',
  '{"final_answer": "{gold}"}',
]
[agents.other]
engine = "scripted"
tools = ["calculator"]
options = { table = "gsm8k", latency_s = 0.01 }
[protocol]
kind = "router"
agents = ["sup", "calc", "other"]
max_steps = 4
deadline_s = 1.0
options = { supervisor = "sup" }
[faults]
drop = { p = 0.1, kinds = ["ask", "reply"] }
delay = { p = 0.3, value_s = 0.05 }
duplicate = { p = 0.1, kinds = ["ask", "tool_call"] }
"""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("replay")
    f = d / "s.toml"
    f.write_text(SCENARIO)
    p = run_scenario(f, d / "runs", timeout=180)
    assert p.returncode == 0, p.stderr
    return only_run_dir(d / "runs")


def replay(run: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentsim", "replay", str(run), "--out", str(out), "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def tool_outputs(run: Path) -> list[str]:
    return [
        r["body"]["content"]
        for r in journal(run)
        if r["event"] == "envelope" and r["kind"] == "tool_result"
    ]


@pytest.mark.slow
def test_replay_of_a_run_with_faults_and_tools_repeats_the_message_sequence(
    recorded: Path, tmp_path: Path
) -> None:
    recs = journal(recorded)
    assert {r["kind"] for r in recs if r["event"] == "fault"} >= {"drop", "delay", "duplicate"}
    clock = [c for c in tool_outputs(recorded) if c.strip().isdigit() and len(c.strip()) > 15]
    assert clock, "the python tool never ran"
    p = replay(recorded, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "message sequence identical" in p.stdout, p.stdout
    again = only_run_dir(tmp_path)
    # the clock readings came back from the journal, not from running the tool again
    assert tool_outputs(again) == tool_outputs(recorded)
    same = compare(
        message_sequence(recorded / "journal.jsonl"), message_sequence(again / "journal.jsonl")
    )
    assert same.identical and same.messages > 30, same

    # and the same faults were injected (decided by seed and message, not by timing) on
    # every message the protocol sent; an agent's own reports of what it saw arrive (gaps,
    # seen over heartbeats) are sent or not as timing has it, and so are their faults
    def faults(run: Path) -> list[tuple[Any, ...]]:
        return sorted(
            (r["fault_id"], r["identity"])
            for r in journal(run)
            if r["event"] == "fault" and r["msg_kind"] != "error"
        )

    assert faults(again) == faults(recorded)
    engines = {r["agent"]: r["engine"] for r in journal(again) if r["event"] == "agent_ready"}
    assert set(engines.values()) == {"replay"}


@pytest.mark.slow
def test_a_changed_message_is_found_with_its_stream_and_position(
    recorded: Path, tmp_path: Path
) -> None:
    lines = (recorded / "journal.jsonl").read_text().splitlines()
    changed = []
    done = False
    for line in lines:
        rec = json.loads(line)
        if not done and rec.get("event") == "envelope" and rec.get("kind") == "tool_result":
            rec["body"]["content"] = "tampered"
            done = True
            changed.append(json.dumps(rec))
        else:
            changed.append(line)
    (tmp_path / "journal.jsonl").write_text("\n".join(changed) + "\n")
    same = compare(
        message_sequence(recorded / "journal.jsonl"),
        message_sequence(tmp_path / "journal.jsonl"),
    )
    assert not same.identical
    assert same.difference.startswith("calc>runner#") and "content" in same.difference


@pytest.mark.slow
def test_fork_replays_exactly_up_to_its_task_then_runs_the_new_faults(
    recorded: Path, tmp_path: Path
) -> None:
    faults = tmp_path / "f.toml"
    faults.write_text('[faults]\ndrop = { p = 1.0, links = ["runner->sup"], kinds = ["ask"] }\n')
    p = replay(recorded, tmp_path / "out", "--fork-at", "gsm8k-2", "--faults", str(faults))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "message sequence before gsm8k-2 identical" in p.stdout, p.stdout
    assert "fork at gsm8k-2: 2/2 task results differ" in p.stdout, p.stdout
    fork = only_run_dir(tmp_path / "out")
    recs = journal(fork)
    assert [r["task_id"] for r in recs if r["event"] == "fork"] == ["gsm8k-2"]
    by_task: dict[str, set[str]] = {}
    for r in recs:
        if r["event"] == "fault":
            by_task.setdefault(r["task_id"], set()).add(r["kind"])
    assert by_task.get("gsm8k-2") == {"drop"} and by_task.get("gsm8k-3") == {"drop"}
    old = {
        (r["fault_id"], r["identity"])
        for r in journal(recorded)
        if r["event"] == "fault" and r["task_id"] in ("gsm8k-0", "gsm8k-1")
    }
    new = {
        (r["fault_id"], r["identity"])
        for r in recs
        if r["event"] == "fault" and r["task_id"] in ("gsm8k-0", "gsm8k-1")
    }
    assert old == new
    lost = [r for r in recs if r["event"] == "failure" and r["kind"] == "message_lost"]
    assert any(r.get("task_id") == "gsm8k-3" and "drop" in r["detail"] for r in lost)


@pytest.mark.slow
def test_fork_at_a_task_the_run_never_had_is_one_line(recorded: Path, tmp_path: Path) -> None:
    faults = tmp_path / "f.toml"
    faults.write_text("[faults]\ndrop = { p = 0.5 }\n")
    p = replay(recorded, tmp_path, "--fork-at", "gsm8k-99", "--faults", str(faults))
    assert p.returncode == 2
    assert p.stderr == (
        "agentsim: error: --fork-at must name a task of the run (gsm8k-0 … gsm8k-3), "
        "got 'gsm8k-99'\n"
    )
