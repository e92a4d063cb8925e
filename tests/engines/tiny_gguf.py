"""Tiny random GGUF models written with ``gguf.GGUFWriter``, as llama.cpp's converter would.

Q/K rows of ``llama`` models are stored permuted (llama.cpp layout), exactly as real files are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


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
    """Specials, the 256 bytes, then merged tokens up to ``size``; returns tokens/types/merges."""
    tokens = list(SPECIALS)
    types = [3] * len(SPECIALS)
    bytes_ = _byte_chars()
    tokens += bytes_
    types += [1] * 256
    merges: list[str] = []
    letters = [c for c in "etaoinshrdlu"]
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


@dataclass
class TinySpec:
    arch: str = "llama"
    layers: int = 2
    hidden: int = 128
    ffn: int = 256
    heads: int = 4
    kv_heads: int = 2
    vocab: int = 320
    context: int = 512
    quant: str = "Q4_1"
    embed_quant: str = "Q8_0"
    tied: bool = True
    head_quant: str = "F16"
    overrides: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    #: fill every quantized tensor with random blocks (always so for types gguf cannot quantize)
    random_blocks: bool = False


#: the types ``gguf.quants.quantize`` implements; others get ``random_blocks``.
QUANTIZABLE = ("F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")


def write_tiny_gguf(path: Path, spec: TinySpec) -> Path:
    rng = np.random.default_rng(spec.seed)
    w = gguf.GGUFWriter(str(path), spec.arch)
    w.add_name("tiny")
    w.add_block_count(spec.layers)
    w.add_context_length(spec.context)
    w.add_embedding_length(spec.hidden)
    w.add_feed_forward_length(spec.ffn)
    w.add_head_count(spec.heads)
    w.add_head_count_kv(spec.kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    tokens, types, merges = vocab(spec.vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)

    def tensor(name: str, shape: tuple[int, ...], qtype: str, scale: float = 0.08) -> None:
        arr = (rng.standard_normal(shape) * scale).astype(np.float32)
        qtype = spec.overrides.get(name, qtype)
        if name.endswith("norm.weight"):
            arr = (1.0 + rng.standard_normal(shape) * 0.1).astype(np.float32)
        if qtype == "F32":
            w.add_tensor(name, arr)
            return
        qt = getattr(gguf.GGMLQuantizationType, qtype)
        if qtype in F16_FIELDS and (spec.random_blocks or qtype not in QUANTIZABLE):
            data = random_blocks(qtype, shape[0], shape[1], rng, scale)
        else:
            data = gguf.quants.quantize(arr, qt)
        w.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qt)

    d = spec.hidden // spec.heads
    tensor("token_embd.weight", (spec.vocab, spec.hidden), spec.embed_quant, 0.5)
    tensor("output_norm.weight", (spec.hidden,), "F32")
    if not spec.tied:
        tensor("output.weight", (spec.vocab, spec.hidden), spec.head_quant)
    for i in range(spec.layers):
        b = f"blk.{i}"
        tensor(f"{b}.attn_norm.weight", (spec.hidden,), "F32")
        tensor(f"{b}.attn_q.weight", (spec.heads * d, spec.hidden), spec.quant)
        tensor(f"{b}.attn_k.weight", (spec.kv_heads * d, spec.hidden), spec.quant)
        tensor(f"{b}.attn_v.weight", (spec.kv_heads * d, spec.hidden), spec.quant)
        if spec.arch == "qwen2":
            tensor(f"{b}.attn_q.bias", (spec.heads * d,), "F32", 0.1)
            tensor(f"{b}.attn_k.bias", (spec.kv_heads * d,), "F32", 0.1)
            tensor(f"{b}.attn_v.bias", (spec.kv_heads * d,), "F32", 0.1)
        tensor(f"{b}.attn_output.weight", (spec.hidden, spec.heads * d), spec.quant)
        tensor(f"{b}.ffn_norm.weight", (spec.hidden,), "F32")
        tensor(f"{b}.ffn_gate.weight", (spec.ffn, spec.hidden), spec.quant)
        tensor(f"{b}.ffn_up.weight", (spec.ffn, spec.hidden), spec.quant)
        tensor(f"{b}.ffn_down.weight", (spec.hidden, spec.ffn), spec.quant)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


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
