"""GGUF → repacked weights, model config and tokenizer metadata.

Quantized blocks are kept bit-exact: only their bytes move (into the interleaved layouts of
``quants.py``, which also holds ``repack``). Runs once per artifact;
agents never parse GGUF (opening a GGUF with a large vocabulary costs seconds).
What each architecture reads is in ``families/``.
"""

from __future__ import annotations

import numpy as np

from agentsim.engines.mlc.config import ModelConfig, RopeSpec, TokenizerMeta
from agentsim.engines.mlc.families import family_for
from agentsim.engines.mlc.families.llama import unpermute_rows
from agentsim.engines.mlc.gguf_file import GGUFModel
from agentsim.engines.mlc.prompt import GEMMA_TURNS
from agentsim.engines.mlc.quants import repack

__all__ = [
    "GGUFModel",
    "convert_weights",
    "read_config",
    "read_tokenizer_meta",
    "repack",
    "unpermute_rows",
]


def read_config(model: GGUFModel) -> ModelConfig:
    """Hyper-parameters from GGUF metadata; raises EngineUnavailable on what is unsupported."""
    cfg: ModelConfig = family_for(model.arch, model.path.name).read_config(model)
    return cfg


def rope_table(spec: RopeSpec) -> np.ndarray:
    """The ``rope_<kind>`` parameter: inverse frequencies, then the cos/sin multiplier."""
    return np.asarray([*spec.inv_freq, spec.mscale], dtype=np.float32)


def convert_weights(model: GGUFModel, cfg: ModelConfig) -> dict[str, np.ndarray]:
    """All parameters, named as the ``nn`` modules of ``families/`` name them.

    ``rope_global.long`` (LongRoPE only) is not a parameter: the runtime swaps it in for
    ``rope_global`` when its context needs the long factors.
    """
    fam = family_for(cfg.arch, model.path.name)
    out: dict[str, np.ndarray] = {}

    def put(prefix: str, mat: tuple[np.ndarray, str], cols: int) -> None:
        rows, quant = mat
        for suffix, arr in repack(rows, quant, cols).items():
            out[f"{prefix}.{suffix}"] = arr

    from agentsim.engines.mlc.families.common import rows_of

    h = cfg.hidden_size
    put("embed", rows_of(model, "token_embd.weight"), h)
    if not cfg.tied_embeddings:
        put("lm_head", rows_of(model, "output.weight"), h)
    out["norm"] = model.dense("output_norm.weight")
    for kind, spec in cfg.ropes.items():
        out[f"rope_{kind}"] = rope_table(spec)
    if cfg.long_rope is not None:
        out["rope_global.long"] = rope_table(cfg.long_rope)
    for i in range(cfg.num_layers):
        lw = fam.layer_weights(model, cfg, i)
        out.update(lw.dense)
        a, m = f"layers.{i}.attn", f"layers.{i}.mlp"
        mats, biases = lw.mats, lw.biases
        if "qkv" not in mats and cfg.fused_qkv:
            mats["qkv"] = (
                np.concatenate([mats.pop(p)[0] for p in "qkv"]),
                cfg.quants[f"layers.{i}.qkv"],
            )
            if biases:
                biases["qkv"] = np.concatenate([biases.pop(p) for p in "qkv"])
        for p in ("qkv", "q", "k", "v"):
            if p in mats:
                put(f"{a}.{p}", mats[p], h)
            if p in biases:
                out[f"{a}.{p}.bias"] = biases[p]
        put(f"{a}.o", mats["o"], cfg.num_heads * cfg.head_dim)
        if "gate_up" not in mats and cfg.fused_gate_up:
            gu = np.concatenate([mats.pop("gate")[0], mats.pop("up")[0]])
            mats["gate_up"] = (gu, cfg.quants[f"layers.{i}.gate_up"])
        for p in ("gate_up", "gate", "up"):
            if p in mats:
                put(f"{m}.{p}", mats[p], h)
        put(f"{m}.down", mats["down"], cfg.intermediate_size)
    return out


def read_tokenizer_meta(model: GGUFModel) -> TokenizerMeta:
    """Special tokens, BOS policy and chat template from ``tokenizer.*`` metadata.

    A Gemma file without a template (the base models) gets Gemma's turn format; that is
    recorded in ``template_source`` so that runs can report it.
    """
    tokens: list[str] = list(model.field("tokenizer.ggml.tokens", []))
    bos = model.field("tokenizer.ggml.bos_token_id")
    eos = model.field("tokenizer.ggml.eos_token_id")
    eos_ids = [int(eos)] if eos is not None else []
    eot = model.field("tokenizer.ggml.eot_token_id")
    if eot is not None and int(eot) not in eos_ids:
        eos_ids.append(int(eot))
    # Chat-turn end markers stop generation even when metadata names another eos.
    for marker in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "</s>", "<end_of_turn>", "<|end|>"):
        if marker in tokens and tokens.index(marker) not in eos_ids:
            eos_ids.append(tokens.index(marker))
    tok_model = str(model.field("tokenizer.ggml.model", "gpt2"))
    add_bos = model.field("tokenizer.ggml.add_bos_token")
    template = model.field("tokenizer.chat_template")
    source = "gguf"
    if template is None and model.arch.startswith("gemma"):
        template, source = GEMMA_TURNS, "gemma-turns (the GGUF has no chat template)"
    return TokenizerMeta(
        bos_token_id=int(bos) if bos is not None else None,
        eos_token_ids=eos_ids,
        add_bos=bool(add_bos) if add_bos is not None else tok_model == "llama",
        chat_template=template,
        bos_token=tokens[int(bos)] if bos is not None and int(bos) < len(tokens) else "",
        eos_token=tokens[eos_ids[0]] if eos_ids else "",
        tokenizer_model=tok_model,
        template_source=source
        if template is not None
        else "chatml (the GGUF has no chat template)",
    )
