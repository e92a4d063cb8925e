"""What the runner derives from a scenario for one agent: its engine config and sampling."""

from __future__ import annotations

from agentsim.chat import Sampling
from agentsim.engines.base import EngineConfig
from agentsim.scenario.schema import Scenario


def engine_config(scenario: Scenario, name: str) -> EngineConfig:
    """The engine ``name`` loads (sent in its ``Configure``), seeded per agent."""
    spec = scenario.agents[name]
    return EngineConfig(
        engine=spec.engine,
        model=spec.model,
        threads=spec.threads,
        constrained=spec.constrained,
        seed=scenario.agent_seed(name),
        options=dict(spec.options),
    )


def sampling(scenario: Scenario, name: str) -> Sampling:
    """The default sampling of ``name``'s asks (a protocol may pass its own)."""
    spec = scenario.agents[name]
    s = spec.sampling
    return Sampling(
        temperature=s.temperature,
        top_p=s.top_p,
        top_k=s.top_k,
        repetition_penalty=s.repetition_penalty,
        seed=scenario.agent_seed(name),
        max_tokens=spec.max_tokens,
        stop=list(s.stop),
    )
