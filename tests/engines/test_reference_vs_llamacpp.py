"""The numpy reference against llama.cpp itself, on tiny float32 models of every family.

The reference defines what "correct" means for the compiled engine, so it is checked
against llama.cpp (llama-cpp-python, the same GGUF, float32 weights and KV cache) —
skipped where llama-cpp-python is not installed. Each case also mutates one thing the
reference reads (window, RoPE base, scaling, soft-cap) to show the comparison would catch
it. llama.cpp's CPU GELU goes through an f16 table, hence the looser Gemma tolerance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from families import LONGROPE_META
from tiny_gguf import TinySpec, write_tiny_gguf

from agentsim.engines.mlc.gguf_file import GGUFModel
from agentsim.engines.mlc.reference import ReferenceModel

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

F32 = {"quant": "F32", "embed_quant": "F32", "head_quant": "F32"}

#: name -> (spec, tokens, KV capacity, a mutation of the reference's hparams)
CASES: dict[str, tuple[TinySpec, int, int, dict[str, Any]]] = {
    "llama": (TinySpec(**F32), 40, 512, {"freq_base": 20000.0}),
    "llama3-rope-freqs": (
        TinySpec(rope_freqs=True, rope_theta=5e5, **F32),
        40,
        512,
        {"freq_base": 1e4},
    ),
    "llama-yarn": (
        TinySpec(
            meta={
                "rope.scaling.type": "yarn",
                "rope.scaling.factor": 4.0,
                "rope.scaling.original_context_length": 64,
            },
            **F32,
        ),
        40,
        512,
        {"ext_factor": 0.0},
    ),
    "qwen2": (TinySpec(arch="qwen2", tied=False, **F32), 40, 512, {"freq_scale": 0.5}),
    "qwen3": (TinySpec(arch="qwen3", head_dim=64, **F32), 40, 512, {"eps": 1e-2}),
    "gemma": (
        TinySpec(arch="gemma", tokenizer="llama", vocab=400, **F32),
        40,
        512,
        {"embed_scale": 1.0},
    ),
    "gemma2": (
        TinySpec(
            arch="gemma2",
            head_dim=64,
            sliding_window=24,
            tokenizer="llama",
            vocab=400,
            meta={"attn_logit_softcapping": 5.0},
            **F32,
        ),
        60,
        512,
        {"attn_softcap": 0.0},
    ),
    "gemma3": (
        TinySpec(
            arch="gemma3",
            layers=6,
            heads=4,
            kv_heads=1,
            head_dim=64,
            sliding_window=20,
            rope_theta=1e6,
            tokenizer="llama",
            vocab=400,
            **F32,
        ),
        70,
        512,
        {"n_swa": 21},
    ),
    "phi3-longrope-long": (
        TinySpec(arch="phi3", tied=False, longrope=True, rope_dims=16, meta=LONGROPE_META, **F32),
        40,
        512,
        {"attn_factor": 1.0},
    ),
    "phi3-longrope-short": (
        TinySpec(arch="phi3", tied=False, longrope=True, rope_dims=16, meta=LONGROPE_META, **F32),
        40,
        256,
        {"freq_base": 5000.0},
    ),
}


def _llama_cpp_logits(path: Path, ids: list[int], ctx: int) -> np.ndarray:
    llm = llama_cpp.Llama(
        str(path), n_ctx=ctx, logits_all=True, verbose=False, n_threads=2, type_k=0, type_v=0
    )
    llm.eval(ids)
    return np.asarray(llm.scores[: len(ids)], dtype=np.float32)


@pytest.mark.parametrize("name", list(CASES))
def test_reference_matches_llama_cpp(name: str, tmp_path: Path) -> None:
    spec, n, ctx, mutation = CASES[name]
    path = write_tiny_gguf(tmp_path / f"{name}.gguf", spec)
    ids = [int(t) for t in np.random.default_rng(0).integers(3, spec.vocab, n)]
    want = _llama_cpp_logits(path, ids, ctx)
    ref = ReferenceModel(GGUFModel(path), context=ctx)
    tol = 1e-2 if spec.arch.startswith("gemma") else 1e-3
    assert np.abs(ref.logits(ids) - want).max() <= tol
    for key, value in mutation.items():
        setattr(ref.hp, key, value)
    assert np.abs(ref.logits(ids) - want).max() > 5 * tol, mutation
