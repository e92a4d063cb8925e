"""The model description shared by the converter, the compiler, the runtime and the reference.

Kept free of TVM imports: agents read it at start-up without loading the compiler.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from agentsim.engines.mlc.quants import SUPPORTED_GGUF_TYPES

#: bump when the artifact format or the generated code changes: it is part of the cache key.
ENGINE_SOURCE_VERSION = "9"

#: tokens per page of the paged KV cache (the attention kernels are built for it).
PAGE_SIZE = 16

SUPPORTED_ARCHS = ("llama", "qwen2")
SUPPORTED_QUANTS = SUPPORTED_GGUF_TYPES


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a Llama-family decoder, as read from GGUF metadata.

    ``quants`` maps each matrix (``embed``, ``lm_head``, ``layers.N.qkv`` ...) to the kernel
    layout its weights use (``quants.FORMATS``: ``q4_k``, ``q8_0``, ``f16`` ...). ``fused_qkv`` and
    ``fused_gate_up`` say whether those projections share one matrix (same quant type).
    """

    arch: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float
    rms_eps: float
    context_length: int
    qkv_bias: bool
    tied_embeddings: bool
    quants: dict[str, str] = field(default_factory=dict)
    fused_qkv: bool = True
    fused_gate_up: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**data)


@dataclass(frozen=True)
class TokenizerMeta:
    """What the runtime needs besides the weights: special tokens and the chat template."""

    bos_token_id: int | None
    eos_token_ids: list[int]
    add_bos: bool
    chat_template: str | None
    bos_token: str
    eos_token: str
    tokenizer_model: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenizerMeta:
        return cls(**data)
