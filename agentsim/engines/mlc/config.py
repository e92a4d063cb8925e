"""The model description shared by the converter, the compiler, the runtime and the reference.

Kept free of TVM imports: agents read it at start-up without loading the compiler, and
``agentsim models list`` reads the supported sets from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from agentsim.engines.mlc.quants import SUPPORTED_GGUF_TYPES

#: bump when the artifact format or the generated code changes: it is part of the cache key.
ENGINE_SOURCE_VERSION = "16"

#: KV capacity when ``options.context_length`` is not set: the model's own, up to this
#: (a 128k-context model would otherwise reserve gigabytes of KV cache per agent)
DEFAULT_CONTEXT_CAP = 8192

#: tokens per page of the paged KV cache (the attention kernels are built for it).
PAGE_SIZE = 16

#: GGUF ``general.architecture`` values the engine compiles, with what each covers.
ARCHITECTURES: dict[str, str] = {
    "llama": "Llama 1/2/3.x, SmolLM, Mistral, Ministral, DeepSeek-R1-Distill-Llama "
    "(RoPE: plain, llama3, linear, YaRN)",
    "qwen2": "Qwen2/2.5, DeepSeek-R1-Distill-Qwen (QKV bias)",
    "qwen3": "Qwen3 dense (Q/K RMSNorm)",
    "gemma": "Gemma 1 (scaled embeddings, GeGLU)",
    "gemma2": "Gemma 2 (pre/post norms, final-logit soft-capping, sliding-window layers; "
    "attention soft-capping not applied)",
    "gemma3": "Gemma 3 text (Q/K norm, 5 local : 1 global layers with their own RoPE bases)",
    "phi3": "Phi-3/3.5/4-mini (fused QKV and gate-up, LongRoPE, partial rotary)",
}
SUPPORTED_ARCHS = tuple(ARCHITECTURES)

#: GGUF tensor types whose blocks the compiled kernels read (``quants.py``).
SUPPORTED_QUANTS = SUPPORTED_GGUF_TYPES


@dataclass(frozen=True)
class RopeSpec:
    """One rotary embedding: ``angle_i = pos * inv_freq[i]``, cos/sin multiplied by ``mscale``.

    ``inv_freq`` has ``rotary_dim / 2`` entries; scaling schemes (linear, llama3, YaRN,
    LongRoPE) are all folded into it at conversion time.
    """

    inv_freq: tuple[float, ...]
    mscale: float = 1.0


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a decoder-only model, as read from GGUF metadata.

    ``quants`` maps each matrix (``embed``, ``lm_head``, ``layers.N.qkv`` ...) to the kernel
    layout its weights use (``quants.FORMATS``: ``q4_k``, ``q8_0``, ``f16`` ...). ``layer_kinds[i]`` names the RoPE of layer ``i`` (a key of
    ``ropes``); ``"local"`` layers also attend only to the last ``sliding_window`` tokens.
    Norm weights are used as stored: llama.cpp's converter already folds Gemma's ``1 + w``.
    ``long_rope`` (LongRoPE) replaces ``ropes["global"]`` when the KV capacity exceeds
    ``long_rope_above`` tokens. ``attn_softcap`` (Gemma 2) is applied by the CPU attention
    kernels (``attention.py``, ``sliding_attention.py``); other targets refuse such a model.
    """

    arch: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_eps: float
    context_length: int
    qkv_bias: bool
    tied_embeddings: bool
    ropes: dict[str, RopeSpec] = field(default_factory=dict)
    layer_kinds: tuple[str, ...] = ()
    rotary_dim: int = 0
    sliding_window: int = 0
    qk_norm: bool = False
    post_norms: bool = False
    activation: str = "silu"
    embed_scale: float = 1.0
    attn_scale: float = 0.0
    attn_softcap: float = 0.0
    final_softcap: float = 0.0
    long_rope: RopeSpec | None = None
    long_rope_above: int = 0
    quants: dict[str, str] = field(default_factory=dict)
    fused_qkv: bool = True
    fused_gate_up: bool = True

    @property
    def sm_scale(self) -> float:
        """Scale of ``q . k`` before the softmax."""
        return self.attn_scale or self.head_dim**-0.5

    @property
    def has_sliding(self) -> bool:
        return self.sliding_window > 0 and "local" in self.layer_kinds

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelConfig:
        d = dict(data)
        d["ropes"] = {
            k: RopeSpec(tuple(v["inv_freq"]), float(v.get("mscale", 1.0)))
            for k, v in d.get("ropes", {}).items()
        }
        d["layer_kinds"] = tuple(d.get("layer_kinds", ()))
        lr = d.get("long_rope")
        if lr is not None:
            d["long_rope"] = RopeSpec(tuple(lr["inv_freq"]), float(lr.get("mscale", 1.0)))
        return cls(**d)


@dataclass(frozen=True)
class TokenizerMeta:
    """What the runtime needs besides the weights: special tokens and the chat template.

    ``template_source`` says where the chat template came from: ``"gguf"`` (the file's own
    ``tokenizer.chat_template``) or the name of the built-in fallback used when it has none.
    """

    bos_token_id: int | None
    eos_token_ids: list[int]
    add_bos: bool
    chat_template: str | None
    bos_token: str
    eos_token: str
    tokenizer_model: str
    template_source: str = "gguf"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenizerMeta:
        return cls(**data)
