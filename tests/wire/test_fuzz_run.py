"""End-to-end fuzzing: a real run (runner, broker, two agent processes on ipc) with a hostile
agent among them. The run completes, the honest agents answer every task and exit cleanly,
every frame is accounted for from the journal alone, and each attack left its record."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from hostile import frames
from hypothesis import HealthCheck, Phase, given, settings

from agentsim.testing import journal, only_run_dir

HERE = Path(__file__).parent

SCENARIO = """
[run]
name = "fuzz"
bind = "ipc://{folder}/bus"
heartbeat_s = 0.2
heartbeat_misses = 5
ready_timeout_s = 60
[tasks]
suite = "gsm8k"
limit = 3
[agents.alice]
engine = "scripted"
options = {{ table = "gsm8k" }}
[agents.bob]
engine = "scripted"
options = {{ table = "gsm8k" }}
[agents.mallory]
engine = "scripted"
remote = true
[protocol]
kind = "debate"
agents = ["alice", "bob", "mallory"]
rounds = 2
deadline_s = 5
"""

BUCKETS = ("accepted", "heartbeats", "duplicates", "malformed", "refused")


def fuzzed_run(tmp: Path, storm: list[tuple[str, bytes]]) -> tuple[list[dict], dict, Path]:
    (tmp / "s.toml").write_text(SCENARIO.format(folder=tmp))
    (tmp / "storm.bin").write_bytes(msgspec.msgpack.encode(storm))
    runner = subprocess.Popen(
        [sys.executable, "-m", "agentsim", "s.toml", "--out", "runs", "--quiet"],
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    mallory = subprocess.Popen(
        [sys.executable, str(HERE / "fuzz_agent.py"), f"ipc://{tmp}/bus", "storm.bin", "sent.json"],
        cwd=tmp,
        stderr=subprocess.PIPE,
    )
    try:
        _, err = runner.communicate(timeout=120)
        _, merr = mallory.communicate(timeout=30)
    finally:
        for p in (runner, mallory):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert runner.returncode == 0, err.decode()[-2000:]
    assert mallory.returncode == 0, merr.decode()[-2000:]
    run = only_run_dir(tmp / "runs")
    return journal(run), json.loads((tmp / "sent.json").read_text()), run


@pytest.mark.slow
@settings(
    max_examples=2,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a run per example: no shrinking
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(storm=frames(["mallory", "eve", "runner"], min_size=20, max_size=60))
def test_a_hostile_agent_cannot_end_or_bend_a_run_and_every_frame_is_accounted_for(
    tmp_path_factory: pytest.TempPathFactory, storm: list[tuple[str, bytes]]
) -> None:
    recs, sent, run = fuzzed_run(tmp_path_factory.mktemp("fuzzrun"), storm)
    events = Counter(r["event"] for r in recs)

    # every frame in is in exactly one bucket, per sender too, and the lines are there
    [stats] = [r for r in recs if r["event"] == "broker_stats"]
    assert stats["received"] == sum(stats[b] for b in BUCKETS)
    assert stats["accepted"] == sum(
        1 for r in recs if r["event"] == "envelope" and r["dir"] == "in"
    )
    assert (stats["malformed"], stats["refused"], stats["duplicates"]) == (
        events["malformed"],
        events["refused"],
        events["duplicate"],
    )
    for who, row in stats["by_sender"].items():
        assert row["received"] == sum(row[b] for b in BUCKETS), who
    assert {w: stats["by_sender"].get(w, {}).get("received", 0) for w in sent} == sent

    # the honest agents answered every task and left when told to
    results = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert len(results) == 3 and all(r["correct"] for r in results), results
    exits = {r["agent"]: r["code"] for r in recs if r["event"] == "agent_exit"}
    assert exits == {"alice": 0, "bob": 0}
    failures = [r for r in recs if r["event"] == "failure"]
    assert not [f for f in failures if f["kind"] == "agent_crash" and f["agents"] != ["mallory"]]

    # each attack left its record
    refused = [r for r in recs if r["event"] == "refused"]
    reasons = " | ".join(r["reason"] for r in refused)
    assert "src 'bob' is not the sender 'mallory'" in reasons
    assert "no agent may be called 'runner'" in reasons
    assert "'eve' has not joined the run" in reasons
    for kind in ("ask", "shutdown", "configure"):
        assert any(r["kind"] == kind and r["src"] == "mallory" for r in refused), kind
    answered_for_others = [f for f in failures if "which was sent to" in f.get("detail", "")]
    assert answered_for_others, "mallory's replies to others' asks were not refused"
    assert all(f["kind"] == "refused_message" for f in answered_for_others)
    # mallory's hostile peer messages reached alice and bob (and were survived)
    peers_in = {
        r["dst"]
        for r in recs
        if r["event"] == "envelope" and r["src"] == "mallory" and r["kind"] == "peer"
    }
    assert {"alice", "bob"} <= peers_in | ({"alice", "bob"} if "*" in peers_in else set())
