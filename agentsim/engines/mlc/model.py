"""The Llama-family decoder in ``tvm.relax.frontend.nn`` with TVM's paged KV cache.

One definition covers llama (SmolLM, Mistral, TinyLlama ...) and qwen2 (QKV bias), tied or
untied LM head, grouped-query attention. Matmuls call the hand-scheduled kernels of
``kernels.py``; attention and RoPE are the paged KV cache's (``TIRPagedKVCache``).
"""

from __future__ import annotations

from typing import Any

from tvm import relax as rx
from tvm import te, tirx
from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import Tensor, op
from tvm.relax.frontend.nn.llm.kv_cache import PagedKVCache, RopeMode, TIRPagedKVCache

from agentsim.engines.mlc.config import ModelConfig
from agentsim.engines.mlc.kernels import QuantLayout, embed_func, matmul_func


class QLinear(nn.Module):  # type: ignore[misc]
    """``y = x @ W.T (+ b)`` with W in an interleaved quantized layout."""

    def __init__(self, rows: int, cols: int, quant: str, bias: bool, target_kind: str) -> None:
        self.layout = QuantLayout(quant, rows, cols)
        self.target_kind = target_kind
        for name, shape, dtype in self.layout.params():
            setattr(self, name, nn.Parameter(shape, dtype))
        self.bias = nn.Parameter((rows,), "float32") if bias else None

    def tensors(self) -> list[Tensor]:
        return [getattr(self, name) for name, _, _ in self.layout.params()]

    def forward(self, x: Tensor) -> Tensor:
        y = qmatmul(x, self.layout, self.tensors(), self.target_kind)
        if self.bias is not None:
            y = y + self.bias
        return y


def qmatmul(x: Tensor, lay: QuantLayout, weights: list[Tensor], target_kind: str) -> Tensor:
    """``x[..., cols] @ W.T`` through the kernel for ``lay`` (GEMV variant for one token)."""
    *lead, cols = x.shape
    flat = op.reshape(x, (-1, cols))
    tokens = flat.shape[0] if isinstance(flat.shape[0], int) else None
    # CPU kernels write [tokens, groups, lanes]; GPU ones [tokens, rows]: same memory order.
    out_shape = (
        [flat.shape[0], lay.groups, lay.lanes]
        if target_kind == "llvm"
        else [flat.shape[0], lay.rows]
    )
    y = op.tensor_ir_op(
        matmul_func(lay, tokens, target_kind),
        f"matmul_{lay.quant}_{lay.rows}x{lay.cols}" + ("_gemv" if tokens == 1 else ""),
        [flat, *weights],
        out=Tensor.placeholder(out_shape, "float32"),
    )
    return op.reshape(y, [*lead, lay.rows])


class DecoderLayer(nn.Module):  # type: ignore[misc]
    def __init__(self, cfg: ModelConfig, i: int, target_kind: str) -> None:
        h, d = cfg.hidden_size, cfg.head_dim
        q_rows, kv_rows = cfg.num_heads * d, cfg.num_kv_heads * d
        quants = cfg.quants
        self.cfg, self.index = cfg, i
        self.attn_norm = nn.Parameter((h,), "float32")
        self.ffn_norm = nn.Parameter((h,), "float32")
        p = f"layers.{i}."
        bias = cfg.qkv_bias
        if cfg.fused_qkv:
            self.qkv = QLinear(q_rows + 2 * kv_rows, h, quants[p + "qkv"], bias, target_kind)
        else:
            self.q = QLinear(q_rows, h, quants[p + "q"], bias, target_kind)
            self.k = QLinear(kv_rows, h, quants[p + "k"], bias, target_kind)
            self.v = QLinear(kv_rows, h, quants[p + "v"], bias, target_kind)
        self.o = QLinear(h, q_rows, quants[p + "o"], False, target_kind)
        f = cfg.intermediate_size
        if cfg.fused_gate_up:
            self.gate_up = QLinear(2 * f, h, quants[p + "gate_up"], False, target_kind)
        else:
            self.gate = QLinear(f, h, quants[p + "gate"], False, target_kind)
            self.up = QLinear(f, h, quants[p + "up"], False, target_kind)
        self.down = QLinear(h, f, quants[p + "down"], False, target_kind)

    def forward(self, hidden: Tensor, kv: PagedKVCache) -> Tensor:
        cfg = self.cfg
        b, s, _ = hidden.shape
        x = op.rms_norm(hidden, self.attn_norm, axes=[-1], epsilon=cfg.rms_eps)
        qkv = self.qkv(x) if cfg.fused_qkv else op.concat([self.q(x), self.k(x), self.v(x)], dim=-1)
        heads = cfg.num_heads + 2 * cfg.num_kv_heads
        qkv = op.reshape(qkv, (b, s, heads, cfg.head_dim))
        attn = kv.attention_with_fused_qkv(
            self.index, qkv, cfg.num_heads, sm_scale=cfg.head_dim**-0.5
        )
        attn = op.reshape(attn, (b, s, cfg.num_heads * cfg.head_dim))
        hidden = hidden + self.o(attn)
        x = op.rms_norm(hidden, self.ffn_norm, axes=[-1], epsilon=cfg.rms_eps)
        if cfg.fused_gate_up:
            gate, up = op.split(self.gate_up(x), 2, axis=-1)
        else:
            gate, up = self.gate(x), self.up(x)
        return hidden + self.down(op.silu(gate) * up)


