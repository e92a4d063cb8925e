"""The scenario: what a TOML scenario file may hold, and how it is read and checked.

- ``schema``: the msgspec Structs (``Scenario``, ``AgentSpec``...). Imports nothing of the
  runtime, so every layer may use it.
- ``errors``: ``ScenarioError`` and the one-line messages (field, rule, value, file:line).
- ``validate``: ``load_scenario`` / ``parse_scenario``: decode, then the cross-checks that
  consult engines, protocols, tools, faults and environments. It sits above them (with
  ``run/``), so import it from ``agentsim.scenario.validate``, never from lower layers.
- ``sweep``: one scenario file expanded into many configurations.

This package's ``__init__`` re-exports only the schema and the error type, so importing
``agentsim.scenario`` from a lower layer pulls in nothing above it.
"""

from agentsim.scenario.errors import ScenarioError
from agentsim.scenario.schema import (
    AgentSpec,
    ProtocolSpec,
    RunSpec,
    SamplingSpec,
    Scenario,
    TasksSpec,
)

__all__ = [
    "AgentSpec",
    "ProtocolSpec",
    "RunSpec",
    "SamplingSpec",
    "Scenario",
    "ScenarioError",
    "TasksSpec",
]
