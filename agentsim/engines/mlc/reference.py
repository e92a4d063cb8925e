"""A numpy forward pass of a GGUF model, written the way llama.cpp reads the file.

Independent of the compiled path on purpose: it reads the metadata itself, dequantises every
tensor with the ``gguf`` package's own dequantisers, keeps the GGUF row order (so it checks
the Q/K un-permutation and the repacking), and computes RoPE as ggml does, position by
position (adjacent pairs for ``llama``, halves otherwise; YaRN ramp, frequency factors,
LongRoPE long/short choice by context). Every supported architecture is covered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentsim.engines.mlc.gguf_file import GGUFModel

_NEOX = ("qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3")


@dataclass
class _HParams:
    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_rot: int
    eps: float
    n_ctx_train: int
    freq_base: float
    freq_scale: float
    ext_factor: float
    attn_factor: float
    n_ctx_orig: int
    beta_fast: float
    beta_slow: float
    is_swa: list[bool]
    n_swa: int
    base_swa: float
    scale_swa: float
    kq_scale: float
    attn_softcap: float
    final_softcap: float
    embed_scale: float


def _hparams(m: GGUFModel) -> _HParams:
    arch = m.arch

    def k(key: str, default: Any = None) -> Any:
        return m.field(f"{arch}.{key}", default)

    n_layer, n_embd = int(k("block_count")), int(k("embedding_length"))
    n_head = int(k("attention.head_count"))
    head_dim = int(k("attention.key_length", n_embd // n_head))
    ctx = int(k("context_length", 2048))
    scaling = str(k("rope.scaling.type", "linear"))
    factor = float(k("rope.scaling.factor", 0.0) or k("rope.scale_linear", 0.0))
    freq_scale = 1.0 if not factor or scaling == "none" else 1.0 / factor
    ext = float(k("rope.scaling.yarn_ext_factor", -1.0))
    ext = (1.0 if scaling == "yarn" else 0.0) if ext < 0 else ext
    attn = float(k("rope.scaling.yarn_attn_factor", 1.0))
    if ext:
        f = 1.0 / freq_scale

        def ms(s: float, mm: float) -> float:
            return 1.0 if s <= 1 else 0.1 * mm * math.log(s) + 1.0

        log_mul = float(k("rope.scaling.yarn_log_multiplier", 0.0))
        attn = ms(f, 1.0) / ms(f, log_mul) if log_mul else ms(f, 1.0)
        attn *= 1.0 / (1.0 + 0.1 * math.log(f))
    attn *= float(k("rope.scaling.attn_factor", 1.0))
    base = float(k("rope.freq_base", 10000.0))
    n_swa, pattern, base_swa, scale_swa = 0, 0, 10000.0, 1.0
    if arch == "gemma2":
        n_swa, pattern, base_swa, scale_swa = (
            int(k("attention.sliding_window", 4096)),
            2,
            base,
            freq_scale,
        )
    elif arch == "gemma3":
        n_swa, pattern = int(k("attention.sliding_window", 0) or 0), 6
    elif arch == "llama":  # the engine's choice for Mistral-style files (llama.cpp ignores it)
        w = int(k("attention.sliding_window", 0) or 0)
        n_swa, pattern = (w, 0) if 0 < w < ctx else (0, 0)
    base_swa = float(k("rope.freq_base_swa", base_swa))
    pat = k("attention.sliding_window_pattern", pattern)
    if n_swa <= 0:
        is_swa = [False] * n_layer
    elif isinstance(pat, list):
        is_swa = [bool(x) for x in pat]
    else:
        p = int(pat)
        is_swa = [p == 0 or il % p < p - 1 for il in range(n_layer)]
    big = (arch, n_layer) in (("gemma2", 46), ("gemma3", 62))
    kq = (n_embd / n_head) ** -0.5 if big else head_dim**-0.5
    soft = float(k("attn_logit_softcapping", 50.0)) if arch == "gemma2" else 0.0
    final = float(k("final_logit_softcapping", 30.0 if arch == "gemma2" else 0.0))
    return _HParams(
        arch=arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=int(k("attention.head_count_kv", n_head)),
        head_dim=head_dim,
        n_rot=int(k("rope.dimension_count", head_dim)),
        eps=float(k("attention.layer_norm_rms_epsilon", 1e-5)),
        n_ctx_train=ctx,
        freq_base=base,
        freq_scale=freq_scale,
        ext_factor=ext,
        attn_factor=attn,
        n_ctx_orig=int(k("rope.scaling.original_context_length", ctx)),
        beta_fast=float(k("rope.scaling.yarn_beta_fast", 32.0)),
        beta_slow=float(k("rope.scaling.yarn_beta_slow", 1.0)),
        is_swa=is_swa,
        n_swa=n_swa,
        base_swa=base_swa,
        scale_swa=scale_swa,
        kq_scale=kq,
        attn_softcap=soft,
        final_softcap=final,
        embed_scale=math.sqrt(n_embd) if arch.startswith("gemma") else 1.0,
    )


class ReferenceModel:
    """Full-sequence float32 forward; ``logits(ids)`` returns logits at every position.

    Args:
        model: the opened GGUF file.
        context: KV capacity the compared engine runs with (picks LongRoPE's factors).
        attn_softcap: apply Gemma 2's attention soft-capping (llama.cpp does).
    """

    def __init__(
        self, model: GGUFModel, context: int | None = None, *, attn_softcap: bool = True
    ) -> None:
        self.hp = hp = _hparams(model)
        self.w = {n: model.dense(n) for n in model.tensors}
        self.context = context or hp.n_ctx_train
        self.use_softcap = attn_softcap
        factors = self.w.get("rope_freqs.weight")
        if "rope_factors_long.weight" in self.w:
            kind = "long" if self.context > hp.n_ctx_orig else "short"
            factors = self.w[f"rope_factors_{kind}.weight"]
        self.factors = None if factors is None else factors.reshape(-1).astype(np.float64)

    def _rope(self, x: np.ndarray, pos: np.ndarray, swa: bool) -> np.ndarray:
        """ggml_rope_ext on x: [tokens, heads, head_dim]."""
        hp = self.hp
        n_dims = hp.n_rot
        base = hp.base_swa if swa else hp.freq_base
        scale = hp.scale_swa if swa else hp.freq_scale
        i0 = np.arange(0, n_dims, 2, dtype=np.float64)
        extrap = pos[:, None].astype(np.float64) * base ** (-i0 / n_dims)[None, :]
        if self.factors is not None and not swa:
            extrap = extrap / self.factors[None, :]
        theta, mscale = extrap * scale, hp.attn_factor
        if hp.ext_factor:

            def corr(rot: float) -> float:
                return n_dims * math.log(hp.n_ctx_orig / (rot * 2 * math.pi)) / (2 * math.log(base))

            lo = max(0.0, math.floor(corr(hp.beta_fast)))
            hi = min(n_dims - 1.0, math.ceil(corr(hp.beta_slow)))
            mix = (1 - np.clip((i0 / 2 - lo) / max(0.001, hi - lo), 0, 1)) * hp.ext_factor
            theta = theta * (1 - mix) + extrap * mix
            mscale *= 1.0 + 0.1 * math.log(1.0 / scale)
        cos = (np.cos(theta) * mscale).astype(np.float32)[:, None, :]
        sin = (np.sin(theta) * mscale).astype(np.float32)[:, None, :]
        out = x.copy()
        if hp.arch in _NEOX:
            a, b = x[..., : n_dims // 2], x[..., n_dims // 2 : n_dims]
            out[..., : n_dims // 2] = a * cos - b * sin
            out[..., n_dims // 2 : n_dims] = a * sin + b * cos
        else:  # GGML_ROPE_TYPE_NORM: adjacent pairs
            a, b = x[..., 0:n_dims:2], x[..., 1:n_dims:2]
            out[..., 0:n_dims:2] = a * cos - b * sin
            out[..., 1:n_dims:2] = a * sin + b * cos
        return out

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        ms = np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32)
        out: np.ndarray = (x / np.sqrt(ms + np.float32(self.hp.eps))) * self.w[name]
        return out

    def _lin(self, x: np.ndarray, name: str) -> np.ndarray:
        y: np.ndarray = x @ self.w[f"{name}.weight"].T
        bias = self.w.get(f"{name}.bias")
        return y + bias if bias is not None else y

    def _qkv(self, x: np.ndarray, b: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hp = self.hp
        if f"{b}.attn_qkv.weight" in self.w:
            qkv = self._lin(x, f"{b}.attn_qkv")
            nq, nk = hp.n_head * hp.head_dim, hp.n_head_kv * hp.head_dim
            return qkv[:, :nq], qkv[:, nq : nq + nk], qkv[:, nq + nk :]
        return self._lin(x, f"{b}.attn_q"), self._lin(x, f"{b}.attn_k"), self._lin(x, f"{b}.attn_v")

    def _attention(self, x: np.ndarray, il: int, pos: np.ndarray) -> np.ndarray:
        hp, b, n, d = self.hp, f"blk.{il}", x.shape[0], self.hp.head_dim
        q, k, v = self._qkv(x, b)
        q, k = q.reshape(n, hp.n_head, d), k.reshape(n, hp.n_head_kv, d)
        v = v.reshape(n, hp.n_head_kv, d)
        if f"{b}.attn_q_norm.weight" in self.w:
            q, k = (
                self._norm(q, f"{b}.attn_q_norm.weight"),
                self._norm(k, f"{b}.attn_k_norm.weight"),
            )
        swa = hp.is_swa[il]
        q, k = self._rope(q, pos, swa), self._rope(k, pos, swa)
        group = hp.n_head // hp.n_head_kv
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
        s = np.einsum("qhd,khd->hqk", q, k) * np.float32(hp.kq_scale)
        if hp.attn_softcap and self.use_softcap:
            s = np.tanh(s / np.float32(hp.attn_softcap)) * np.float32(hp.attn_softcap)
        dist = pos[:, None] - pos[None, :]
        masked = (dist < 0) | ((dist >= hp.n_swa) if swa else False)
        s = np.where(masked[None], np.float32(-np.inf), s)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        p = s / s.sum(axis=-1, keepdims=True)
        o = np.einsum("hqk,khd->qhd", p, v).reshape(n, hp.n_head * d)
        return self._lin(o, f"{b}.attn_output")

    def _ffn(self, x: np.ndarray, b: str) -> np.ndarray:
        if f"{b}.ffn_gate.weight" in self.w:
            g, u = self._lin(x, f"{b}.ffn_gate"), self._lin(x, f"{b}.ffn_up")
        else:  # phi3: gate rows then up rows in ffn_up
            g, u = np.split(self._lin(x, f"{b}.ffn_up"), 2, axis=-1)
        if self.hp.arch.startswith("gemma"):
            c = np.float32(math.sqrt(2 / math.pi))
            act = 0.5 * g * (1 + np.tanh(c * (g + np.float32(0.044715) * g**3)))
        else:
            act = g / (1 + np.exp(-g))
        return self._lin(act * u, f"{b}.ffn_down")

    def logits(self, ids: list[int]) -> np.ndarray:
        hp = self.hp
        pos = np.arange(len(ids))
        h = self.w["token_embd.weight"][np.asarray(ids)] * np.float32(hp.embed_scale)
        for il in range(hp.n_layer):
            b = f"blk.{il}"
            a = self._attention(self._norm(h, f"{b}.attn_norm.weight"), il, pos)
            if f"{b}.post_attention_norm.weight" in self.w:
                a = self._norm(a, f"{b}.post_attention_norm.weight")
            h = h + a
            f = self._ffn(self._norm(h, f"{b}.ffn_norm.weight"), b)
            if f"{b}.post_ffw_norm.weight" in self.w:
                f = self._norm(f, f"{b}.post_ffw_norm.weight")
            h = h + f
        h = self._norm(h, "output_norm.weight")
        head = self.w.get("output.weight", self.w["token_embd.weight"])
        out = h @ head.T
        if hp.final_softcap:
            out = np.tanh(out / np.float32(hp.final_softcap)) * np.float32(hp.final_softcap)
        return np.asarray(out, dtype=np.float32)
