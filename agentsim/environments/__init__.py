"""Environments: worlds with state that agents act in over many rounds (repeated games).

A scenario with an ``[environment]`` table runs a game instead of a task suite; see
``agentsim.environments.spec`` for the table. The game is a protocol (one task per round),
so the runner journals it like any other. Importing this package stays light: the protocol
module is loaded by ``load_environment`` only. Layer: beside ``protocols`` — may import it,
the bottom modules, engines (the strategies' ``STATE:`` line) and tasks; never run, report or
cli.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agentsim.environments.spec import (
    EnvironmentConfigError,
    EnvironmentSpec,
    MatrixGameSpec,
    PublicGoodsSpec,
    parse_environment,
)

if TYPE_CHECKING:
    from agentsim.protocols.base import BaseProtocol
    from agentsim.scenario import Scenario
    from agentsim.tasks.base import Scorer, Task

__all__ = [
    "EnvironmentConfigError",
    "EnvironmentSpec",
    "MatrixGameSpec",
    "PublicGoodsSpec",
    "load_environment",
    "parse_environment",
]


def load_environment(
    scenario: Scenario, base_dir: Path
) -> tuple[list[Task], Scorer, type[BaseProtocol]]:
    """Tasks (one per round), the round scorer and the protocol class for ``scenario``.

    ``tasks.limit`` (``--limit`` on the command line) plays only the first rounds.

    Raises:
        EnvironmentConfigError: the table is invalid (``load_scenario`` reports it first).
    """
    from agentsim.environments.environment import MatrixGame, PublicGoods, round_tasks, score_round

    spec = parse_environment(scenario.environment, list(scenario.agents))
    cls: type[BaseProtocol] = MatrixGame if isinstance(spec, MatrixGameSpec) else PublicGoods
    tasks = round_tasks(spec)
    limit = scenario.tasks.limit
    return (tasks[:limit] if limit else tasks), score_round, cls
