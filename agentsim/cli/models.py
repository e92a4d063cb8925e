"""``agentsim models list|pull|path [NAME]``: the models in the agentsim cache."""

from __future__ import annotations

import argparse

from agentsim.cli.errors import EXIT_OK, UsageError
from agentsim.engines.base import EngineUnavailable


def add_arguments(models: argparse.ArgumentParser) -> None:
    models.add_argument("action", choices=("list", "pull", "path"))
    models.add_argument("name", nargs="?", default="smollm2-135m-instruct")


def main(args: argparse.Namespace) -> int:
    try:
        from agentsim.engines.mlc import models  # TVM: imported only for this command
    except ImportError as e:
        raise UsageError(f"the mlc engine is not available: {e}") from None
    try:
        match args.action:
            case "list":
                for st in models.list_models():
                    state = (
                        f"present, {st.size_bytes / 2**20:.0f} MiB" if st.present else "not pulled"
                    )
                    print(f"{st.name}  ({state})  {st.description}")
                    if st.present:
                        print(f"    {st.path}")
            case "pull":
                print(models.pull(args.name))
            case "path":
                print(models.model_path(args.name))
    except EngineUnavailable as e:
        raise UsageError(str(e)) from None
    return EXIT_OK
