"""llama, qwen2 and qwen3: pre-norm decoders with SwiGLU and grouped-query attention.

- ``llama`` (Llama 1/2/3.x, SmolLM, Mistral, Ministral, DeepSeek-R1-Distill-Llama): llama.cpp's
  converter permutes Q/K rows for its adjacent-pair RoPE; they are un-permuted here so the
  rotate-half RoPE of ``blocks.py`` applies. RoPE scaling: linear, YaRN and llama3 (the
  ``rope_freqs.weight`` factors). A ``llama.attention.sliding_window`` smaller than the
  context makes every layer a sliding-window layer (Mistral v0.1 style).
- ``qwen2``: Q/K/V biases, rotate-half RoPE.
- ``qwen3``: per-head RMSNorm of Q and K before RoPE, no biases.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import Tensor
from tvm.relax.frontend.nn.llm.kv_cache import PagedKVCache

from agentsim.engines.base import EngineUnavailable
from agentsim.engines.mlc.config import ModelConfig
from agentsim.engines.mlc.families import common
from agentsim.engines.mlc.families.blocks import GatedMLP, SelfAttention, rms_norm
from agentsim.engines.mlc.gguf_file import GGUFModel

SPLIT_MATS = {
    "q": "attn_q",
    "k": "attn_k",
    "v": "attn_v",
    "o": "attn_output",
    "gate": "ffn_gate",
    "up": "ffn_up",
    "down": "ffn_down",
}


def read_config(model: GGUFModel) -> ModelConfig:
    meta = common.Meta(model)
    base = common.base_params(model, meta)
    arch, d, ctx = base["arch"], base["head_dim"], base["context_length"]
    rot = int(meta.get("rope.dimension_count", d))
    if rot != d:
        raise EngineUnavailable(
            f"{model.path.name}: {arch}.rope.dimension_count {rot} != head size {d}; "
            f"partial rotary is not defined for {arch}"
        )
    rope = common.rope_spec(common.global_rope(model, meta, rot, ctx))
    window = int(meta.get("attention.sliding_window", 0) or 0) if arch == "llama" else 0
    kinds = ("local" if 0 < window < ctx else "global",) * base["num_layers"]
    ropes = {"global": rope, "local": rope} if "local" in kinds else {"global": rope}
    return common.finish_config(
        model,
        base,
        split_mats=SPLIT_MATS,
        ropes=ropes,
        layer_kinds=kinds,
        rotary_dim=rot,
        sliding_window=window if "local" in kinds else 0,
        qk_norm=arch == "qwen3",
        extra_tensors=_extra_tensors(model, base),
    )


def _extra_tensors(model: GGUFModel, base: dict[str, Any]) -> set[str]:
    names = {"rope_freqs.weight"} & set(model.tensors)
    if base["arch"] == "qwen3":
        for i in range(base["num_layers"]):
            names |= {f"blk.{i}.attn_q_norm.weight", f"blk.{i}.attn_k_norm.weight"}
    if base["qkv_bias"]:
        for i in range(base["num_layers"]):
            names |= {f"blk.{i}.attn_{p}.bias" for p in "qkv"}
    return names


def layer_weights(model: GGUFModel, cfg: ModelConfig, i: int) -> common.LayerWeights:
    """Layer ``i``'s matrices (GGUF rows) and dense tensors, named as ``Layer`` names them."""
    lw = common.split_layer_weights(model, cfg, i, SPLIT_MATS)
    b = f"blk.{i}"
    lw.dense[f"layers.{i}.attn_norm"] = model.dense(f"{b}.attn_norm.weight")
    lw.dense[f"layers.{i}.ffn_norm"] = model.dense(f"{b}.ffn_norm.weight")
    if cfg.qk_norm:
        lw.dense[f"layers.{i}.attn.q_norm"] = model.dense(f"{b}.attn_q_norm.weight")
        lw.dense[f"layers.{i}.attn.k_norm"] = model.dense(f"{b}.attn_k_norm.weight")
    if cfg.arch == "llama":
        # llama.cpp permutes Q/K rows for its adjacent-pair RoPE; ours rotates halves.
        for p, heads in (("q", cfg.num_heads), ("k", cfg.num_kv_heads)):
            rows, quant = lw.mats[p]
            lw.mats[p] = (unpermute_rows(rows, heads), quant)
            if p in lw.biases:
                lw.biases[p] = unpermute_rows(lw.biases[p][:, None], heads)[:, 0]
    return lw


def unpermute_rows(rows: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's Q/K row permutation (interleaved RoPE pairs → rotate-half halves)."""
    head_dim = rows.shape[0] // n_head
    rest = rows.shape[1:]
    r = rows.reshape(n_head, head_dim // 2, 2, *rest)
    return np.ascontiguousarray(r.swapaxes(1, 2).reshape(rows.shape))


class Layer(nn.Module):  # type: ignore[misc]
    """``h += attn(norm(h)); h += mlp(norm(h))``."""

    def __init__(self, cfg: ModelConfig, i: int, target_kind: str) -> None:
        self.cfg = cfg
        self.rope_kind = cfg.layer_kinds[i]
        self.attn_norm = nn.Parameter((cfg.hidden_size,), "float32")
        self.ffn_norm = nn.Parameter((cfg.hidden_size,), "float32")
        self.attn = SelfAttention(cfg, i, target_kind)
        self.mlp = GatedMLP(cfg, i, target_kind)

    def forward(self, h: Tensor, kv: PagedKVCache, cs: Tensor) -> Tensor:
        eps = self.cfg.rms_eps
        h = h + self.attn(rms_norm(h, self.attn_norm, eps), kv, cs)
        return h + self.mlp(rms_norm(h, self.ffn_norm, eps))
