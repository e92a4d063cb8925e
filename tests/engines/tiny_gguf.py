"""Tiny random GGUF models written with ``gguf.GGUFWriter``, as llama.cpp's converter would.

Tensor names and metadata keys are the real ones of each architecture. Q/K rows of ``llama``
models are stored permuted (llama.cpp layout), exactly as real files are; Gemma norm weights
are stored with the ``+1`` already added, as the converter does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
#: every type the kernels read, cycled over the matrices of a "mixed" model (K-quants need
#: 256-column matrices: mixed models use hidden 256)
ALL_TYPES = [
    "Q4_K",
    "Q6_K",
    "Q5_0",
    "Q8_0",
    "Q4_1",
    "Q4_0",
    "Q5_1",
    "Q2_K",
    "Q3_K",
    "Q5_K",
    "IQ4_NL",
    "IQ4_XS",
    "F16",
    "F32",
    "BF16",
]
#: the types ``gguf.quants.quantize`` implements; others get ``random_blocks``.
QUANTIZABLE = ("F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")


def _byte_chars() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def vocab(size: int) -> tuple[list[str], list[int], list[str]]:
    """Byte-level BPE: specials, the 256 bytes, then merged tokens up to ``size``."""
    tokens = list(SPECIALS)
    types = [3] * len(SPECIALS)
    tokens += _byte_chars()
    types += [1] * 256
    merges: list[str] = []
    letters = list("etaoinshrdlu")
    pairs = [("Ġ", c) for c in letters] + [(a, b) for a in letters for b in letters]
    for a, b in pairs:
        if len(tokens) >= size:
            break
        tokens.append(a + b)
        types.append(1)
        merges.append(f"{a} {b}")
    while len(tokens) < size:
        tokens.append(f"<unused{len(tokens)}>")
        types.append(4)
    return tokens, types, merges


SPM_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "he",
    "for",
    "it",
    "with",
    "as",
    "his",
    "on",
    "be",
    "at",
    "by",
    "had",
    "are",
    "but",
    "from",
    "or",
]


def spm_vocab(size: int) -> tuple[list[str], list[float], list[int]]:
    """A SentencePiece (``llama`` model) vocabulary: controls, 256 byte pieces, then pieces
    built from letters and common words with decreasing scores (merge priorities)."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [2, 3, 3]
    scores = [0.0, 0.0, 0.0]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(6)
        scores.append(0.0)
    pieces: list[str] = ["▁", *"etaoinshrdlucmfwypvbgk"]
    for w in SPM_WORDS:
        for i in range(2, len(w) + 1):
            pieces += [w[:i], "▁" + w[:i]]
    pieces += ["▁" + c for c in "etaoinshrdlucmfwypvbgk"]
    seen: set[str] = set(tokens)
    for p in pieces:
        if len(tokens) >= size:
            break
        if p in seen:
            continue
        seen.add(p)
        tokens.append(p)
        types.append(1)
        scores.append(-float(len(tokens)))
    while len(tokens) < size:
        tokens.append(f"<unused{len(tokens)}>")
        types.append(5)
        scores.append(-1e4)
    return tokens, scores, types


@dataclass
class TinySpec:
    arch: str = "llama"
    layers: int = 2
    hidden: int = 128
    ffn: int = 256
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 0
    vocab: int = 320
    context: int = 512
    quant: str = "Q4_1"
    embed_quant: str = "Q8_0"
    tied: bool = True
    head_quant: str = "F16"
    overrides: dict[str, str] = field(default_factory=dict)
    #: cycle these types over the layer matrices (overrides ``quant``)
    mix: list[str] = field(default_factory=list)
    seed: int = 0
    rope_theta: float = 10000.0
    #: extra ``<arch>.<key>`` metadata
    meta: dict[str, Any] = field(default_factory=dict)
    rope_freqs: bool = False
    longrope: bool = False
    rope_dims: int = 0
    sliding_window: int = 0
    tokenizer: str = "gpt2"
    fused_qkv: bool = True
    #: fill every quantized tensor with random blocks (always so for types gguf cannot quantize)
    random_blocks: bool = False

    @property
    def dim(self) -> int:
        return self.head_dim or self.hidden // self.heads


def _add_meta(w: gguf.GGUFWriter, key: str, value: Any) -> None:
    if isinstance(value, bool):
        w.add_bool(key, value)
    elif isinstance(value, int):
        w.add_uint32(key, value)
    elif isinstance(value, float):
        w.add_float32(key, value)
    elif isinstance(value, str):
        w.add_string(key, value)
    else:
        w.add_array(key, list(value))


