"""The decoder for a ``ModelConfig``: ``families/blocks.py``'s ``CausalLM`` with the layer of
the config's family (``families/``)."""

from __future__ import annotations

from typing import Any

from agentsim.engines.mlc.config import ModelConfig
from agentsim.engines.mlc.families import family_for
from agentsim.engines.mlc.families.blocks import CausalLM

__all__ = ["CausalLM", "build_model"]


def build_model(cfg: ModelConfig, target: Any) -> CausalLM:
    """The ``nn.Module`` to export for ``cfg`` on ``target``."""
    fam = family_for(cfg.arch, cfg.arch)
    return CausalLM(cfg, target, fam.Layer)
