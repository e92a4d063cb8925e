"""What a run works through: a task suite with a protocol, or an environment (a game)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from agentsim.environments import load_environment
from agentsim.protocols import load_protocol_class
from agentsim.protocols.base import BaseProtocol
from agentsim.scenario.schema import Scenario
from agentsim.tasks import load_suite
from agentsim.tasks.base import Scorer, Task


class Work(NamedTuple):
    """The tasks of a run, their scorer, and the protocol class that drives each task."""

    tasks: list[Task]
    scorer: Scorer
    protocol: type[BaseProtocol]


def load_work(scenario: Scenario, base_dir: Path) -> Work:
    """Tasks, scorer and protocol class for a scenario.

    Raises:
        TaskError, ProtocolLoadError, EnvironmentConfigError: the scenario names work that
            cannot be loaded (``agentsim validate`` reports these).
    """
    if scenario.environment:
        return Work(*load_environment(scenario, base_dir))
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
    return Work(tasks, scorer, load_protocol_class(scenario.protocol.kind, base_dir))
