"""A numpy forward pass of a GGUF model, written the way llama.cpp reads the file.

Independent of the compiled path on purpose: it dequantises with ``gguf.quants``, keeps the
GGUF row order and applies RoPE as llama.cpp does (adjacent pairs for ``llama``, halves for
``qwen2``), so it also checks the Q/K un-permutation and the weight repacking.
"""

from __future__ import annotations

import numpy as np

from agentsim.engines.mlc.config import ModelConfig
from agentsim.engines.mlc.convert import GGUFModel, read_config


class ReferenceModel:
    """Full-sequence float32 forward; ``logits(ids)`` returns logits at every position."""

    def __init__(self, model: GGUFModel) -> None:
        self.cfg: ModelConfig = read_config(model)
        names = [n for n in model.tensors if n.endswith((".weight", ".bias"))]
        self.w = {n: model.dense(n) for n in names}

    def _rope(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """x: [tokens, heads, head_dim]."""
        d = self.cfg.head_dim
        inv = self.cfg.rope_theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
        ang = pos[:, None].astype(np.float64) * inv[None, :]
        cos = np.cos(ang).astype(np.float32)[:, None, :]
        sin = np.sin(ang).astype(np.float32)[:, None, :]
        if self.cfg.arch == "llama":  # GGML_ROPE_TYPE_NORM: adjacent pairs
            a, b = x[..., 0::2], x[..., 1::2]
            out = np.empty_like(x)
            out[..., 0::2] = a * cos - b * sin
            out[..., 1::2] = a * sin + b * cos
            return out
        a, b = x[..., : d // 2], x[..., d // 2 :]  # NEOX: halves
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)

    def _norm(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        ms = np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32)
        out: np.ndarray = (x / np.sqrt(ms + np.float32(self.cfg.rms_eps))) * w
        return out

    def _lin(self, x: np.ndarray, name: str) -> np.ndarray:
        y: np.ndarray = x @ self.w[f"{name}.weight"].T
        bias = self.w.get(f"{name}.bias")
        return y + bias if bias is not None else y

    def logits(self, ids: list[int]) -> np.ndarray:
        cfg = self.cfg
        n, d = len(ids), cfg.head_dim
        pos = np.arange(n)
        h = self.w["token_embd.weight"][np.asarray(ids)]
        group = cfg.num_heads // cfg.num_kv_heads
        mask = np.triu(np.full((n, n), -np.inf, dtype=np.float32), k=1)
        scale = np.float32(1.0 / np.sqrt(float(d)))
        for i in range(cfg.num_layers):
            b = f"blk.{i}"
            x = self._norm(h, self.w[f"{b}.attn_norm.weight"])
            q = self._rope(self._lin(x, f"{b}.attn_q").reshape(n, cfg.num_heads, d), pos)
            k = self._rope(self._lin(x, f"{b}.attn_k").reshape(n, cfg.num_kv_heads, d), pos)
            v = self._lin(x, f"{b}.attn_v").reshape(n, cfg.num_kv_heads, d)
            k = np.repeat(k, group, axis=1)
            v = np.repeat(v, group, axis=1)
            s = np.einsum("qhd,khd->hqk", q, k) * scale + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            p = s / s.sum(axis=-1, keepdims=True)
            o = np.einsum("hqk,khd->qhd", p, v).reshape(n, cfg.num_heads * d)
            h = h + self._lin(o, f"{b}.attn_output")
            x = self._norm(h, self.w[f"{b}.ffn_norm.weight"])
            g = self._lin(x, f"{b}.ffn_gate")
            u = self._lin(x, f"{b}.ffn_up")
            h = h + self._lin(g / (1 + np.exp(-g)) * u, f"{b}.ffn_down")
        h = self._norm(h, self.w["output_norm.weight"])
        head = self.w.get("output.weight", self.w["token_embd.weight"])
        return np.asarray(h @ head.T, dtype=np.float32)
