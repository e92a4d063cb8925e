"""Engines: the model each agent process wraps. ``make_engine`` picks one by name.

``base`` holds the ``Engine`` interface; ``mlc/`` the default compiled engine; ``scripted``,
``replay``, ``openai``, ``llamacpp``, ``mlc_llm`` the others; ``strategies`` the scripted game
players. Layer: may import the bottom modules (chat, wire, journal...) and tasks; never agent,
protocols, environments, run, report or cli.
"""

from __future__ import annotations

from agentsim.engines.base import (
    ContextOverflow,
    Engine,
    EngineConfig,
    EngineError,
    EngineUnavailable,
)

ENGINE_NAMES = ("mlc", "mlc-llm", "openai", "llamacpp", "scripted", "replay")


def make_engine(config: EngineConfig) -> Engine:
    """Build the engine named by ``config.engine`` (imports lazily: heavy deps stay unloaded)."""
    match config.engine:
        case "scripted":
            from agentsim.engines.scripted import ScriptedEngine

            return ScriptedEngine(config)
        case "replay":
            from agentsim.engines.replay import ReplayEngine

            return ReplayEngine(config)
        case "mlc":
            from agentsim.engines.mlc import MLCEngine

            return MLCEngine(config)
        case "mlc-llm":
            from agentsim.engines.mlc_llm import OfficialMLCEngine

            return OfficialMLCEngine(config)
        case "openai":
            from agentsim.engines.openai import OpenAIEngine

            return OpenAIEngine(config)
        case "llamacpp":
            from agentsim.engines.llamacpp import LlamaCppEngine

            return LlamaCppEngine(config)
    raise EngineUnavailable(f"unknown engine {config.engine!r}; known: {', '.join(ENGINE_NAMES)}")


def preload_engine(config: EngineConfig) -> None:
    """Import ``config.engine``'s code and load its read-only state into this process.

    The forkserver calls this before it forks agents, so that every forked agent shares those
    pages instead of loading its own copy (a model's weights, tokenizer and compiled module;
    a scripted agent's answer table). It never downloads or builds; what is not there yet is
    left to the agents. Engines without shared state are only imported.
    """
    match config.engine:
        case "scripted":
            from agentsim.engines.scripted import preload as preload_scripted

            preload_scripted(config)
        case "mlc":
            from agentsim.engines.mlc.engine import preload as preload_mlc

            preload_mlc(config)
        case "replay":
            import agentsim.engines.replay  # noqa: F401
        case _:
            pass


__all__ = [
    "ENGINE_NAMES",
    "ContextOverflow",
    "Engine",
    "EngineConfig",
    "EngineError",
    "EngineUnavailable",
    "make_engine",
    "preload_engine",
]