def write_tiny_gguf(path: Path, spec: TinySpec) -> Path:
    rng = np.random.default_rng(spec.seed)
    arch = spec.arch
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny")
    w.add_block_count(spec.layers)
    w.add_context_length(spec.context)
    w.add_embedding_length(spec.hidden)
    w.add_feed_forward_length(spec.ffn)
    w.add_head_count(spec.heads)
    w.add_head_count_kv(spec.kv_heads)
    if spec.head_dim:
        w.add_key_length(spec.head_dim)
        w.add_value_length(spec.head_dim)
    w.add_rope_freq_base(spec.rope_theta)
    w.add_layer_norm_rms_eps(1e-6 if arch.startswith("gemma") else 1e-5)
    if spec.rope_dims:
        w.add_rope_dimension_count(spec.rope_dims)
    if spec.sliding_window:
        w.add_sliding_window(spec.sliding_window)
    for key, value in spec.meta.items():
        _add_meta(w, f"{arch}.{key}", value)
    _write_tokenizer(w, spec)
    tensors = _tensor_list(spec)
    mixed = iter(spec.mix * 64) if spec.mix else None
    for name, shape, qtype, kind in tensors:
        if mixed is not None and kind == "mat":
            qtype = next(mixed)
        qtype = spec.overrides.get(name, qtype)
        _add_tensor(w, rng, name, shape, qtype, kind, spec)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _write_tokenizer(w: gguf.GGUFWriter, spec: TinySpec) -> None:
    if spec.tokenizer == "llama":
        tokens, scores, types = spm_vocab(spec.vocab)
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
        w.add_add_space_prefix(not spec.arch.startswith("gemma"))
        return
    tokens, ttypes, merges = vocab(spec.vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(ttypes)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)


