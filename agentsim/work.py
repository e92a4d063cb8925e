"""What a run works through: a task suite with a protocol, or an environment (a game)."""

from __future__ import annotations

from pathlib import Path

from agentsim.protocols import load_protocol_class
from agentsim.protocols.base import BaseProtocol
from agentsim.scenario import Scenario
from agentsim.tasks import load_suite
from agentsim.tasks.base import Scorer, Task


def load_work(scenario: Scenario, base_dir: Path) -> tuple[list[Task], Scorer, type[BaseProtocol]]:
    """Tasks, scorer and protocol class for a scenario (raises TaskError / ProtocolLoadError)."""
    if scenario.environment:
        from agentsim.environments import load_environment

        return load_environment(scenario, base_dir)
    t = scenario.tasks
    tasks, scorer = load_suite(
        t.suite,
        base_dir=base_dir,
        limit=t.limit,
        shuffle=t.shuffle,
        seed=scenario.run.seed,
        offset=t.offset,
        examples=t.examples,
    )
    return tasks, scorer, load_protocol_class(scenario.protocol.kind, base_dir)
