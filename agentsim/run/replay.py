"""Replay: re-run a recorded run with the completions its journal holds.

Every agent's engine becomes ``replay`` (reading the old journal), everything else is the
scenario as it ran (``scenario.json``); a fork replaces the ``[faults]`` table. The new run is
assembled like any other; ``diverged`` then compares its results with the old ones.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import NamedTuple

import msgspec

from agentsim.bus.faults_seeded import FaultConfigError, parse_faults
from agentsim.run.errors import RunSetupError
from agentsim.scenario.schema import Scenario

Outcome = tuple[str, bool, bool]
"""What a replay compares per task: (answer, correct, completed)."""


class ReplayPlan(NamedTuple):
    """The scenario to run again, where its relative paths point, and its original text."""

    scenario: Scenario
    base_dir: Path
    source: str


def plan_replay(run: Path, faults_file: Path | None = None) -> ReplayPlan:
    """The replay of run folder ``run`` (with ``faults_file``'s ``[faults]``: a fork).

    Raises:
        RunSetupError: ``run`` is not a run folder, or the faults file is unusable.
    """
    if not (run / "scenario.json").is_file() or not (run / "journal.jsonl").is_file():
        raise RunSetupError(
            f"run_dir must be a run folder with scenario.json and journal.jsonl, got {str(run)!r}"
        )
    env = json.loads((run / "env.json").read_text())
    base_dir = Path(env.get("scenario_dir") or run)
    scenario = msgspec.json.decode((run / "scenario.json").read_bytes(), type=Scenario)
    journal_path = str((run / "journal.jsonl").resolve())
    agents = {
        name: msgspec.structs.replace(
            spec, engine="replay", options={"journal": journal_path, "agent": name}, remote=False
        )
        for name, spec in scenario.agents.items()
    }
    scenario = msgspec.structs.replace(scenario, agents=agents)
    if faults_file is not None:
        scenario = msgspec.structs.replace(scenario, faults=_faults(faults_file, scenario))
    return ReplayPlan(scenario, base_dir, (run / "scenario.toml").read_text())


def _faults(path: Path, scenario: Scenario) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RunSetupError(f"--faults file cannot be read: {e}") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RunSetupError(f"--faults: TOML syntax error: {e} ({path})") from None
    faults = table.get("faults", table)
    try:
        parse_faults(faults, list(scenario.agents))
    except FaultConfigError as e:
        raise RunSetupError(f"{e} ({path})") from None
    return dict(faults)


def outcomes(run: Path) -> dict[str, Outcome]:
    """Each task's (answer, correct, completed) in a run folder's ``results.jsonl``."""
    out: dict[str, Outcome] = {}
    for line in (run / "results.jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out[r["task_id"]] = (r["answer"], r["correct"], r["completed"])
    return out


def diverged(before: dict[str, Outcome], after: dict[str, Outcome]) -> list[str]:
    """Tasks of ``before`` whose outcome differs (or is missing) in ``after``, in order."""
    return [t for t in before if t not in after or before[t] != after[t]]
