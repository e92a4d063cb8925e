"""``agentsim models list|pull|path|check [NAME|FILE]``: models in the cache, what the mlc engine runs.

``list`` shows the known models and the supported architectures and quantization types;
``check FILE.gguf`` says in one line whether the mlc engine can run a file and, if not, why
(its architecture or tensor types, and what is supported).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agentsim.cli.errors import EXIT_OK, UsageError
from agentsim.engines.base import EngineUnavailable


def add_arguments(models: argparse.ArgumentParser) -> None:
    models.add_argument("action", choices=("list", "pull", "path", "check"))
    models.add_argument("name", nargs="?", default="smollm2-135m-instruct")


def main(args: argparse.Namespace) -> int:
    try:
        from agentsim.engines.mlc import models  # TVM: imported only for this command
    except ImportError as e:
        raise UsageError(f"the mlc engine is not available: {e}") from None
    try:
        match args.action:
            case "list":
                _list()
            case "pull":
                print(models.pull(args.name))
            case "path":
                print(models.model_path(args.name))
            case "check":
                print(_check(models.model_path(args.name)))
    except EngineUnavailable as e:
        raise UsageError(str(e)) from None
    return EXIT_OK


def _list() -> None:
    from agentsim.engines.mlc import models
    from agentsim.engines.mlc.config import ARCHITECTURES, SUPPORTED_QUANTS

    for st in models.list_models():
        state = f"present, {st.size_bytes / 2**20:.0f} MiB" if st.present else "not pulled"
        print(f"{st.name}  ({state})  {st.description}")
        if st.license:
            print(f"    license: {st.license}")
        if st.present:
            print(f"    {st.path}")
    print("\nsupported architectures (GGUF general.architecture):")
    for arch, what in ARCHITECTURES.items():
        print(f"  {arch:<8} {what}")
    print(f"supported quantization types: {', '.join(SUPPORTED_QUANTS)}")
    print("any other .gguf: `agentsim models check FILE.gguf` says whether it runs")


def _check(path: Path) -> str:
    """One line: the file's architecture and types, and that it runs (or why not)."""
    from agentsim.engines.mlc.convert import GGUFModel, read_config

    model = GGUFModel(path)
    types = ", ".join(f"{t} {n}" for t, n in model.quant_counts().most_common())
    try:
        cfg = read_config(model)
    except EngineUnavailable as e:
        raise EngineUnavailable(
            f"{path.name} ({model.arch}; tensors {types}) cannot run: {e}"
        ) from None
    kinds = "" if not cfg.has_sliding else f", sliding window {cfg.sliding_window}"
    return (
        f"{path.name}: {cfg.arch}, {cfg.num_layers} layers, hidden {cfg.hidden_size}, "
        f"vocab {cfg.vocab_size}, context {cfg.context_length}{kinds}; tensors {types}: "
        "supported by the mlc engine"
    )
