"""``agentsim explore``: search fault schedules that break a protocol's invariants.

Each candidate ``[faults]`` table (drawn by hypothesis) runs the scenario on the simulated
bus under trio's MockClock — no processes, virtual time — and is checked against the
invariants:

1. the run ends normally and every task ends with a result line;
2. no reply is counted twice (``counted`` ask ids in a task's outcome are distinct);
3. every injected fault that changes an outcome leaves a failure record (a task whose answer
   differs from the fault-free run has at least one failure).

The search first tries ``budget`` schedules and counts the broken ones, then hypothesis
shrinks a violation to a minimal schedule, printed as a pasteable table. Runs' logs go
nowhere and their folders live in one temporary folder removed at the end: what explore
shows is its progress and its findings.

Agents on a model engine are explored with scripted stand-ins (``stand_ins``): the invariants
belong to the protocol and the runner, and hundreds of model runs would take days.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import structlog
import trio
import trio.testing
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from agentsim.bus.ipcdir import private_dir
from agentsim.engines.base import EngineUnavailable
from agentsim.engines.scripted import load_table
from agentsim.journal import read_journal
from agentsim.logs import configure_logging
from agentsim.run.simulate import simulate
from agentsim.scenario.schema import Scenario

LIGHT_ENGINES = ("scripted", "replay")
"""Engines explore runs as they are; any other agent gets a scripted stand-in."""

_TOOL_CALLS = {
    "calculator": '{"tool": "calculator", "arguments": {"expression": "6 * 7"}}',
    "python": '{"tool": "python", "arguments": {"code": "print(6 * 7)"}}',
    "search": '{"tool": "search", "arguments": {"query": "capital of France"}}',
}


def stand_ins(scenario: Scenario) -> tuple[Scenario, list[str]]:
    """``scenario`` with every agent on a model engine replaced by a scripted stand-in.

    A stand-in answers tasks from the suite's gold table with an error rate (so answers vary
    and faults can change them), calls its first built-in tool once before answering, and
    plays a seeded random strategy in games. Returns the scenario and the replaced names.
    """
    replaced: list[str] = []
    agents = {}
    for name, spec in scenario.agents.items():
        if spec.engine in LIGHT_ENGINES:
            agents[name] = spec
            continue
        replaced.append(name)
        options: dict[str, Any] = {"reply": "Final Answer: {gold}", "error_rate": 0.3}
        if scenario.environment:
            options = {"strategy": "random", "p": 0.5}
        elif _table_loads(scenario.tasks.suite):
            options["table"] = scenario.tasks.suite
        call = next((_TOOL_CALLS[t] for t in spec.tools if t in _TOOL_CALLS), "")
        if call and not scenario.environment:
            options["script"] = [call, '{"final_answer": "{gold}"}']
        options["latency"] = {"dist": "uniform", "low": 0.01, "high": 0.05}
        agents[name] = msgspec.structs.replace(
            spec, engine="scripted", model=f"stand-in-{name}", options=options, remote=False
        )
    return msgspec.structs.replace(scenario, agents=agents), replaced


def _table_loads(suite: str) -> bool:
    try:
        load_table(suite)
    except EngineUnavailable:
        return False
    return True


def explored_agents(scenario: Scenario) -> list[str]:
    return sorted(scenario.agents if scenario.environment else scenario.protocol_agents())


def fault_tables(agents: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Hypothesis strategy for ``[faults]`` tables over the given agents."""
    prob = st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0])
    agent = st.sampled_from(agents)
    kinds = st.sampled_from([[], ["ask"], ["reply"], ["peer"], ["tool_call", "tool_result"]])
    scoped = st.fixed_dictionaries(
        {"p": prob}, optional={"agents": st.lists(agent, min_size=1, max_size=1), "kinds": kinds}
    )

    def split(a: str) -> list[list[str]]:
        rest = [x for x in agents if x != a] + ["runner"]
        return [[a], rest]

    return st.fixed_dictionaries(
        {},
        optional={
            "seed": st.integers(0, 3),
            "drop": scoped,
            "duplicate": scoped,
            "delay": st.fixed_dictionaries(
                {"p": prob, "value_s": st.sampled_from([0.05, 0.5, 5.0, 100.0])},
                optional={"agents": st.lists(agent, min_size=1, max_size=1), "kinds": kinds},
            ),
            "reorder": st.fixed_dictionaries(
                {"p": prob, "window_s": st.sampled_from([0.05, 0.5])},
                optional={"kinds": kinds},
            ),
            "kill": st.lists(
                st.fixed_dictionaries({"agent": agent, "at_s": st.sampled_from([0.0, 1.0, 10.0])}),
                max_size=1,
            ),
            "pause": st.lists(
                st.fixed_dictionaries(
                    {
                        "agent": agent,
                        "at_s": st.sampled_from([0.0, 1.0]),
                        "duration_s": st.sampled_from([0.5, 5.0, 60.0]),
                    }
                ),
                max_size=1,
            ),
            "slow": st.lists(
                st.fixed_dictionaries({"agent": agent, "factor": st.sampled_from([3.0, 1000.0])}),
                max_size=1,
            ),
            "partition": st.lists(
                st.fixed_dictionaries(
                    {
                        "groups": agent.map(split),
                        "start_s": st.sampled_from([0.0, 1.0]),
                        "heal_s": st.sampled_from([0.0, 2.0, 30.0]),
                    }
                ),
                max_size=1,
            ),
        },
    )


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """The runs' structlog output goes nowhere while explore runs them."""
    before = structlog.get_config()
    with open(os.devnull, "w", encoding="utf-8") as sink:
        configure_logging(json=True, stream=sink)
        try:
            yield
        finally:
            structlog.configure(**before)


