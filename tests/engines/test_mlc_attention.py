"""The CPU attention kernels of ``attention.py`` against TVM's own reference kernels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from tiny_gguf import TinySpec, write_tiny_gguf

from agentsim.engines.mlc.runtime import Runtime


def test_fast_attention_equals_tvm_reference_kernels_over_many_pages(tmp_path: Path) -> None:
    """300 tokens (19 KV pages) prefilled in ragged and paged chunks, then decode steps.

    head_dim 24 is not a multiple of the 16-float SIMD width; 2 query heads per KV head.
    """
    import agentsim.engines.mlc.compile as compile_mod
    from agentsim.engines.mlc.build import ensure_artifact
    from agentsim.engines.mlc.config import ModelConfig

    spec = TinySpec(layers=1, hidden=96, ffn=128, heads=4, kv_heads=2, context=512, seed=8)
    fast = ensure_artifact(write_tiny_gguf(tmp_path / "attn.gguf", spec))
    ref = tmp_path / "reference-attention"
    shutil.copytree(fast, ref)
    meta = json.loads((ref / "meta.json").read_text())
    target = compile_mod.make_target("llvm", meta["target"]["mcpu"], 2)
    cfg = ModelConfig.from_json(meta["config"])
    compile_mod.compile_model(cfg, target, ref / "model.so", fast_attention=False)
    ids = [int(t) for t in np.random.default_rng(2).integers(3, spec.vocab, 306)]
    outs = []
    for art in (fast, ref):
        rt = Runtime(art, 2, prefill_chunk=128, context_length=512)
        got = [rt.prefill(ids[:300])]
        got += [rt.decode(t) for t in ids[300:]]
        outs.append(np.stack(got))
    scale = float(np.abs(outs[1]).max())
    assert scale > 0.1
    assert float(np.abs(outs[0] - outs[1]).max()) <= 1e-5 * max(scale, 1.0)