class Embedding(nn.Module):  # type: ignore[misc]
    def __init__(self, vocab: int, hidden: int, quant: str, target_kind: str) -> None:
        self.layout = QuantLayout(quant, vocab, hidden)
        self.target_kind = target_kind
        for name, shape, dtype in self.layout.params():
            setattr(self, name, nn.Parameter(shape, dtype))

    def tensors(self) -> list[Tensor]:
        return [getattr(self, name) for name, _, _ in self.layout.params()]

    def forward(self, ids: Tensor) -> Tensor:
        lay = self.layout
        return op.tensor_ir_op(
            embed_func(lay, self.target_kind),
            f"embed_{lay.quant}",
            [ids, *self.tensors()],
            out=Tensor.placeholder([ids.shape[0], lay.cols], "float32"),
        )


class CausalLM(nn.Module):  # type: ignore[misc]
    """Exported functions: ``prefill``/``decode`` (token ids → last logits) and the cache."""

    def __init__(self, cfg: ModelConfig, target: Any) -> None:
        self.cfg = cfg
        self.target = target
        kind = str(target.kind.name)
        self.embed = Embedding(cfg.vocab_size, cfg.hidden_size, cfg.quants["embed"], kind)
        self.layers = nn.ModuleList([DecoderLayer(cfg, i, kind) for i in range(cfg.num_layers)])
        self.norm = nn.Parameter((cfg.hidden_size,), "float32")
        self.lm_head: QLinear | None = None
        if not cfg.tied_embeddings:
            v, h = cfg.vocab_size, cfg.hidden_size
            self.lm_head = QLinear(v, h, cfg.quants["lm_head"], False, kind)

    def _logits(self, last: Tensor) -> Tensor:
        if self.lm_head is not None:
            return self.lm_head(last)
        # Tied head: the matmul kernel reads the embedding's own tensors.
        return qmatmul(last, self.embed.layout, self.embed.tensors(), self.embed.target_kind)

    def _forward(self, ids: Tensor, kv: PagedKVCache) -> Tensor:
        hidden = self.embed(op.reshape(ids, (-1,)))
        hidden = op.reshape(hidden, (1, -1, self.cfg.hidden_size))
        for layer in self.layers:
            hidden = layer(hidden, kv)
        hidden = op.rms_norm(hidden, self.norm, axes=[-1], epsilon=self.cfg.rms_eps)
        return hidden

    def prefill(self, ids: Tensor, kv: PagedKVCache) -> tuple[Tensor, PagedKVCache]:
        hidden = self._forward(ids, kv)

        def last(x: te.Tensor) -> te.Tensor:
            s = x.shape[1]
            return te.compute((1, 1, x.shape[2]), lambda a, b, c: x[a, s - 1, c], name="last")

        hidden = op.tensor_expr_op(last, "last_token", [hidden])
        return self._logits(op.reshape(hidden, (1, self.cfg.hidden_size))), kv

    def decode(self, ids: Tensor, kv: PagedKVCache) -> tuple[Tensor, PagedKVCache]:
        hidden = self._forward(ids, kv)
        return self._logits(op.reshape(hidden, (1, self.cfg.hidden_size))), kv

    def create_paged_kv_cache(
        self,
        max_batch_size: tirx.Var,
        max_total_seq_len: tirx.Var,
        prefill_chunk_size: tirx.Var,
        page_size: tirx.Var,
        support_sliding_window: tirx.Var,
    ) -> PagedKVCache:
        cfg = self.cfg
        return TIRPagedKVCache(
            attn_kind="mha",
            max_batch_size=max_batch_size,
            max_total_seq_len=max_total_seq_len,
            prefill_chunk_size=prefill_chunk_size,
            page_size=page_size,
            support_sliding_window=support_sliding_window,
            layer_partition=rx.ShapeExpr([0, cfg.num_layers]),
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_kv_heads,
            qk_head_dim=cfg.head_dim,
            v_head_dim=cfg.head_dim,
            mla_original_qk_head_dim=0,
            mla_original_v_head_dim=0,
            rope_mode=RopeMode.NORMAL,
            rope_scale=1,
            rope_theta=cfg.rope_theta,
            rope_scaling={},
            rope_ext_factors=rx.prim_value(0),
            rotary_dim=cfg.head_dim,
            enable_disaggregation=False,
            dtype="float32",
            target=self.target,
        )

    def spec(self) -> dict[str, Any]:
        kv = nn.spec.Object(object_type=PagedKVCache)
        packed = {"param_mode": "packed", "effect_mode": "none"}
        return {
            "prefill": {"ids": nn.spec.Tensor([1, "seq_len"], "int32"), "kv": kv, "$": packed},
            "decode": {"ids": nn.spec.Tensor([1, 1], "int32"), "kv": kv, "$": packed},
            "create_paged_kv_cache": {
                "max_batch_size": int,
                "max_total_seq_len": int,
                "prefill_chunk_size": int,
                "page_size": int,
                "support_sliding_window": int,
                "$": {"param_mode": "none", "effect_mode": "none"},
            },
        }
