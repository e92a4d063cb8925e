"""The tiny model of each supported architecture the family tests compile.

Each "mixed" model cycles every weight type the kernels read over its matrices, so one
compile per architecture covers architecture x type. Windows and RoPE switch points are
small so that the short test sequences cross them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tiny_gguf import ALL_TYPES, TinySpec

#: a mixed model: wide enough for K-quant blocks, layers enough for every type
MIXED = {"hidden": 256, "ffn": 512, "layers": 3, "mix": ALL_TYPES}

LONGROPE_META = {"rope.scaling.attn_factor": 1.19, "rope.scaling.original_context_length": 256}


@dataclass(frozen=True)
class Case:
    spec: TinySpec
    tokens: int = 30
    prefill: int = 20
    #: runtime KV capacity (LongRoPE picks its factors by it)
    context: int | None = None
    notes: dict[str, str] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "llama-mixed": Case(TinySpec(**MIXED, tied=False, head_quant="Q8_0", seed=20)),
    "llama3-rope-freqs": Case(TinySpec(quant="Q8_0", rope_freqs=True, rope_theta=5e5, seed=21)),
    "llama-yarn": Case(
        TinySpec(
            quant="Q4_0",
            meta={
                "rope.scaling.type": "yarn",
                "rope.scaling.factor": 4.0,
                "rope.scaling.original_context_length": 64,
            },
            seed=22,
        )
    ),
    "llama-linear": Case(
        TinySpec(
            quant="F16", meta={"rope.scaling.type": "linear", "rope.scaling.factor": 2.0}, seed=23
        )
    ),
    "mistral-sliding": Case(TinySpec(quant="Q4_1", sliding_window=12, seed=24), tokens=40),
    "qwen2-mixed": Case(TinySpec(arch="qwen2", **MIXED, seed=25)),
    "qwen3-mixed": Case(TinySpec(arch="qwen3", head_dim=64, **MIXED, seed=26)),
    "gemma-mixed": Case(TinySpec(arch="gemma", tokenizer="llama", vocab=400, **MIXED, seed=27)),
    "gemma2-sliding": Case(
        TinySpec(
            arch="gemma2",
            head_dim=64,
            sliding_window=24,
            tokenizer="llama",
            vocab=400,
            **MIXED,
            # a cap strong enough to matter with tiny random weights
            meta={"final_logit_softcapping": 30.0, "attn_logit_softcapping": 2.0},
            seed=28,
        ),
        tokens=60,
        prefill=30,
    ),
    "gemma3-sliding": Case(
        TinySpec(
            arch="gemma3",
            layers=6,
            hidden=256,
            ffn=512,
            heads=2,
            kv_heads=1,
            head_dim=256,
            sliding_window=20,
            rope_theta=1e6,
            tokenizer="llama",
            vocab=400,
            mix=ALL_TYPES,
            seed=29,
        ),
        tokens=70,
        prefill=45,
    ),
    "phi3-longrope": Case(
        TinySpec(
            arch="phi3",
            tied=False,
            longrope=True,
            rope_dims=32,
            meta=LONGROPE_META,
            tokenizer="llama",
            vocab=400,
            **{**MIXED, "layers": 4},
            seed=30,
        ),
        context=512,
    ),
    "phi3-split-qkv": Case(
        TinySpec(
            arch="phi3",
            fused_qkv=False,
            tokenizer="llama",
            vocab=400,
            quant="Q8_0",
            seed=31,
        )
    ),
}
