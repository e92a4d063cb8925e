"""Fixtures for engine tests: a session-wide cache dir and tiny GGUF models compiled once."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The suite runs with --import-mode=importlib: make the helper module next to us importable.
sys.path.insert(0, str(Path(__file__).parent))
import conftest_shared  # noqa: F401  (captures the shared cache first)
from families import CASES
from tiny_gguf import TINY, write_tiny_gguf


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("agentsim-cache")
    old = os.environ.get("AGENTSIM_CACHE")
    os.environ["AGENTSIM_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("AGENTSIM_CACHE", None)
    else:
        os.environ["AGENTSIM_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gguf")
    return {name: write_tiny_gguf(root / f"{name}.gguf", spec) for name, spec in TINY.items()}


@pytest.fixture(scope="session")
def tiny_artifacts(tiny_ggufs: dict[str, Path], session_cache: Path) -> dict[str, Path]:
    """Compiled in this process (the compiler is imported here, agents never do)."""
    import agentsim.engines.mlc.compile  # noqa: F401  (build in-process: faster)
    from agentsim.engines.mlc.build import ensure_artifact

    return {name: ensure_artifact(path) for name, path in tiny_ggufs.items()}


@pytest.fixture(scope="session")
def family_ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {name: write_tiny_gguf(root / f"{name}.gguf", c.spec) for name, c in CASES.items()}


@pytest.fixture(scope="session")
def family_artifacts(family_ggufs: dict[str, Path], session_cache: Path) -> dict[str, Path]:
    """One compiled artifact per architecture case (in this process, like ``tiny_artifacts``)."""
    import agentsim.engines.mlc.compile  # noqa: F401
    from agentsim.engines.mlc.build import ensure_artifact

    return {name: ensure_artifact(path) for name, path in family_ggufs.items()}
