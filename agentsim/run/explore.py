"""``agentsim explore``: search fault schedules that break a protocol's invariants.

Each candidate ``[faults]`` table (drawn by hypothesis) runs the scenario on the simulated
bus under trio's MockClock — no processes, virtual time, milliseconds per run — and is checked
against the invariants:

1. every task ends with a result line;
2. no reply is counted twice (``counted`` ask ids in a task's outcome are distinct);
3. every injected fault that changes an outcome leaves a failure record (a task whose answer
   differs from the fault-free run has at least one failure).

Hypothesis shrinks the first violation to a minimal schedule, printed as a pasteable table.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import trio
import trio.testing
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from agentsim.journal import read_journal
from agentsim.run.simulate import simulate
from agentsim.scenario.schema import Scenario


def fault_tables(agents: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Hypothesis strategy for ``[faults]`` tables over the given agents."""
    prob = st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0])
    agent = st.sampled_from(agents)
    kinds = st.sampled_from([[], ["ask"], ["reply"], ["peer"]])
    scoped = st.fixed_dictionaries(
        {"p": prob}, optional={"agents": st.lists(agent, min_size=1, max_size=1), "kinds": kinds}
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "drop": scoped,
            "duplicate": scoped,
            "delay": st.fixed_dictionaries(
                {"p": prob, "value_s": st.sampled_from([0.05, 0.5, 5.0])}
            ),
            "reorder": st.fixed_dictionaries({"p": prob, "window_s": st.sampled_from([0.05, 0.5])}),
            "kill": st.lists(
                st.fixed_dictionaries({"agent": agent, "at_s": st.sampled_from([0.0, 1.0, 10.0])}),
                max_size=1,
            ),
            "partition": st.lists(
                st.fixed_dictionaries(
                    {
                        "groups": st.lists(agent, min_size=1, max_size=1).map(lambda g: [g]),
                        "start_s": st.sampled_from([0.0, 1.0]),
                        "heal_s": st.sampled_from([0.0, 2.0]),
                    }
                ),
                max_size=1,
            ),
        },
    )


def run_once(scenario: Scenario, faults: dict[str, Any], base_dir: Path) -> list[dict[str, Any]]:
    """Run ``scenario`` with ``faults`` in-process under virtual time; returns task_result records."""
    scenario = msgspec.structs.replace(scenario, faults=faults)
    out = Path(tempfile.mkdtemp(prefix="agentsim-explore-"))
    holder: dict[str, Any] = {}

    async def main() -> None:
        made = await simulate(scenario, out, base_dir=base_dir)
        holder["path"] = made.path

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    records = list(read_journal(holder["path"] / "journal.jsonl"))
    return [r for r in records if r.get("event") == "task_result"]


def violations(
    results: list[dict[str, Any]], baseline: list[dict[str, Any]], planned: int
) -> list[str]:
    found: list[str] = []
    if len(results) != planned:
        found.append(f"{planned - len(results)} task(s) ended without a result line")
    base = {r["task_id"]: r["answer"] for r in baseline}
    for r in results:
        counted = (r.get("extra") or {}).get("counted") or []
        if len(counted) != len(set(counted)):
            found.append(f"{r['task_id']}: a reply was counted twice ({sorted(counted)})")
        if r["task_id"] in base and r["answer"] != base[r["task_id"]] and not r.get("failures"):
            found.append(
                f"{r['task_id']}: outcome changed ({base[r['task_id']]!r} -> {r['answer']!r}) with no failure recorded"
            )
    return found


def to_toml(faults: dict[str, Any]) -> str:
    """A ``[faults]`` table as TOML text (inline tables, one key a line)."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    return "[faults]\n" + "".join(f"{k} = {value(v)}\n" for k, v in faults.items())


def explore(
    scenario: Scenario, base_dir: Path, *, budget: int
) -> tuple[dict[str, Any] | None, list[str]]:
    """Search up to ``budget`` schedules; returns the shrunk counterexample and its violations."""
    baseline = run_once(scenario, {}, base_dir)
    planned = len(baseline)
    agents = sorted(scenario.protocol_agents() if not scenario.environment else scenario.agents)

    def broken(faults: dict[str, Any]) -> bool:
        return bool(violations(run_once(scenario, faults, base_dir), baseline, planned))

    cfg = settings(
        max_examples=budget,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
    )
    try:
        example = find(fault_tables(agents), broken, settings=cfg)
    except NoSuchExample:
        return None, []
    return example, violations(run_once(scenario, example, base_dir), baseline, planned)
