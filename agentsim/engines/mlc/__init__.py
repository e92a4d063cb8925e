"""The ``mlc`` engine: Llama-family GGUF models compiled with TVM Relax, run runtime-only.

Public API: ``MLCEngine`` (the engine), ``list_models`` / ``pull`` / ``model_path`` (the model
cache the CLI drives) and ``ensure_artifact`` (compile ahead of time, e.g. before a run).
Layer: part of ``engines`` — imports ``engines.base``, chat and TVM, nothing above.
"""

from agentsim.engines.mlc.build import ensure_artifact
from agentsim.engines.mlc.engine import MLCEngine
from agentsim.engines.mlc.models import DEFAULT_MODEL, ModelStatus, list_models, model_path, pull

__all__ = [
    "DEFAULT_MODEL",
    "MLCEngine",
    "ModelStatus",
    "ensure_artifact",
    "list_models",
    "model_path",
    "pull",
]
