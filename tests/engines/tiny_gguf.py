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
}
