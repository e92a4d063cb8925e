"""phi3 (Phi-3/3.5-mini, Phi-4-mini): the llama decoder layer over Phi's fused tensors.

- ``attn_qkv.weight`` holds Q, K and V rows in that order; ``ffn_up.weight`` holds the gate
  rows then the up rows (SwiGLU); separate ``attn_q/k/v`` are accepted too.
- RoPE rotates halves of the first ``rope.dimension_count`` dims (Phi-4-mini: 96 of 128).
- LongRoPE: ``rope_factors_short``/``_long`` divide the frequencies and
  ``rope.scaling.attn_factor`` scales cos/sin. As in llama.cpp, the long factors apply when
  the KV capacity exceeds ``rope.scaling.original_context_length``: the artifact stores both
  tables and the runtime loads the one its context needs (``ModelConfig.long_rope``).
- ``phi3.attention.sliding_window`` is ignored, as llama.cpp does (its SWA is disabled).
"""

from __future__ import annotations

import dataclasses

from agentsim.engines.base import EngineUnavailable
from agentsim.engines.mlc.config import ModelConfig
from agentsim.engines.mlc.families import common
from agentsim.engines.mlc.families.llama import SPLIT_MATS, Layer
from agentsim.engines.mlc.gguf_file import GGUFModel

FUSED_MATS = {"qkv": "attn_qkv", "o": "attn_output", "gate_up": "ffn_up", "down": "ffn_down"}

__all__ = ["Layer", "layer_weights", "read_config"]


def read_config(model: GGUFModel) -> ModelConfig:
    meta = common.Meta(model)
    base = common.base_params(model, meta)
    d, ctx = base["head_dim"], base["context_length"]
    rot = int(meta.get("rope.dimension_count", d))
    if rot <= 0 or rot > d or rot % 2:
        raise EngineUnavailable(
            f"{model.path.name}: phi3.rope.dimension_count {rot} must be even and <= {d}"
        )
    mats = FUSED_MATS if "blk.0.attn_qkv.weight" in model.tensors else _split_with_fused_up()
    glob = common.global_rope(model, meta, rot, ctx)
    factors = common.longrope_factors(model, rot)
    long_rope, long_above = None, 0
    if factors:
        if set(factors) != {"long", "short"}:
            raise EngineUnavailable(
                f"{model.path.name}: LongRoPE needs both rope_factors_long and rope_factors_short"
            )
        long_rope = common.rope_spec(dataclasses.replace(glob, factors=factors["long"]))
        glob = dataclasses.replace(glob, factors=factors["short"])
        long_above = glob.orig_ctx
    extra = {f"rope_factors_{k}.weight" for k in factors}
    if base["qkv_bias"]:
        stem = "attn_qkv" if "qkv" in mats else "attn_{}"
        for i in range(base["num_layers"]):
            if "qkv" in mats:
                extra.add(f"blk.{i}.{stem}.bias")
            else:
                extra |= {f"blk.{i}.attn_{p}.bias" for p in "qkv"}
    return common.finish_config(
        model,
        base,
        split_mats=mats,
        extra_tensors=extra,
        ropes={"global": common.rope_spec(glob)},
        layer_kinds=("global",) * base["num_layers"],
        rotary_dim=rot,
        long_rope=long_rope,
        long_rope_above=long_above,
    )


def _split_with_fused_up() -> dict[str, str]:
    mats = {k: v for k, v in SPLIT_MATS.items() if k not in ("gate", "up")}
    mats["gate_up"] = "ffn_up"
    return mats


def layer_weights(model: GGUFModel, cfg: ModelConfig, i: int) -> common.LayerWeights:
    mats = FUSED_MATS if "blk.0.attn_qkv.weight" in model.tensors else _split_with_fused_up()
    lw = common.split_layer_weights(model, cfg, i, mats)
    lw.dense[f"layers.{i}.attn_norm"] = model.dense(f"blk.{i}.attn_norm.weight")
    lw.dense[f"layers.{i}.ffn_norm"] = model.dense(f"blk.{i}.ffn_norm.weight")
    return lw
