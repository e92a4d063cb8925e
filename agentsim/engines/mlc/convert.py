"""GGUF → repacked weights, model config and tokenizer metadata.

Quantized blocks are kept bit-exact: only their bytes move (into the interleaved layouts of
``quants.py``, which also holds ``repack``). Runs once per artifact;
agents never parse GGUF (opening a 100 MB GGUF costs seconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agentsim.engines.base import EngineUnavailable
from agentsim.engines.mlc.config import (
    SUPPORTED_ARCHS,
    SUPPORTED_QUANTS,
    ModelConfig,
    TokenizerMeta,
)
from agentsim.engines.mlc.quants import BLOCK, GGUF_TO_KERNEL, gguf_rows
from agentsim.engines.mlc.quants import repack as repack


class GGUFModel:
    """An opened GGUF file: metadata fields and tensors by name."""

    def __init__(self, path: Path) -> None:
        import gguf

        self.path = path
        try:
            self.reader = gguf.GGUFReader(str(path))
        except Exception as e:
            raise EngineUnavailable(f"cannot read GGUF file {path}: {e}") from e
        self.tensors = {t.name: t for t in self.reader.tensors}

    def field(self, key: str, default: Any = None) -> Any:
        f = self.reader.fields.get(key)
        if f is None:
            return default
        return f.contents()

    @property
    def arch(self) -> str:
        return str(self.field("general.architecture", "?"))

    def qtype(self, name: str) -> str:
        return str(self.tensors[name].tensor_type.name)

    def dense(self, name: str) -> np.ndarray:
        """The tensor dequantised to float32 in its GGUF row order (for references/tests)."""
        import gguf

        t = self.tensors[name]
        arr = gguf.quants.dequantize(t.data, t.tensor_type)
        return np.asarray(arr, dtype=np.float32).reshape(tuple(reversed([int(x) for x in t.shape])))


def read_config(model: GGUFModel) -> ModelConfig:
    """Hyper-parameters from GGUF metadata; raises EngineUnavailable on what is unsupported."""
    arch = model.arch
    if arch not in SUPPORTED_ARCHS:
        raise EngineUnavailable(
            f"GGUF architecture {arch!r} in {model.path.name} is not supported by the mlc "
            f"engine; supported: {', '.join(SUPPORTED_ARCHS)}"
        )
    for name in model.tensors:
        qt = model.qtype(name)
        if qt not in SUPPORTED_QUANTS:
            raise EngineUnavailable(
                f"tensor {name} of {model.path.name} has quant type {qt}; the mlc engine "
                f"supports {', '.join(SUPPORTED_QUANTS)}"
            )

    def key(k: str, default: Any = None) -> Any:
        v = model.field(f"{arch}.{k}", default)
        if v is None:
            raise EngineUnavailable(f"GGUF {model.path.name} lacks metadata {arch}.{k}")
        return v

    scaling = model.field(f"{arch}.rope.scaling.type")
    if "rope_freqs.weight" in model.tensors or scaling not in (None, "none", "linear"):
        raise EngineUnavailable(
            f"{model.path.name} uses RoPE scaling ({scaling or 'rope_freqs'}), which the mlc "
            "engine does not implement; supported: plain RoPE"
        )
    if scaling == "linear" and float(model.field(f"{arch}.rope.scaling.factor", 1.0)) != 1.0:
        raise EngineUnavailable(f"{model.path.name} uses linear RoPE scaling; not supported")
    hidden = int(key("embedding_length"))
    heads = int(key("attention.head_count"))
    kv_heads = int(key("attention.head_count_kv", heads))
    head_dim = int(key("attention.key_length", hidden // heads))
    layers = int(key("block_count"))
    vocab = int(model.tensors["token_embd.weight"].shape[1])
    tied = "output.weight" not in model.tensors
    quants = {"embed": _kernel_quant(model, "token_embd.weight")}
    if not tied:
        quants["lm_head"] = _kernel_quant(model, "output.weight")
    fused_qkv = fused_gu = True
    for i in range(layers):
        qkv = {_kernel_quant(model, f"blk.{i}.attn_{p}.weight") for p in "qkv"}
        gu = {_kernel_quant(model, f"blk.{i}.ffn_{p}.weight") for p in ("gate", "up")}
        fused_qkv &= len(qkv) == 1
        fused_gu &= len(gu) == 1
    for i in range(layers):
        for ours, theirs in _LAYER_MATS:
            quants[f"layers.{i}.{ours}"] = _kernel_quant(model, f"blk.{i}.{theirs}.weight")
        if fused_qkv:
            quants[f"layers.{i}.qkv"] = quants[f"layers.{i}.q"]
        if fused_gu:
            quants[f"layers.{i}.gate_up"] = quants[f"layers.{i}.gate"]
    if hidden % BLOCK or int(key("feed_forward_length")) % BLOCK or (heads * head_dim) % BLOCK:
        raise EngineUnavailable(f"{model.path.name}: dimensions must be multiples of {BLOCK}")
    return ModelConfig(
        arch=arch,
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=int(key("feed_forward_length")),
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        rope_theta=float(key("rope.freq_base", 10000.0)),
        rms_eps=float(key("attention.layer_norm_rms_epsilon", 1e-5)),
        context_length=int(key("context_length", 2048)),
        qkv_bias="blk.0.attn_q.bias" in model.tensors,
        tied_embeddings=tied,
        quants=quants,
        fused_qkv=fused_qkv,
        fused_gate_up=fused_gu,
    )


_LAYER_MATS = (
    ("q", "attn_q"),
    ("k", "attn_k"),
    ("v", "attn_v"),
    ("o", "attn_output"),
    ("gate", "ffn_gate"),
    ("up", "ffn_up"),
    ("down", "ffn_down"),
)


def _kernel_quant(model: GGUFModel, name: str) -> str:
    return GGUF_TO_KERNEL[model.qtype(name)]


def _rows(model: GGUFModel, name: str) -> tuple[np.ndarray, str]:
    """(per-row raw data, kernel quant): blocks as bytes ``[rows, bytes]`` or floats ``[rows, cols]``."""
    t = model.tensors[name]
    return gguf_rows(t.data, t.tensor_type.name, tuple(int(x) for x in t.shape))


def unpermute_rows(rows: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's Q/K row permutation (interleaved RoPE pairs → rotate-half halves)."""
    head_dim = rows.shape[0] // n_head
    rest = rows.shape[1:]
    r = rows.reshape(n_head, head_dim // 2, 2, *rest)
    return np.ascontiguousarray(r.swapaxes(1, 2).reshape(rows.shape))


def convert_weights(model: GGUFModel, cfg: ModelConfig) -> dict[str, np.ndarray]:
    """All parameters, named as the ``nn`` modules of ``model.py`` name them."""
    out: dict[str, np.ndarray] = {}

    def put(prefix: str, rows: np.ndarray, quant: str, cols: int) -> None:
        for suffix, arr in repack(rows, quant, cols).items():
            out[f"{prefix}.{suffix}"] = arr

    h = cfg.hidden_size
    rows, quant = _rows(model, "token_embd.weight")
    put("embed", rows, quant, h)
    if not cfg.tied_embeddings:
        rows, quant = _rows(model, "output.weight")
        put("lm_head", rows, quant, h)
    out["norm"] = model.dense("output_norm.weight")
    for i in range(cfg.num_layers):
        b = f"blk.{i}"
        out[f"layers.{i}.attn_norm"] = model.dense(f"{b}.attn_norm.weight")
        out[f"layers.{i}.ffn_norm"] = model.dense(f"{b}.ffn_norm.weight")
        mats: dict[str, tuple[np.ndarray, str]] = {}
        for ours, theirs in _LAYER_MATS:
            mats[ours] = _rows(model, f"{b}.{theirs}.weight")
        biases: dict[str, np.ndarray] = {}
        if cfg.qkv_bias:
            for p in "qkv":
                biases[p] = model.dense(f"{b}.attn_{p}.bias").reshape(-1)
        if cfg.arch == "llama":
            # llama.cpp permutes Q/K rows for its interleaved RoPE; TVM's cache rotates halves.
            for p, heads in (("q", cfg.num_heads), ("k", cfg.num_kv_heads)):
                mats[p] = (unpermute_rows(mats[p][0], heads), mats[p][1])
                if p in biases:
                    biases[p] = unpermute_rows(biases[p][:, None], heads)[:, 0]
        if cfg.fused_qkv:
            qkv = np.concatenate([mats[p][0] for p in "qkv"], axis=0)
            put(f"layers.{i}.qkv", qkv, mats["q"][1], h)
            if cfg.qkv_bias:
                out[f"layers.{i}.qkv.bias"] = np.concatenate([biases[p] for p in "qkv"])
        else:
            for p in "qkv":
                put(f"layers.{i}.{p}", mats[p][0], mats[p][1], h)
                if cfg.qkv_bias:
                    out[f"layers.{i}.{p}.bias"] = biases[p]
        put(f"layers.{i}.o", mats["o"][0], mats["o"][1], cfg.num_heads * cfg.head_dim)
        if cfg.fused_gate_up:
            gu = np.concatenate([mats["gate"][0], mats["up"][0]], axis=0)
            put(f"layers.{i}.gate_up", gu, mats["gate"][1], h)
        else:
            for p in ("gate", "up"):
                put(f"layers.{i}.{p}", mats[p][0], mats[p][1], h)
        put(f"layers.{i}.down", mats["down"][0], mats["down"][1], cfg.intermediate_size)
    return out


def read_tokenizer_meta(model: GGUFModel) -> TokenizerMeta:
    """Special tokens, BOS policy and chat template from ``tokenizer.*`` metadata."""
    tokens: list[str] = list(model.field("tokenizer.ggml.tokens", []))
    bos = model.field("tokenizer.ggml.bos_token_id")
    eos = model.field("tokenizer.ggml.eos_token_id")
    eos_ids = [int(eos)] if eos is not None else []
    eot = model.field("tokenizer.ggml.eot_token_id")
    if eot is not None and int(eot) not in eos_ids:
        eos_ids.append(int(eot))
    # ChatML-style end markers stop generation even when metadata names another eos.
    for marker in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "</s>"):
        if marker in tokens and tokens.index(marker) not in eos_ids:
            eos_ids.append(tokens.index(marker))
    tok_model = str(model.field("tokenizer.ggml.model", "gpt2"))
    add_bos = model.field("tokenizer.ggml.add_bos_token")
    return TokenizerMeta(
        bos_token_id=int(bos) if bos is not None else None,
        eos_token_ids=eos_ids,
        add_bos=bool(add_bos) if add_bos is not None else tok_model == "llama",
        chat_template=model.field("tokenizer.chat_template"),
        bos_token=tokens[int(bos)] if bos is not None and int(bos) < len(tokens) else "",
        eos_token=tokens[eos_ids[0]] if eos_ids else "",
        tokenizer_model=tok_model,
    )
