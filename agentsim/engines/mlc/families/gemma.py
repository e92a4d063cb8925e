"""gemma, gemma2 and gemma3, as llama.cpp reads their GGUF files.

Common to all: embeddings scaled by ``sqrt(hidden)``, GeGLU with tanh GELU, tied LM head,
rotate-half RoPE, RMSNorm weights used as stored (the converter adds Gemma's ``+1``).
- ``gemma2``: norms after attention and FFN too; logits soft-capped
  (``final_logit_softcapping``, default 30); every other layer (pattern 2, layer 0 first)
  attends within ``attention.sliding_window`` (default 4096); attention scores soft-capped
  (``attn_logit_softcapping``, default 50) inside the CPU attention kernels.
- ``gemma3``: as gemma2 plus per-head Q/K RMSNorm; 5 sliding layers per global one
  (``attention.sliding_window_pattern``, default 6); local layers use RoPE base
  ``rope.freq_base_swa`` (default 10000) without scaling, global ones ``rope.freq_base``
  with the file's scaling. No attention soft-capping.
The attention scale is ``1/sqrt(head_dim)``, or ``1/sqrt(hidden/heads)`` for the 27B
models (46 / 62 layers), as in llama.cpp (the GGUF carries no ``query_pre_attn_scalar``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import Tensor
from tvm.relax.frontend.nn.llm.kv_cache import PagedKVCache

from agentsim.engines.base import EngineUnavailable
from agentsim.engines.mlc.config import ModelConfig
from agentsim.engines.mlc.families import common
from agentsim.engines.mlc.families.blocks import GatedMLP, SelfAttention, rms_norm
from agentsim.engines.mlc.families.llama import SPLIT_MATS
from agentsim.engines.mlc.gguf_file import GGUFModel

_PATTERN = {"gemma2": 2, "gemma3": 6}
_LAYERS_27B = {"gemma2": 46, "gemma3": 62}


def read_config(model: GGUFModel) -> ModelConfig:
    meta = common.Meta(model)
    base = common.base_params(model, meta)
    arch, n, d, ctx = base["arch"], base["num_layers"], base["head_dim"], base["context_length"]
    if not base["tied_embeddings"] or base["qkv_bias"]:
        raise EngineUnavailable(f"{model.path.name}: a {arch} file with an LM head or biases")
    glob = common.global_rope(model, meta, d, ctx)
    if glob.factors is not None:
        raise EngineUnavailable(f"{model.path.name}: rope_freqs.weight is not used by {arch}")
    window, kinds = 0, ("global",) * n
    if arch in _PATTERN:
        window = int(meta.get("attention.sliding_window", 4096 if arch == "gemma2" else 0) or 0)
        if window > 0:
            kinds = _layer_kinds(model, meta.get("attention.sliding_window_pattern"), arch, n)
    ropes = {"global": common.rope_spec(glob)}
    if "local" in kinds:
        if arch == "gemma2":
            swa_base, swa_scale = glob.base, glob.freq_scale
        else:
            swa_base, swa_scale = 10000.0, 1.0
        swa_base = float(meta.get("rope.freq_base_swa", swa_base))
        local = dataclasses.replace(glob, base=swa_base, freq_scale=swa_scale)
        ropes["local"] = common.rope_spec(local)
    hidden, heads = base["hidden_size"], base["num_heads"]
    big = n == _LAYERS_27B.get(arch)
    attn_scale = (hidden / heads) ** -0.5 if big else d**-0.5
    final_cap = float(meta.get("final_logit_softcapping", 30.0 if arch == "gemma2" else 0.0))
    attn_cap = float(meta.get("attn_logit_softcapping", 50.0)) if arch == "gemma2" else 0.0
    extra: set[str] = set()
    for i in range(n):
        if arch != "gemma":
            extra |= {f"blk.{i}.post_attention_norm.weight", f"blk.{i}.post_ffw_norm.weight"}
        if arch == "gemma3":
            extra |= {f"blk.{i}.attn_q_norm.weight", f"blk.{i}.attn_k_norm.weight"}
    return common.finish_config(
        model,
        base,
        split_mats=SPLIT_MATS,
        extra_tensors=extra,
        ropes=ropes,
        layer_kinds=kinds,
        rotary_dim=d,
        sliding_window=window if "local" in kinds else 0,
        qk_norm=arch == "gemma3",
        post_norms=arch != "gemma",
        activation="gelu_tanh",
        embed_scale=float(hidden) ** 0.5,
        attn_scale=attn_scale,
        attn_softcap=attn_cap,
        final_softcap=final_cap,
    )


def _layer_kinds(model: GGUFModel, pattern: Any, arch: str, n: int) -> tuple[str, ...]:
    """llama.cpp's rule: layer ``i`` slides when ``i % p < p - 1``, or per-layer flags."""
    if isinstance(pattern, list):
        if len(pattern) != n:
            raise EngineUnavailable(
                f"{model.path.name}: {arch}.attention.sliding_window_pattern has "
                f"{len(pattern)} entries for {n} layers"
            )
        return tuple("local" if bool(x) else "global" for x in pattern)
    p = int(pattern if pattern is not None else _PATTERN[arch])
    return tuple("local" if p == 0 or i % p < p - 1 else "global" for i in range(n))


def layer_weights(model: GGUFModel, cfg: ModelConfig, i: int) -> common.LayerWeights:
    lw = common.split_layer_weights(model, cfg, i, SPLIT_MATS)
    b, p = f"blk.{i}", f"layers.{i}."
    lw.dense[p + "attn_norm"] = model.dense(f"{b}.attn_norm.weight")
    lw.dense[p + "ffn_norm"] = model.dense(f"{b}.ffn_norm.weight")
    if cfg.post_norms:
        lw.dense[p + "post_attn_norm"] = model.dense(f"{b}.post_attention_norm.weight")
        lw.dense[p + "post_ffn_norm"] = model.dense(f"{b}.post_ffw_norm.weight")
    if cfg.qk_norm:
        lw.dense[p + "attn.q_norm"] = model.dense(f"{b}.attn_q_norm.weight")
        lw.dense[p + "attn.k_norm"] = model.dense(f"{b}.attn_k_norm.weight")
    return lw


class Layer(nn.Module):  # type: ignore[misc]
    """``h += post(attn(norm(h))); h += post(mlp(norm(h)))`` (no post norms for gemma 1)."""

    def __init__(self, cfg: ModelConfig, i: int, target_kind: str) -> None:
        h = cfg.hidden_size
        self.cfg = cfg
        self.rope_kind = cfg.layer_kinds[i]
        self.attn_norm = nn.Parameter((h,), "float32")
        self.ffn_norm = nn.Parameter((h,), "float32")
        if cfg.post_norms:
            self.post_attn_norm = nn.Parameter((h,), "float32")
            self.post_ffn_norm = nn.Parameter((h,), "float32")
        self.attn = SelfAttention(cfg, i, target_kind)
        self.mlp = GatedMLP(cfg, i, target_kind)

    def forward(self, h: Tensor, kv: PagedKVCache, cs: Tensor) -> Tensor:
        eps = self.cfg.rms_eps
        a = self.attn(rms_norm(h, self.attn_norm, eps), kv, cs)
        if self.cfg.post_norms:
            a = rms_norm(a, self.post_attn_norm, eps)
        h = h + a
        m = self.mlp(rms_norm(h, self.ffn_norm, eps))
        if self.cfg.post_norms:
            m = rms_norm(m, self.post_ffn_norm, eps)
        return h + m
