"""Seeded faults are a pure function of (seed, message identity): the same seed injects the
same faults in two runs with real agent processes, whatever order their messages arrived in,
and each fault that does harm leaves a failure that cites it."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest
import trio

from agentsim.bus.faults_seeded import SeededFaults
from agentsim.bus.faults_spec import parse_faults
from agentsim.journal import Journal
from agentsim.testing import journal, only_run_dir, run_scenario
from agentsim.wire import Ask, Envelope, Peer

SCENARIO = """
[run]
name = "determinism"
seed = {seed}
heartbeat_s = 0.2
[tasks]
suite = "gsm8k"
limit = 3
[agents.a]
engine = "scripted"
options = {{ table = "gsm8k", error_rate = 0.3, conformity = 0.5, latency_s = 0.01 }}
[agents.b]
engine = "scripted"
options = {{ table = "gsm8k", error_rate = 0.3, conformity = 0.5, latency_s = 0.03 }}
[agents.c]
engine = "scripted"
options = {{ table = "gsm8k", error_rate = 0.3, conformity = 0.5, latency_s = 0.02 }}
[protocol]
kind = "debate"
rounds = 3
deadline_s = 1.5
[faults]
drop = {{ p = 0.15, kinds = ["ask", "reply", "peer"] }}
delay = {{ p = 0.3, dist = "uniform", low_s = 0.0, high_s = 0.3, kinds = ["ask", "reply", "peer"] }}
duplicate = {{ p = 0.15, kinds = ["ask", "reply", "peer"] }}
reorder = {{ p = 0.2, window_s = 0.2, kinds = ["peer"] }}
"""


def fault_events(run: Path) -> list[tuple[Any, ...]]:
    """A run's fault events without what timing decides (time, pid-derived msg ids)."""
    keys = ("fault_id", "kind", "identity", "src", "dst", "task_id", "round", "msg_kind")
    return sorted(
        (*(r[k] for k in keys), r.get("delay_s")) for r in journal(run) if r["event"] == "fault"
    )


def run(tmp_path: Path, name: str, seed: int) -> Path:
    f = tmp_path / f"{name}.toml"
    f.write_text(SCENARIO.format(seed=seed))
    out = tmp_path / name
    p = run_scenario(f, out, timeout=180)
    assert p.returncode == 0, p.stderr
    return only_run_dir(out)


@pytest.mark.slow
def test_same_seed_two_process_runs_inject_identical_faults(tmp_path: Path) -> None:
    first = run(tmp_path, "first", seed=3)
    second = run(tmp_path, "second", seed=3)
    other = run(tmp_path, "other", seed=4)
    a, b, c = fault_events(first), fault_events(second), fault_events(other)
    kinds = {e[1] for e in a}
    assert kinds >= {"drop", "delay", "duplicate"}, kinds
    assert a == b
    assert a != c  # the seed matters
    for run_dir in (first, second):
        recs = journal(run_dir)
        cited = {e for r in recs if r["event"] == "failure" for e in r.get("evidence", [])}
        cited |= {e for r in recs if r["event"] == "failure_repeat" for e in r.get("evidence", [])}
        for r in recs:
            if r["event"] == "fault" and r["kind"] in ("drop", "duplicate"):
                assert r["fault_id"] in cited, r


def _envelopes() -> list[tuple[Envelope, str]]:
    """A debate round's traffic: asks out, peers across, for three tasks."""
    out: list[tuple[Envelope, str]] = []
    ids = itertools.count(1)
    for task, rnd in itertools.product(("t0", "t1", "t2"), (0, 1)):
        for agent in ("a", "b", "c"):
            out.append(
                (
                    Envelope(
                        run_id="r",
                        msg_id=f"runner-{next(ids)}",
                        seq=0,
                        src="runner",
                        dst=agent,
                        task_id=task,
                        round=rnd,
                        body=Ask(messages=[]),
                    ),
                    agent,
                )
            )
            for peer in ("a", "b", "c"):
                if peer != agent:
                    env = Envelope(
                        run_id="r",
                        msg_id=f"{agent}-{next(ids)}",
                        seq=0,
                        src=agent,
                        dst=peer,
                        task_id=task,
                        round=rnd,
                        body=Peer(content="42"),
                    )
                    out.append((env, peer))
    return out


def _decide(order: list[tuple[Envelope, str]], tmp: Path, name: str) -> dict[str, Any]:
    spec = parse_faults(
        {
            "drop": {"p": 0.3},
            "delay": {"p": 0.5, "dist": "exponential", "mean_s": 0.1},
            "duplicate": {"p": 0.3},
            "reorder": {"p": 0.3, "window_s": 0.1},
        },
        ["a", "b", "c"],
    )
    layer = SeededFaults(spec, seed=9)
    decisions: dict[str, Any] = {}

    async def main() -> None:
        layer.start_clock()
        j = Journal(tmp / f"{name}.jsonl", clock=trio.current_time)
        for env, dst in order:
            # the copy of a message is named by its content, which here is its place in a
            # task's round: the identity the layer computes must not depend on the order
            decisions[f"{env.msg_id}>{dst}"] = layer.plan(env, dst, j)
        j.close()

    trio.run(main)
    return decisions


def test_decisions_do_not_depend_on_arrival_order(tmp_path: Path) -> None:
    traffic = _envelopes()
    base = _decide(traffic, tmp_path, "base")
    assert any(not v for v in base.values()) and any(len(v) == 2 for v in base.values())
    for i in range(5):
        shuffled = traffic[:]
        random.Random(i).shuffle(shuffled)
        # keep each (src, dst, kind, task, round) class in its own order (a sender's order)
        by_class: dict[tuple[str, ...], list[tuple[Envelope, str]]] = {}
        for env, dst in traffic:
            key = (env.src, dst, env.task_id, str(env.round))
            by_class.setdefault(key, []).append((env, dst))
        picks = {k: iter(v) for k, v in by_class.items()}
        interleaved = [
            next(picks[(env.src, dst, env.task_id, str(env.round))]) for env, dst in shuffled
        ]
        assert _decide(interleaved, tmp_path, f"s{i}") == base
