"""The vote protocol's panel: K voters per task drawn from the pool by the seed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from agentsim.protocols.vote import Vote
from agentsim.testing import scenario_from_toml


def scenario(n: int, *, limit: int = 12, seed: int = 0, extra: str = "") -> str:
    text = f'[run]\nseed = {seed}\n[tasks]\nsuite = "gsm8k"\nlimit = {limit}\n'
    for i in range(n):
        text += f'[agents.a{i}]\nengine = "scripted"\noptions = {{ table = "gsm8k" }}\n'
    return text + '[protocol]\nkind = "vote"\n' + extra


def voters(run: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in run.recs:
        if r["event"] == "envelope" and r["kind"] == "ask":
            out.setdefault(r["task_id"], []).append(r["dst"])
    return {task: sorted(v) for task, v in out.items()}


def test_a_panel_asks_k_agents_per_task_and_spreads_over_the_pool(
    sim: Callable[..., Any],
) -> None:
    run = sim(scenario(8, extra="options = { panel = 3 }\n"))
    asked = voters(run)
    assert len(asked) == 12 and all(len(v) == 3 == len(set(v)) for v in asked.values())
    order = [f"a{i}" for i in range(8)]
    assert len({frozenset(v) for v in asked.values()}) > 1  # the panels differ between tasks
    use = Counter(a for v in asked.values() for a in v)
    assert len(use) >= 6  # 36 asks over 8 agents: nobody is left out by construction
    assert run.summary["tasks_done"] == 12 and run.summary["accuracy"] == 1.0
    # every started agent is connected, whether or not a panel picked it
    ready = {r["agent"] for r in run.recs if r["event"] == "agent_ready"}
    assert ready == set(order)


def test_the_panel_follows_the_seed(sim: Callable[..., Any]) -> None:
    a = voters(sim(scenario(8, seed=1, extra="options = { panel = 3 }\n")))
    b = voters(sim(scenario(8, seed=1, extra="options = { panel = 3 }\n")))
    c = voters(sim(scenario(8, seed=2, extra="options = { panel = 3 }\n")))
    assert a == b and a != c


def test_no_panel_asks_everyone(sim: Callable[..., Any]) -> None:
    asked = voters(sim(scenario(4, limit=2)))
    assert all(v == ["a0", "a1", "a2", "a3"] for v in asked.values())


@pytest.mark.parametrize(
    ("panel", "message"),
    [
        ("0", "protocol.options.panel must be an int >= 1, got 0"),
        ('"two"', "protocol.options.panel must be an int >= 1, got 'two'"),
        ("5", "protocol.options.panel must be <= the 4 agents of the protocol, got 5"),
    ],
)
def test_a_bad_panel_names_the_option(panel: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Vote(scenario_from_toml(scenario(4, extra=f"options = {{ panel = {panel} }}\n")))


def test_a_panel_with_real_agent_processes(cli: Callable[[str], Any]) -> None:
    run = cli(scenario(5, limit=4, extra="options = { panel = 2 }\n"))
    asked = voters(run)
    assert len(asked) == 4 and all(len(v) == 2 == len(set(v)) for v in asked.values())
    assert run.summary["tasks_done"] == 4 and run.summary["accuracy"] == 1.0
    # every agent is a live process of its own, picked or not
    pids = {r["agent"]: r["pid"] for r in run.recs if r["event"] == "agent_ready"}
    assert set(pids) == {f"a{i}" for i in range(5)} and len(set(pids.values())) == 5