def run_once(
    scenario: Scenario, faults: dict[str, Any], base_dir: Path, *, out: Path | None = None
) -> list[dict[str, Any]]:
    """Run ``scenario`` with ``faults`` in-process under virtual time; returns its
    ``task_result`` records. The run folder is made under ``out`` (a temporary folder when
    omitted) and removed afterwards.

    Raises:
        Exception: whatever the run raised (explore reports it as a broken invariant).
    """
    scenario = msgspec.structs.replace(scenario, faults=faults)
    parent = Path(tempfile.mkdtemp(prefix="agentsim-explore-", dir=out))
    holder: dict[str, Any] = {}

    async def main() -> None:
        made = await simulate(scenario, parent, base_dir=base_dir)
        holder["path"] = made.path

    try:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
        records = list(read_journal(holder["path"] / "journal.jsonl"))
    finally:
        shutil.rmtree(parent, ignore_errors=True)
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
                f"{r['task_id']}: outcome changed ({base[r['task_id']]!r} -> {r['answer']!r}) "
                "with no failure recorded"
            )
    return found


def to_toml(faults: dict[str, Any]) -> str:
    """A ``[faults]`` table as TOML text (inline tables, one key a line)."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return msgspec.json.encode(v).decode()

    return "[faults]\n" + "".join(f"{k} = {value(v)}\n" for k, v in faults.items())


class Finding(NamedTuple):
    """What explore found: schedules tried and broken, and the (shrunk) counterexample."""

    tried: int
    broken: int
    example: dict[str, Any] | None
    violations: list[str]


Progress = Callable[[str, int, int], None]
"""Called after each run: (phase: "search" | "shrink", runs so far, broken so far)."""


def explore(
    scenario: Scenario,
    base_dir: Path,
    *,
    budget: int,
    progress: Progress | None = None,
) -> Finding:
    """Try ``budget`` fault schedules; shrink a violation to a minimal schedule."""
    out = private_dir("agentsim-explore-")
    try:
        with quiet_logs():
            return _explore(scenario, base_dir, out, budget, progress)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _explore(
    scenario: Scenario, base_dir: Path, out: Path, budget: int, progress: Progress | None
) -> Finding:

    def check(faults: dict[str, Any]) -> list[str]:
        try:
            results = run_once(scenario, faults, base_dir, out=out)
        except Exception as e:  # a run that raises breaks invariant 1
            return [f"the run raised {type(e).__name__}: {str(e)[:200]}"]
        return violations(results, baseline, planned)

    baseline = run_once(scenario, {}, base_dir, out=out)
    planned = len(baseline)
    agents = explored_agents(scenario)
    strategy = fault_tables(agents)
    counts = {"search": 0, "broken": 0, "shrink": 0}
    first: list[tuple[dict[str, Any], list[str]]] = []

    def cfg(**kw: Any) -> settings:
        return settings(
            database=None,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            **kw,
        )

    @given(strategy)
    @cfg(max_examples=budget, phases=[Phase.generate])
    def search(faults: dict[str, Any]) -> None:
        found = check(faults)
        counts["search"] += 1
        if found:
            counts["broken"] += 1
            if not first:
                first.append((faults, found))
        if progress is not None:
            progress("search", counts["search"], counts["broken"])

    search()
    if not first:
        return Finding(counts["search"], 0, None, [])

    # Hypothesis shrinks what fails a test: the same derandomized search again, failing at
    # the first broken schedule; its last failing call is the smallest schedule it found.
    smallest: list[dict[str, Any]] = []

    @given(strategy)
    @cfg(max_examples=budget, phases=[Phase.generate, Phase.shrink])
    def shrink(faults: dict[str, Any]) -> None:
        counts["shrink"] += 1
        bad = bool(check(faults))
        if progress is not None:
            progress("shrink", counts["shrink"], counts["broken"])
        if bad:
            smallest[:] = [faults]
            raise _Broken

    with contextlib.suppress(_Broken):
        shrink()
    example = _fewest_rules(smallest[0] if smallest else first[0][0], check)
    return Finding(counts["search"], counts["broken"], example, check(example))


def _fewest_rules(
    faults: dict[str, Any], check: Callable[[dict[str, Any]], list[str]]
) -> dict[str, Any]:
    """``faults`` without the rules it still breaks an invariant without: no-ops first (empty
    lists, p = 0), then each rule in turn."""
    noop = {k: v for k, v in faults.items() if v == [] or (isinstance(v, dict) and v.get("p") == 0)}
    if noop:
        trimmed = {k: v for k, v in faults.items() if k not in noop}
        if check(trimmed):
            faults = trimmed
    for key in list(faults):
        trimmed = {k: v for k, v in faults.items() if k != key}
        if trimmed and check(trimmed):
            faults = trimmed
    return faults


class _Broken(Exception):
    """A schedule broke an invariant (raised inside hypothesis so that it shrinks it)."""
