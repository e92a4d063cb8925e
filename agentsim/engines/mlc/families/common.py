"""GGUF metadata shared by every family: base hyper-parameters, RoPE and weight-type checks.

No TVM here. The rules follow llama.cpp, which defines what a GGUF file means: metadata keys
are ``<arch>.<key>``; RoPE scaling (linear, YaRN, llama3 frequency factors, LongRoPE) is
folded into one vector of inverse frequencies per RoPE kind (see ``RopeSpec``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentsim.engines.base import EngineUnavailable
from agentsim.engines.mlc.config import SUPPORTED_QUANTS, ModelConfig, RopeSpec
from agentsim.engines.mlc.gguf_file import GGUFModel
from agentsim.engines.mlc.quants import FORMATS, GGUF_TO_KERNEL, gguf_rows


class Meta:
    """``<arch>.*`` metadata of one file, with one-line errors for missing keys."""

    def __init__(self, model: GGUFModel) -> None:
        self.model = model
        self.arch = model.arch

    def get(self, key: str, default: Any = None) -> Any:
        return self.model.field(f"{self.arch}.{key}", default)

    def need(self, key: str) -> Any:
        v = self.get(key)
        if v is None:
            raise EngineUnavailable(f"GGUF {self.model.path.name} lacks metadata {self.arch}.{key}")
        return v


def check_quants(model: GGUFModel) -> None:
    """Every tensor must be of a type the kernels read."""
    for name in model.tensors:
        qt = model.qtype(name)
        if qt not in SUPPORTED_QUANTS:
            raise EngineUnavailable(
                f"tensor {name} of {model.path.name} has quant type {qt}; the mlc engine "
                f"supports {', '.join(SUPPORTED_QUANTS)}"
            )


def need_tensor(model: GGUFModel, name: str) -> None:
    if name not in model.tensors:
        raise EngineUnavailable(
            f"{model.path.name} ({model.arch}) lacks tensor {name}, which that architecture needs"
        )


def base_params(model: GGUFModel, meta: Meta) -> dict[str, Any]:
    """The fields every family reads the same way (llama.cpp's defaults where optional)."""
    need_tensor(model, "token_embd.weight")
    need_tensor(model, "output_norm.weight")
    if int(meta.get("expert_count", 0) or 0) > 0:
        raise EngineUnavailable(
            f"{model.path.name} is a mixture-of-experts {model.arch} model "
            f"({meta.get('expert_count')} experts); the mlc engine runs dense models only"
        )
    hidden = int(meta.need("embedding_length"))
    heads = int(meta.need("attention.head_count"))
    kv_heads = int(meta.get("attention.head_count_kv", heads))
    if heads <= 0 or kv_heads <= 0 or heads % kv_heads:
        raise EngineUnavailable(
            f"{model.path.name}: attention.head_count {heads} must be a positive multiple of "
            f"attention.head_count_kv {kv_heads}"
        )
    head_dim = int(meta.get("attention.key_length", hidden // heads))
    v_dim = int(meta.get("attention.value_length", head_dim))
    if v_dim != head_dim:
        raise EngineUnavailable(
            f"{model.path.name}: attention.value_length {v_dim} != key_length {head_dim}; "
            "the mlc engine needs equal K and V head sizes"
        )
    return {
        "arch": model.arch,
        "vocab_size": int(model.tensors["token_embd.weight"].shape[1]),
        "hidden_size": hidden,
        "intermediate_size": int(meta.need("feed_forward_length")),
        "num_layers": int(meta.need("block_count")),
        "num_heads": heads,
        "num_kv_heads": kv_heads,
        "head_dim": head_dim,
        "rms_eps": float(meta.get("attention.layer_norm_rms_epsilon", 1e-5)),
        "context_length": int(meta.get("context_length", 2048)),
        "tied_embeddings": "output.weight" not in model.tensors,
        "qkv_bias": "blk.0.attn_q.bias" in model.tensors or "blk.0.attn_qkv.bias" in model.tensors,
    }


@dataclass(frozen=True)
class RopeParams:
    """llama.cpp's RoPE inputs for one kind of layer (``ggml_rope_ext`` arguments)."""

    base: float
    rotary_dim: int
    freq_scale: float = 1.0
    factors: tuple[float, ...] | None = None
    ext_factor: float = 0.0
    orig_ctx: int = 0
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    attn_factor: float = 1.0


def rope_spec(p: RopeParams) -> RopeSpec:
    """Fold ``p`` into per-pair inverse frequencies and one cos/sin multiplier."""
    k = np.arange(0, p.rotary_dim, 2, dtype=np.float64)
    extrap = p.base ** (-k / p.rotary_dim)
    if p.factors is not None:
        extrap = extrap / np.asarray(p.factors, dtype=np.float64)
    inv = extrap * p.freq_scale
    mscale = p.attn_factor
    if p.ext_factor:
        lo, hi = _yarn_corr_dims(p.rotary_dim, p.orig_ctx, p.base, p.beta_fast, p.beta_slow)
        ramp = 1.0 - np.clip((k / 2 - lo) / max(0.001, hi - lo), 0.0, 1.0)
        mix = ramp * p.ext_factor
        inv = inv * (1 - mix) + extrap * mix
        mscale *= 1.0 + 0.1 * math.log(1.0 / p.freq_scale)
    return RopeSpec(tuple(float(x) for x in inv), float(mscale))


def _yarn_corr_dims(
    dims: int, orig_ctx: int, base: float, beta_fast: float, beta_slow: float
) -> tuple[float, float]:
    def corr(rot: float) -> float:
        return dims * math.log(orig_ctx / (rot * 2 * math.pi)) / (2 * math.log(base))

    return max(0.0, math.floor(corr(beta_fast))), min(dims - 1.0, math.ceil(corr(beta_slow)))


def _mscale(scale: float, m: float) -> float:
    return 1.0 if scale <= 1.0 else 0.1 * m * math.log(scale) + 1.0


_SCALING_TYPES = ("none", "linear", "yarn", "longrope")


def global_rope(model: GGUFModel, meta: Meta, rotary_dim: int, context: int) -> RopeParams:
    """RoPE of full-attention layers from ``rope.*`` metadata (llama.cpp's reading)."""
    scaling = str(meta.get("rope.scaling.type", "linear"))
    if scaling not in _SCALING_TYPES:
        raise EngineUnavailable(
            f"{model.path.name} uses RoPE scaling {scaling!r}; the mlc engine supports "
            f"{', '.join(_SCALING_TYPES)} (and llama3 frequency factors)"
        )
    factor = float(meta.get("rope.scaling.factor", 0.0) or meta.get("rope.scale_linear", 0.0))
    freq_scale = 1.0 / factor if factor and scaling != "none" else 1.0
    ext = float(meta.get("rope.scaling.yarn_ext_factor", -1.0))
    if ext < 0:
        ext = 1.0 if scaling == "yarn" else 0.0
    attn = float(meta.get("rope.scaling.yarn_attn_factor", 1.0))
    if ext:
        f = 1.0 / freq_scale
        log_mul = float(meta.get("rope.scaling.yarn_log_multiplier", 0.0))
        attn = _mscale(f, 1.0) / _mscale(f, log_mul) if log_mul else _mscale(f, 1.0)
        attn /= 1.0 + 0.1 * math.log(f)
    attn *= float(meta.get("rope.scaling.attn_factor", 1.0))
    return RopeParams(
        base=float(meta.get("rope.freq_base", 10000.0)),
        rotary_dim=rotary_dim,
        freq_scale=freq_scale,
        factors=_factors(model, "rope_freqs.weight", rotary_dim),
        ext_factor=ext,
        orig_ctx=int(meta.get("rope.scaling.original_context_length", context)),
        beta_fast=float(meta.get("rope.scaling.yarn_beta_fast", 32.0)),
        beta_slow=float(meta.get("rope.scaling.yarn_beta_slow", 1.0)),
        attn_factor=attn,
    )


def _factors(model: GGUFModel, name: str, rotary_dim: int) -> tuple[float, ...] | None:
    if name not in model.tensors:
        return None
    arr = model.dense(name).reshape(-1)
    if arr.shape[0] != rotary_dim // 2:
        raise EngineUnavailable(
            f"{model.path.name}: {name} has {arr.shape[0]} entries, expected {rotary_dim // 2}"
        )
    return tuple(float(x) for x in arr)


def longrope_factors(model: GGUFModel, rotary_dim: int) -> dict[str, tuple[float, ...]]:
    """Phi-3's ``rope_factors_long``/``_short`` tensors, when the file has them."""
    out = {}
    for kind in ("long", "short"):
        f = _factors(model, f"rope_factors_{kind}.weight", rotary_dim)
        if f is not None:
            out[kind] = f
    return out


def kernel_quant(model: GGUFModel, name: str) -> str:
    return GGUF_TO_KERNEL[model.qtype(name)]


@dataclass
class LayerWeights:
    """One layer's tensors before repacking.

    ``mats``: matrix id (``q``/``k``/``v``/``o``/``gate``/``up``/``down``, or ``qkv`` /
    ``gate_up`` when the file stores them fused) → (GGUF rows, kernel quant). ``biases``:
    the Q/K/V biases by the same ids. ``dense``: float32 tensors by parameter name.
    """

    mats: dict[str, tuple[np.ndarray, str]]
    biases: dict[str, np.ndarray]
    dense: dict[str, np.ndarray]


def rows_of(model: GGUFModel, name: str) -> tuple[np.ndarray, str]:
    """(per-row raw data, kernel quant): blocks as bytes ``[rows, bytes]`` or float rows."""
    t = model.tensors[name]
    return gguf_rows(t.data, t.tensor_type.name, tuple(int(x) for x in t.shape))


def split_layer_weights(
    model: GGUFModel, cfg: ModelConfig, i: int, mats: dict[str, str]
) -> LayerWeights:
    """Matrices ``mats`` (our id → GGUF name stem) of block ``i`` plus its Q/K/V biases."""
    b = f"blk.{i}"
    out = LayerWeights({}, {}, {})
    for ours, theirs in mats.items():
        out.mats[ours] = rows_of(model, f"{b}.{theirs}.weight")
    if cfg.qkv_bias:
        if "qkv" in mats:
            out.biases["qkv"] = model.dense(f"{b}.attn_qkv.bias").reshape(-1)
        else:
            for p in "qkv":
                out.biases[p] = model.dense(f"{b}.attn_{p}.bias").reshape(-1)
    return out


def _check_cols(model: GGUFModel, name: str) -> None:
    """The kernels read whole blocks: 32 columns (256 for K-quants, also for float types)."""
    cols = model.shape(name)[1]
    block = FORMATS[kernel_quant(model, name)].block
    if cols % block:
        raise EngineUnavailable(
            f"{model.path.name}: {name} has {cols} columns; the mlc engine's "
            f"{model.qtype(name)} kernels need a multiple of {block}"
        )


def finish_config(
    model: GGUFModel,
    base: dict[str, Any],
    *,
    split_mats: dict[str, str],
    extra_tensors: set[str],
    **fields: Any,
) -> ModelConfig:
    """Check the file's tensors and types, work out kernel layouts; the ``ModelConfig``.

    ``split_mats`` maps matrix ids to GGUF name stems per block; ``extra_tensors`` are the
    family's other tensors. A tensor the model would not use is refused, not ignored.
    """
    check_quants(model)
    layers = base["num_layers"]
    expected = {"token_embd.weight", "output_norm.weight"} | extra_tensors
    if not base["tied_embeddings"]:
        expected.add("output.weight")
    quants = {"embed": kernel_quant(model, "token_embd.weight")}
    if not base["tied_embeddings"]:
        quants["lm_head"] = kernel_quant(model, "output.weight")
    fused_qkv = fused_gu = True
    for i in range(layers):
        b = f"blk.{i}"
        expected |= {f"{b}.attn_norm.weight", f"{b}.ffn_norm.weight"}
        for ours, theirs in split_mats.items():
            name = f"{b}.{theirs}.weight"
            need_tensor(model, name)
            expected.add(name)
            quants[f"layers.{i}.{ours}"] = kernel_quant(model, name)
            _check_cols(model, name)
        if "qkv" not in split_mats:
            fused_qkv &= len({quants[f"layers.{i}.{p}"] for p in "qkv"}) == 1
        if "gate_up" not in split_mats:
            fused_gu &= quants[f"layers.{i}.gate"] == quants[f"layers.{i}.up"]
    for i in range(layers):
        p = f"layers.{i}."
        if fused_qkv and "qkv" not in split_mats:
            quants[p + "qkv"] = quants[p + "q"]
        if fused_gu and "gate_up" not in split_mats:
            quants[p + "gate_up"] = quants[p + "gate"]
    for name in expected:
        need_tensor(model, name)
    unknown = sorted(set(model.tensors) - expected)
    if unknown:
        raise EngineUnavailable(
            f"{model.path.name} ({model.arch}) has tensor {unknown[0]}, which the mlc engine's "
            f"{model.arch} model does not use (an unsupported variant of the architecture)"
        )
    _check_cols(model, "token_embd.weight")
    if not base["tied_embeddings"]:
        _check_cols(model, "output.weight")
    return ModelConfig(**base, quants=quants, fused_qkv=fused_qkv, fused_gate_up=fused_gu, **fields)