def _tensor_list(spec: TinySpec) -> list[tuple[str, tuple[int, ...], str, str]]:
    """(name, row-major shape, default type, kind) of every tensor the architecture has."""
    h, f, d, arch = spec.hidden, spec.ffn, spec.dim, spec.arch
    q, kv = spec.heads * d, spec.kv_heads * d
    out: list[tuple[str, tuple[int, ...], str, str]] = [
        ("token_embd.weight", (spec.vocab, h), spec.embed_quant, "embed"),
        ("output_norm.weight", (h,), "F32", "norm"),
    ]
    if not spec.tied:
        out.append(("output.weight", (spec.vocab, h), spec.head_quant, "head"))
    rot = spec.rope_dims or d
    if spec.rope_freqs:
        out.append(("rope_freqs.weight", (rot // 2,), "F32", "factors"))
    if spec.longrope:
        out.append(("rope_factors_long.weight", (rot // 2,), "F32", "factors"))
        out.append(("rope_factors_short.weight", (rot // 2,), "F32", "factors"))
    for i in range(spec.layers):
        b = f"blk.{i}"
        out.append((f"{b}.attn_norm.weight", (h,), "F32", "norm"))
        if arch == "phi3" and spec.fused_qkv:
            out.append((f"{b}.attn_qkv.weight", (q + 2 * kv, h), spec.quant, "mat"))
        else:
            out.append((f"{b}.attn_q.weight", (q, h), spec.quant, "mat"))
            out.append((f"{b}.attn_k.weight", (kv, h), spec.quant, "mat"))
            out.append((f"{b}.attn_v.weight", (kv, h), spec.quant, "mat"))
        if arch == "qwen2":
            out.append((f"{b}.attn_q.bias", (q,), "F32", "bias"))
            out.append((f"{b}.attn_k.bias", (kv,), "F32", "bias"))
            out.append((f"{b}.attn_v.bias", (kv,), "F32", "bias"))
        if arch in ("qwen3", "gemma3"):
            out.append((f"{b}.attn_q_norm.weight", (d,), "F32", "norm"))
            out.append((f"{b}.attn_k_norm.weight", (d,), "F32", "norm"))
        out.append((f"{b}.attn_output.weight", (h, q), spec.quant, "mat"))
        if arch in ("gemma2", "gemma3"):
            out.append((f"{b}.post_attention_norm.weight", (h,), "F32", "norm"))
        out.append((f"{b}.ffn_norm.weight", (h,), "F32", "norm"))
        if arch == "phi3":
            out.append((f"{b}.ffn_up.weight", (2 * f, h), spec.quant, "mat"))
        else:
            out.append((f"{b}.ffn_gate.weight", (f, h), spec.quant, "mat"))
            out.append((f"{b}.ffn_up.weight", (f, h), spec.quant, "mat"))
        out.append((f"{b}.ffn_down.weight", (h, f), spec.quant, "mat"))
        if arch in ("gemma2", "gemma3"):
            out.append((f"{b}.post_ffw_norm.weight", (h,), "F32", "norm"))
    return out


def _add_tensor(
    w: gguf.GGUFWriter,
    rng: np.random.Generator,
    name: str,
    shape: tuple[int, ...],
    qtype: str,
    kind: str,
    spec: TinySpec,
) -> None:
    scale = {"embed": 0.5, "bias": 0.1}.get(kind, 0.08)
    arr = (rng.standard_normal(shape) * scale).astype(np.float32)
    if kind == "norm":
        arr = (1.0 + rng.standard_normal(shape) * 0.1).astype(np.float32)
    if kind == "factors":
        arr = rng.uniform(1.0, 4.0, shape).astype(np.float32)
    if qtype == "F32":
        w.add_tensor(name, arr)
        return
    qt = getattr(gguf.GGMLQuantizationType, qtype)
    if qtype in F16_FIELDS and (spec.random_blocks or qtype not in QUANTIZABLE):
        data = random_blocks(qtype, shape[0], shape[1], rng, scale)
    else:
        data = gguf.quants.quantize(arr, qt)
    w.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qt)


#: the tiny models the tests compile: one per family and weight format.
TINY: dict[str, TinySpec] = {
    "llama-q4_1-tied": TinySpec(),
    "qwen2-q8_0-bias": TinySpec(
        arch="qwen2", quant="Q8_0", embed_quant="F16", tied=False, head_quant="F16", seed=1
    ),
    "llama-q4_0-mixed": TinySpec(
        quant="Q4_0",
        embed_quant="F32",
        tied=False,
        head_quant="Q8_0",
        overrides={"blk.0.attn_v.weight": "Q8_0", "blk.1.ffn_up.weight": "F16"},
        seed=2,
    ),
    # every block type in one model, scale/offset fields random: Q4_K..Q2_K, IQ4, Q5_0/1, F16
    "llama-kquants-mixed": TinySpec(
        hidden=256,
        ffn=512,
        quant="Q4_K",
        embed_quant="Q6_K",
        random_blocks=True,
        overrides={
            "blk.0.attn_v.weight": "Q6_K",
            "blk.0.attn_output.weight": "Q5_K",
            "blk.0.ffn_gate.weight": "Q3_K",
            "blk.0.ffn_up.weight": "Q2_K",
            "blk.0.ffn_down.weight": "IQ4_XS",
            "blk.1.attn_q.weight": "Q5_0",
            "blk.1.attn_k.weight": "Q5_1",
            "blk.1.attn_v.weight": "IQ4_NL",
            "blk.1.attn_output.weight": "Q8_0",
            "blk.1.ffn_gate.weight": "Q4_0",
            "blk.1.ffn_up.weight": "F16",
            "blk.1.ffn_down.weight": "Q6_K",
        },
        seed=5,
    ),
    # what llama.cpp's Q4_K_M makes of a small model (Gemma 3 270M): the hidden size is not
    # a multiple of 256, so most matrices fall back to Q5_0; FFN-down (cols 768) is K-quant.
    # The vocabulary (333 rows) is not a multiple of 2: one row per interleaved group.
    "llama-q4_k_m-small": TinySpec(
        hidden=320,
        ffn=768,
        heads=5,
        kv_heads=1,
        vocab=333,
        quant="Q5_0",
        embed_quant="Q8_0",
        random_blocks=True,
        overrides={"blk.0.ffn_down.weight": "Q6_K", "blk.1.ffn_down.weight": "Q4_K"},
        seed=6,
    ),
}


#: byte offsets of the f16 scale fields in one block (llama.cpp's ggml-common.h).
F16_FIELDS: dict[str, tuple[int, ...]] = {
    "Q4_0": (0,),
    "Q4_1": (0, 2),
    "Q5_0": (0,),
    "Q5_1": (0, 2),
    "Q8_0": (0,),
    "IQ4_NL": (0,),
    "Q2_K": (80, 82),
    "Q3_K": (108,),
    "Q4_K": (0, 2),
    "Q5_K": (0, 2),
    "Q6_K": (208,),
    "IQ4_XS": (0,),
    "IQ2_XXS": (0,),  # not supported by the mlc engine: for the refusal test
}


def random_blocks(
    qtype: str, rows: int, cols: int, rng: np.random.Generator, std: float = 0.08
) -> np.ndarray:
    """Random GGUF blocks ``uint8[rows, bytes]`` of ``qtype`` with finite f16 scales.

    Every bit pattern of the quants is a valid block; only the f16 fields need care. They
    are set so that the weights (as the ``gguf`` package dequantises them) have mean ~0
    and standard deviation ~``std``. Works for types ``gguf`` cannot quantize (K-quants).
    """
    qt = getattr(gguf.GGMLQuantizationType, qtype)
    bsize, tsize = gguf.GGML_QUANT_SIZES[qt]
    nb = rows * cols // bsize
    raw = rng.integers(0, 256, (nb, tsize), dtype=np.uint8)
    offs = F16_FIELDS[qtype]
    jitter = rng.uniform(0.5, 1.5, (nb, len(offs)))

    def fill(mult: list[float]) -> np.ndarray:
        b = raw.copy()
        for j, off in enumerate(offs):
            vals = (jitter[:, j] * mult[j]).astype(np.float16)
            b[:, off : off + 2] = vals.view(np.uint8).reshape(nb, 2)
        return b

    def weights(mult: list[float]) -> np.ndarray:
        return np.asarray(gguf.quants.dequantize(fill(mult), qt), np.float64)

    mult = [1.0] * len(offs)
    if len(offs) == 2:  # scale and offset: pick the offset's factor to centre the weights
        a, b = weights([1.0, 0.0]), weights([0.0, 1.0])
        mult[1] = -float(a.mean()) / float(b.mean()) if b.mean() != 0 else 0.0
    k = std / float(weights(mult).std())
    return fill([m * k for m in mult]).reshape(rows, -1)
