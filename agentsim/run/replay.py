"""Replay: re-run a recorded run with the completions and tool results its journal holds.

Every agent's engine becomes ``replay`` (reading the old journal; tool calls are answered from
it too), everything else is the scenario as it ran (``scenario.json``), and the fault layer
makes the same decisions (they depend on the seed and the messages only), so a replay sends
the same messages: ``agentsim.run.sequence`` compares the two journals stream by stream.

A fork (``--fork-at TASK --faults F.toml``) replays exactly up to TASK, then runs TASK and
what follows under F's faults: from there a request the journal does not hold goes to the
agent's own engine and a tool call it does not hold runs the tool.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from agentsim.bus.faults_seeded import Fork
from agentsim.bus.faults_spec import FaultConfigError, FaultsSpec, parse_faults
from agentsim.run.config import engine_config
from agentsim.run.errors import RunSetupError
from agentsim.scenario.schema import Scenario

Outcome = tuple[str, bool, bool]
"""What a replay compares per task: (answer, correct, completed)."""


class ReplayPlan(NamedTuple):
    """The scenario to run again, where its relative paths point, its original text, the
    recorded run's task ids in order, and the fork (None: an exact replay)."""

    scenario: Scenario
    base_dir: Path
    source: str
    tasks: list[str]
    fork: Fork | None


def plan_replay(
    run: Path, faults_file: Path | None = None, fork_at: str | None = None
) -> ReplayPlan:
    """The replay of run folder ``run``; with ``faults_file``, a fork at ``fork_at`` (the
    first task when omitted) under that file's ``[faults]``.

    Raises:
        RunSetupError: ``run`` is not a run folder, the task is not one of its tasks, or the
            faults file is unusable.
    """
    if not (run / "scenario.json").is_file() or not (run / "journal.jsonl").is_file():
        raise RunSetupError(
            f"run_dir must be a run folder with scenario.json and journal.jsonl, got {str(run)!r}"
        )
    if fork_at is not None and faults_file is None:
        raise RunSetupError("--fork-at needs --faults F.toml: the faults to run from there")
    env = json.loads((run / "env.json").read_text())
    base_dir = Path(env.get("scenario_dir") or run)
    recorded = msgspec.json.decode((run / "scenario.json").read_bytes(), type=Scenario)
    tasks = list(outcomes(run))
    fork: Fork | None = None
    if faults_file is not None:
        first = fork_at if fork_at is not None else (tasks[0] if tasks else "")
        if first not in tasks:
            span = f"{tasks[0]} … {tasks[-1]}" if tasks else "none recorded"
            raise RunSetupError(f"--fork-at must name a task of the run ({span}), got {first!r}")
        raw = _faults(faults_file, recorded)
        spec = parse_faults(raw, list(recorded.agents))
        fork = Fork(
            task=first,
            before=frozenset(tasks[: tasks.index(first)]),
            spec=spec,
            seed=spec.seed if spec.seed is not None else recorded.run.seed,
        )
    journal_path = str((run / "journal.jsonl").resolve())
    agents = {}
    for name, spec_ in recorded.agents.items():
        options: dict[str, Any] = {"journal": journal_path, "agent": name, "tools": "replay"}
        if fork is not None:  # what the recorded run never asked goes to the real engine
            options["fallback"] = msgspec.to_builtins(engine_config(recorded, name))
        agents[name] = msgspec.structs.replace(
            spec_, engine="replay", options=options, remote=False
        )
    scenario = msgspec.structs.replace(recorded, agents=agents)
    return ReplayPlan(scenario, base_dir, (run / "scenario.toml").read_text(), tasks, fork)


def _faults(path: Path, scenario: Scenario) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RunSetupError(f"--faults file cannot be read: {e}") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RunSetupError(f"--faults: TOML syntax error: {e} ({path})") from None
    faults = table.get("faults", table)
    if not isinstance(faults, dict):
        raise RunSetupError(f"--faults: faults must be a table ({path})")
    try:
        spec: FaultsSpec = parse_faults(faults, list(scenario.agents))
    except FaultConfigError as e:
        raise RunSetupError(f"{e} ({path})") from None
    if spec.slow:
        raise RunSetupError(
            "faults.slow cannot start in a fork: an agent's engine speed is set when it starts "
            f"(use slow in the scenario itself) ({path})"
        )
    return dict(faults)


def outcomes(run: Path) -> dict[str, Outcome]:
    """Each task's (answer, correct, completed) in a run folder's ``results.jsonl``."""
    out: dict[str, Outcome] = {}
    path = run / "results.jsonl"
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out[r["task_id"]] = (r["answer"], r["correct"], r["completed"])
    return out


def diverged(before: dict[str, Outcome], after: dict[str, Outcome]) -> list[str]:
    """Tasks of ``before`` whose outcome differs (or is missing) in ``after``, in order."""
    return [t for t in before if t not in after or before[t] != after[t]]
