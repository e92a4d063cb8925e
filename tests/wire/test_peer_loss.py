"""A dropped peer message leaves a ``message_lost`` failure that names the lost message and the
fault that dropped it — the case of issue 16 (debate, ``drop = { p = 0.1 }``, bob → alice).

An agent can only see a loss once a later message of the same stream arrives, so the check
is: every dropped peer message that a later one revealed is reported, by its receiver, with
the dropped message's id and the fault's id in the evidence; nothing else is reported lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
import trio.testing

from agentsim.testing import journal, only_run_dir, run_scenario, scenario_from_toml, simulate

DEBATE = """
[run]
name = "peer-loss"
seed = {seed}
heartbeat_s = 0.2
[tasks]
suite = "gsm8k"
limit = {limit}
[agents.alice]
engine = "scripted"
options = {{ table = "gsm8k", latency_s = 0.01 }}
[agents.bob]
engine = "scripted"
options = {{ table = "gsm8k", latency_s = 0.01 }}
[agents.carol]
engine = "scripted"
options = {{ table = "gsm8k", latency_s = 0.01 }}
[protocol]
kind = "debate"
rounds = 4
[faults]
drop = {{ p = 0.4, kinds = ["peer"] }}
"""


def check_losses(recs: list[dict[str, Any]]) -> int:
    """Every revealed drop of a peer message is reported with its msg id and fault id."""
    envs = [r for r in recs if r["event"] == "envelope" and r["kind"] == "peer"]
    drops = {
        r["msg_id"] + ">" + r["dst"]: r["fault_id"]
        for r in recs
        if r["event"] == "fault" and r["kind"] == "drop" and r["msg_kind"] == "peer"
    }
    lost = [r for r in recs if r["event"] == "failure" and r["kind"] == "message_lost"]
    revealed = 0
    for key, fault_id in drops.items():
        msg_id, dst = key.split(">")
        env = next(e for e in envs if e["msg_id"] == msg_id)
        later = [
            e
            for e in envs
            if (e["src"], e["dst"]) == (env["src"], dst)
            and e["seq"] > env["seq"]
            and e["msg_id"] + ">" + dst not in drops
        ]
        if not later:
            continue  # the last of its stream: nothing can reveal it to the receiver
        revealed += 1
        reports = [f for f in lost if msg_id in f["evidence"]]
        assert reports, f"{msg_id} ({env['src']} -> {dst}) was dropped and nobody reported it"
        [report] = reports
        assert fault_id in report["evidence"]
        assert set(report["agents"]) == {dst, env["src"]}
        assert report["task_id"] == env["task_id"]
    for f in lost:  # and nothing is reported lost that was not
        assert any(e in f["evidence"] for e in {k.split(">")[0] for k in drops}), f
    return revealed


def test_dropped_peer_messages_are_reported_by_their_receivers_in_simulation(
    tmp_path: Path,
) -> None:
    scenario = scenario_from_toml(DEBATE.format(seed=3, limit=6))

    async def main() -> None:
        await simulate(scenario, tmp_path)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    recs = journal(only_run_dir(tmp_path))
    assert check_losses(recs) >= 3  # the seed drops enough that the check is not empty


def test_dropped_peer_messages_are_reported_by_their_receivers_with_real_processes(
    tmp_path: Path,
) -> None:
    (tmp_path / "s.toml").write_text(DEBATE.format(seed=1, limit=4))
    p = run_scenario(tmp_path / "s.toml", tmp_path / "runs")
    assert p.returncode == 0, p.stderr
    recs = journal(only_run_dir(tmp_path / "runs"))
    assert check_losses(recs) >= 1
