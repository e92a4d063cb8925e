"""Building blocks every family shares, in ``tvm.relax.frontend.nn`` with TVM's paged KV cache.

Matmuls call the hand-scheduled kernels of ``kernels.py``. RoPE is applied here, before the
cache (``RopeMode.NONE``), from per-kind tables of inverse frequencies: that one path covers
plain, linear, llama3, YaRN and LongRoPE scaling, partial rotary dims and Gemma 3's
different bases for local and global layers. Attention itself is the cache's; layers of
kind ``"local"`` use its per-layer sliding-window attention.
"""

from __future__ import annotations

from typing import Any

from tvm import relax as rx
from tvm import te, tirx
from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import Tensor, op
from tvm.relax.frontend.nn.llm.kv_cache import PagedKVCache, RopeMode, TIRPagedKVCache

from agentsim.engines.mlc.config import ModelConfig
from agentsim.engines.mlc.kernels import QuantLayout, embed_func, gated_act, matmul_func


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


def rope_table(pos: Tensor, table: Tensor, half: int) -> Tensor:
    """``[n, 2, half]`` cos/sin of ``pos * inv_freq`` (float64 angles), times the mscale.

    ``table`` is ``[half + 1]``: the inverse frequencies, then the cos/sin multiplier.
    """

    def f(p: te.Tensor, tab: te.Tensor) -> te.Tensor:
        def val(t: Any, c: Any, i: Any) -> Any:
            ang = p[t].astype("float64") * tab[i].astype("float64")
            trig = tirx.if_then_else(c == 0, tirx.cos(ang), tirx.sin(ang))
            return (trig * tab[half].astype("float64")).astype("float32")

        return te.compute((p.shape[0], 2, half), val, name="rope_table")

    return op.tensor_expr_op(f, "rope_table", [pos, table])


def apply_rope(qkv: Tensor, cs: Tensor, rot_heads: int, rotary_dim: int) -> Tensor:
    """Rotate-half RoPE on the first ``rotary_dim`` dims of the first ``rot_heads`` heads.

    ``qkv`` is ``[n, heads, head_dim]``; the rest (V heads, non-rotary dims) passes through.
    """
    half = rotary_dim // 2

    def f(x: te.Tensor, t: te.Tensor) -> te.Tensor:
        def val(n: Any, h: Any, j: Any) -> Any:
            lo = j < half
            k = tirx.if_then_else(lo, j, j - half)
            partner = tirx.if_then_else(lo, -x[n, h, j + half], x[n, h, j - half])
            rotated = x[n, h, j] * t[n, 0, k] + partner * t[n, 1, k]
            return tirx.if_then_else(tirx.all(h < rot_heads, j < rotary_dim), rotated, x[n, h, j])

        return te.compute(x.shape, val, name="rope")

    return op.tensor_expr_op(f, "rope", [qkv, cs])


def rms_norm(x: Tensor, w: Tensor, eps: float) -> Tensor:
    return op.rms_norm(x, w, axes=[-1], epsilon=eps)


class SelfAttention(nn.Module):  # type: ignore[misc]
    """QKV projection (fused or not, optional bias), optional Q/K RMSNorm, RoPE, attention, O."""

    def __init__(self, cfg: ModelConfig, i: int, target_kind: str) -> None:
        h, d = cfg.hidden_size, cfg.head_dim
        q_rows, kv_rows = cfg.num_heads * d, cfg.num_kv_heads * d
        quants, p = cfg.quants, f"layers.{i}."
        self.cfg, self.index = cfg, i
        if cfg.fused_qkv:
            self.qkv = QLinear(
                q_rows + 2 * kv_rows, h, quants[p + "qkv"], cfg.qkv_bias, target_kind
            )
        else:
            self.q = QLinear(q_rows, h, quants[p + "q"], cfg.qkv_bias, target_kind)
            self.k = QLinear(kv_rows, h, quants[p + "k"], cfg.qkv_bias, target_kind)
            self.v = QLinear(kv_rows, h, quants[p + "v"], cfg.qkv_bias, target_kind)
        self.o = QLinear(h, q_rows, quants[p + "o"], False, target_kind)
        if cfg.qk_norm:
            self.q_norm = nn.Parameter((d,), "float32")
            self.k_norm = nn.Parameter((d,), "float32")

    def forward(self, x: Tensor, kv: PagedKVCache, cs: Tensor) -> Tensor:
        cfg = self.cfg
        b, s, _ = x.shape
        nq, nk, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        qkv = self.qkv(x) if cfg.fused_qkv else op.concat([self.q(x), self.k(x), self.v(x)], dim=-1)
        qkv = op.reshape(qkv, (b * s, nq + 2 * nk, d))
        if cfg.qk_norm:
            q, k, v = op.split(qkv, [nq, nq + nk], axis=1)
            q = rms_norm(q, self.q_norm, cfg.rms_eps)
            k = rms_norm(k, self.k_norm, cfg.rms_eps)
            qkv = op.concat([q, k, v], dim=1)
        qkv = apply_rope(qkv, cs, nq + nk, cfg.rotary_dim)
        qkv = op.reshape(qkv, (b, s, nq + 2 * nk, d))
        attn = kv.attention_with_fused_qkv(self.index, qkv, nq, sm_scale=cfg.sm_scale)
        return self.o(op.reshape(attn, (b, s, nq * d)))


