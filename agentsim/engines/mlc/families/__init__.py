"""One module per model family: how its GGUF metadata and tensors map onto the decoder.

``llama`` covers llama, qwen2 and qwen3 (pre-norm SwiGLU decoders); ``gemma`` covers gemma,
gemma2 and gemma3; ``phi3`` reads Phi-3's fused tensors into the llama decoder layer.
Each module offers ``read_config(model)``, ``layer_weights(model, cfg, i)`` and ``Layer``.
"""

from __future__ import annotations

from types import ModuleType

from agentsim.engines.base import EngineUnavailable
from agentsim.engines.mlc.config import SUPPORTED_ARCHS
from agentsim.engines.mlc.families import gemma, llama, phi3

FAMILIES: dict[str, ModuleType] = {
    "llama": llama,
    "qwen2": llama,
    "qwen3": llama,
    "gemma": gemma,
    "gemma2": gemma,
    "gemma3": gemma,
    "phi3": phi3,
}
assert tuple(FAMILIES) == SUPPORTED_ARCHS, "config.ARCHITECTURES and FAMILIES must agree"


def family_for(arch: str, filename: str) -> ModuleType:
    """The family module for GGUF architecture ``arch``; one clear line when unsupported."""
    fam = FAMILIES.get(arch)
    if fam is None:
        raise EngineUnavailable(
            f"GGUF architecture {arch!r} in {filename} is not supported by the mlc engine; "
            f"supported: {', '.join(SUPPORTED_ARCHS)}"
        )
    return fam