class GatedMLP(nn.Module):  # type: ignore[misc]
    """``down(act(gate(x)) * up(x))``: SwiGLU (``silu``) or GeGLU (``gelu_tanh``)."""

    def __init__(self, cfg: ModelConfig, i: int, target_kind: str) -> None:
        h, f = cfg.hidden_size, cfg.intermediate_size
        quants, p = cfg.quants, f"layers.{i}."
        self.cfg = cfg
        if cfg.fused_gate_up:
            self.gate_up = QLinear(2 * f, h, quants[p + "gate_up"], False, target_kind)
        else:
            self.gate = QLinear(f, h, quants[p + "gate"], False, target_kind)
            self.up = QLinear(f, h, quants[p + "up"], False, target_kind)
        self.down = QLinear(h, f, quants[p + "down"], False, target_kind)

    def forward(self, x: Tensor) -> Tensor:
        act, f = self.cfg.activation, self.cfg.intermediate_size
        if act not in ("silu", "gelu_tanh"):
            raise ValueError(f"unknown activation {act!r}")
        name = "silu_mul" if act == "silu" else "gelu_mul"
        if self.cfg.fused_gate_up:  # one [.., 2f] tensor: gate first, then up
            gu = self.gate_up(x)
            h = op.tensor_expr_op(lambda t: gated_act(t, t, act, f), name, [gu])
        else:
            h = op.tensor_expr_op(
                lambda g, u: gated_act(g, u, act, f), name, [self.gate(x), self.up(x)]
            )
        return self.down(h)


class CausalLM(nn.Module):  # type: ignore[misc]
    """Exported functions: ``prefill``/``decode`` (token ids → last logits) and the cache.

    ``layer_cls(cfg, i, target_kind)`` builds decoder layer ``i``; its ``forward`` takes
    ``(hidden, kv, rope_table)``. Parameters ``rope_<kind>`` hold each RoPE's table.
    """

    def __init__(self, cfg: ModelConfig, target: Any, layer_cls: type) -> None:
        self.cfg = cfg
        self.target = target
        kind = str(target.kind.name)
        self.embed = Embedding(cfg.vocab_size, cfg.hidden_size, cfg.quants["embed"], kind)
        self.layers = nn.ModuleList([layer_cls(cfg, i, kind) for i in range(cfg.num_layers)])
        self.norm = nn.Parameter((cfg.hidden_size,), "float32")
        half = cfg.rotary_dim // 2
        self.rope_global = nn.Parameter((half + 1,), "float32")
        self.rope_local = nn.Parameter((half + 1,), "float32") if "local" in cfg.ropes else None
        self.lm_head: QLinear | None = None
        if not cfg.tied_embeddings:
            v, h = cfg.vocab_size, cfg.hidden_size
            self.lm_head = QLinear(v, h, cfg.quants["lm_head"], False, kind)

    def _logits(self, last: Tensor) -> Tensor:
        if self.lm_head is not None:
            logits = self.lm_head(last)
        else:  # tied head: the matmul kernel reads the embedding's own tensors
            logits = qmatmul(last, self.embed.layout, self.embed.tensors(), self.embed.target_kind)
        cap = self.cfg.final_softcap
        if cap:
            logits = op.tanh(logits / cap) * cap
        return logits

    def _forward(self, ids: Tensor, kv: PagedKVCache) -> Tensor:
        cfg = self.cfg
        hidden = self.embed(op.reshape(ids, (-1,)))
        if cfg.embed_scale != 1.0:
            hidden = hidden * cfg.embed_scale
        hidden = op.reshape(hidden, (1, -1, cfg.hidden_size))
        pos = kv.get_query_positions(ids.shape[1])
        half = cfg.rotary_dim // 2
        tables = {"global": rope_table(pos, self.rope_global, half)}
        if self.rope_local is not None:
            tables["local"] = rope_table(pos, self.rope_local, half)
        for layer in self.layers:
            hidden = layer(hidden, kv, tables[layer.rope_kind])
        return rms_norm(hidden, self.norm, cfg.rms_eps)

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
        kinds: Any = [
            "mha_sliding" if k == "local" and cfg.sliding_window else "mha" for k in cfg.layer_kinds
        ]
        if "mha" not in kinds:
            # TVM 0.27 allocates its attention scratch buffers only when some layer is plain
            # "mha": give an all-sliding model (Mistral v0.1 style) one unused extra layer.
            kinds.append("mha")
        layers = len(kinds)
        return TIRPagedKVCache(
            attn_kind=kinds,
            max_batch_size=max_batch_size,
            max_total_seq_len=max_total_seq_len,
            prefill_chunk_size=prefill_chunk_size,
            page_size=page_size,
            support_sliding_window=support_sliding_window,
            layer_partition=rx.ShapeExpr([0, layers]),
            num_hidden_layers=layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_kv_heads,
            qk_head_dim=cfg.head_dim,
            v_head_dim=cfg.head_dim,
            mla_original_qk_head_dim=0,
            mla_original_v_head_dim=0,
            rope_mode=RopeMode.NONE,
            rope_scale=1,
            rope_theta=10000,
            rope_scaling={},
            rope_ext_factors=rx.prim_value(0),
            rotary_dim=cfg.head_dim,
            enable_disaggregation=False,
            dtype="float32",
            target=self.target,
            layer_sliding_window_size=cfg.sliding_window or 1024,
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
