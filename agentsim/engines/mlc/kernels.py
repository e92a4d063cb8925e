"""TIR kernels for quantized matmuls and embedding lookups, scheduled by hand for CPUs.

Weights are stored "interleaved" (``quants.py``): output rows are grouped ``lanes`` at a time
and, inside a group, the bytes of one block for all rows of the group are contiguous. The
inner loop then runs over the rows of a group as one SIMD vector and dequantises as it
loads (``dequant.py``), which is what makes a batch-of-one GEMV fast on a CPU (ENGINE.md).
Every format (F32/F16, Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, the K-quants, IQ4_NL/IQ4_XS) goes through
the same three schedules; only the dequantisation expression differs.
"""

from __future__ import annotations

import math
from typing import Any

from tvm import te, tirx
from tvm.s_tir import Schedule

from agentsim.engines.mlc import gemv_avx2, gemv_prefetch, gemv_vnni
from agentsim.engines.mlc.dequant import Dequant
from agentsim.engines.mlc.quants import BLOCK, FORMATS, QuantLayout, lanes_for

__all__ = [
    "BLOCK",
    "QUANTS",
    "TOKEN_TILE",
    "QuantLayout",
    "embed_func",
    "gated_act",
    "lanes_for",
    "matmul_func",
]

QUANTS = tuple(FORMATS)
#: tokens of a prefill register tile by lanes per row group: tile x lanes/16 accumulator
#: vectors + lanes/16 weight vectors + 1 broadcast must fit AVX-512's 32 registers
#: (measured: 6 x 64 lanes runs 2.2x faster than 8 x 64, which spills).
TOKEN_TILES = {64: 6, 32: 12}
#: the same for AVX2's 16 registers of 8 floats, by rows per tile: a 6-token tile of a
#: 64-row group would need 48 registers, so the group goes 16 rows at a time (5 x 2 + 2 + 1;
#: Zen 3, SmolLM2 prefill at 1 thread, in-process A/B against 6 x 64: 2.0x at 100 tokens,
#: 1.7x at 1000; 4 x 16 the same, 12 x 8 and 2 x 32 10-30% slower).
AVX2_TILES = {16: 5}
AVX2_ROWS = 16
TOKEN_TILE = 8
#: GPU GEMV thread block: rows x reduction threads per row.
GPU_ROWS, GPU_SPLIT_K = 32, 8


def _param_placeholders(layout: QuantLayout) -> list[te.Tensor]:
    return [te.placeholder(shape, dtype, name=name) for name, shape, dtype in layout.params()]


def matmul_func(
    layout: QuantLayout,
    tokens: int | None,
    target_kind: str = "llvm",
    *,
    block_scaled: bool = True,
    tile: int | None = None,
    lane_chunk: int | None = None,
    local_acc: bool = True,
    dequant_per_group: bool = True,
) -> Any:
    """``y[n, G, lanes] = x[n, K] @ W.T``; ``tokens`` None means a symbolic token count.

    CPU schedule: parallel over row groups. Decode (1 token) uses ``gemv_vnni`` for Q4_1
    and Q8_0 on an AVX-512 VNNI CPU, ``gemv_avx2`` for them on an AVX2 CPU without
    AVX-512, ``gemv_prefetch`` for the other block formats
    in groups of 64 rows, else ``_gemv_block_scaled`` (or, with
    ``block_scaled=False``, dequantises inside the vectorised inner loop). Prefill
    dequantises a group's ``[K, lanes]`` panel once for all tokens (``dequant_per_group``)
    and accumulates ``tile`` tokens x ``lane_chunk`` rows in registers (``local_acc``;
    both default by the target's vector registers, ``prefill_tile``).
    The keyword knobs exist for A/B measurements. GPU targets get ``_gpu_matmul``
    (``y[n, rows]``), which dlight schedules.
    """
    if target_kind != "llvm":
        return _gpu_matmul(layout, tokens)
    if block_scaled and tokens == 1 and gemv_vnni.supports(layout):
        return gemv_vnni.gemv(layout)
    if block_scaled and tokens == 1 and gemv_avx2.supports(layout):
        return gemv_avx2.gemv(layout)
    if block_scaled and tokens == 1 and gemv_prefetch.supports(layout):
        return gemv_prefetch.gemv(layout)
    if block_scaled and tokens == 1 and not layout.format.is_float:
        return _gemv_block_scaled(layout)
    if tokens != 1:
        chunk, default_tile = prefill_tile(layout.lanes, lane_chunk)
        tile = tile or default_tile
        return _gemm(layout, tokens, tile, local_acc, dequant_per_group, chunk)
    x = te.placeholder((1, layout.cols), "float32", name="x")
    bufs = _param_placeholders(layout)
    dq = Dequant(layout, bufs)
    g_, kb_, ln_, bs = layout.groups, layout.blocks, layout.lanes, layout.block
    w = te.compute((g_, kb_, bs, ln_), dq.value, name="w")
    kb = te.reduce_axis((0, kb_), name="kb")
    kk = te.reduce_axis((0, bs), name="kk")
    y = te.compute(
        (1, g_, ln_),
        lambda i, g, ln: te.sum(x[i, kb * bs + kk] * w[g, kb, kk, ln], axis=[kb, kk]),
        name="y",
    )
    sch = Schedule(te.create_prim_func([x, *bufs, y]))
    blk_w, blk_y = sch.get_sblock("w"), sch.get_sblock("y")
    i, g, ln, rkb, rkk = sch.get_loops(blk_y)
    sch.compute_inline(blk_w)
    sch.reorder(g, i, rkb, rkk, ln)
    sch.parallel(g)
    if bs <= 32:
        sch.unroll(rkk)
    sch.vectorize(ln)
    sch.decompose_reduction(blk_y, rkb)
    return _private(sch.mod["main"])


def prefill_tile(lanes: int, rows: int | None = None) -> tuple[int, int]:
    """``(rows, tokens)`` of a prefill register tile of a group of ``lanes`` rows for the
    current target (``tvm.target.Target.current``; ``rows`` forces the row count)."""
    if rows is None and not _has_avx512():
        rows = min(lanes, AVX2_ROWS)
    if rows is not None and rows < lanes:
        return rows, AVX2_TILES.get(rows, TOKEN_TILE)
    return lanes, TOKEN_TILES.get(lanes, TOKEN_TILE)


def _has_avx512() -> bool:
    """False when the current target is a CPU without AVX-512 (any non-x86 one too); with no
    current target True, the register tiles of earlier builds."""
    has = gemv_avx2.current_cpu_has("avx512f")
    return True if has is None else has


def _gemm(
    layout: QuantLayout,
    tokens: int | None,
    tile: int,
    local_acc: bool,
    dequant_per_group: bool,
    chunk: int | None = None,
) -> Any:
    """Prefill matmul: tokens padded to whole ``tile``s, so that the inner loop carries no
    per-token bounds check and its ``tile x lanes`` accumulators stay in registers.

    The group's whole ``[K, lanes]`` panel is dequantised once (L2-sized) for all tokens
    (``dequant_per_group``); ``x`` is copied into zero-padded tiles and the result copied
    out of them (both cheap next to the matmul).
    """
    n: Any = tokens if tokens is not None else tirx.Var("n", "int64")
    cols = layout.cols
    x = te.placeholder((n, cols), "float32", name="x")
    bufs = _param_placeholders(layout)
    dq = Dequant(layout, bufs)
    g_, kb_, ln_, bs = layout.groups, layout.blocks, layout.lanes, layout.block
    nt = n // tile + 1  # (not a ceil-div: TVM proves this one covers every token)
    xp = te.compute(
        (nt, tile, cols),
        lambda t, j, k: tirx.if_then_else(t * tile + j < n, x[t * tile + j, k], _zero()),
        name="xp",
    )
    w = te.compute((g_, kb_, bs, ln_), dq.value, name="w")
    kb = te.reduce_axis((0, kb_), name="kb")
    kk = te.reduce_axis((0, bs), name="kk")
    yp = te.compute(
        (nt, g_, tile, ln_),
        lambda t, g, j, ln: te.sum(xp[t, j, kb * bs + kk] * w[g, kb, kk, ln], axis=[kb, kk]),
        name="yp",
    )
    y = te.compute((n, g_, ln_), lambda i, g, ln: yp[i // tile, g, i % tile, ln], name="y")
    sch = Schedule(te.create_prim_func([x, *bufs, y]))
    blk_x, blk_w, blk_p, blk_y = (sch.get_sblock(b) for b in ("xp", "w", "yp", "y"))
    xt, _, xk = sch.get_loops(blk_x)
    sch.parallel(xt)
    sch.vectorize(xk)
    t, g, j, ln, rkb, rkk = sch.get_loops(blk_p)
    chunk = chunk or ln_
    lo, ln = sch.split(ln, [ln_ // chunk, chunk])
    sch.reorder(g, t, lo, rkb, rkk, j, ln)
    sch.parallel(g)
    sch.compute_at(blk_w, g if dequant_per_group else rkb)
    sch.vectorize(sch.get_loops(blk_w)[-1])
    if local_acc:
        acc = sch.cache_write(blk_p, 0, "local")
        sch.reverse_compute_at(acc, lo)
        sch.vectorize(sch.get_loops(acc)[-1])
    sch.unroll(j)
    sch.vectorize(ln)
    sch.decompose_reduction(blk_p, rkb)
    yi, _, yl = sch.get_loops(blk_y)
    sch.parallel(yi)
    sch.vectorize(yl)
    return _private(sch.mod["main"])


def _zero() -> Any:
    return tirx.const(0.0, "float32")


def _gpu_matmul(layout: QuantLayout, tokens: int | None) -> Any:
    """``y[n, rows]``: a dequantise stage then a plain matmul, the shape dlight's GPU Matmul
    rule recognises (it fuses the dequantisation into the matmul); one token gets its own
    GEMV schedule. All indices are int64."""

    def i64(v: int) -> Any:
        return tirx.IntImm("int64", v)

    n: Any = i64(tokens) if tokens is not None else tirx.Var("n", "int64")
    rows, cols, ln_, bs = i64(layout.rows), i64(layout.cols), layout.lanes, layout.block
    x = te.placeholder((n, cols), "float32", name="x")
    bufs = _param_placeholders(layout)
    dq = Dequant(layout, bufs)
    w = te.compute(
        (rows, cols),
        lambda r, k: dq.value(r // ln_, k // bs, k % bs, r % ln_),
        name="w",
    )
    k = te.reduce_axis((i64(0), cols), name="k")
    y = te.compute((n, rows), lambda i, j: te.sum(x[i, k] * w[j, k], axis=k), name="y")
    func = te.create_prim_func([x, *bufs, y])
    if tokens != 1:
        return _private(func)
    # dlight's GEMV rule cannot read the interleaved layout; this schedule suits it: one
    # thread per row, consecutive threads read consecutive bytes (the lanes dimension), and
    # GPU_SPLIT_K threads per row share the reduction.
    sch = Schedule(func)
    sch.compute_inline(sch.get_sblock("w"))
    i, j, rk = sch.get_loops(sch.get_sblock("y"))
    bx, tx = sch.split(j, [None, GPU_ROWS])
    ko, ki = sch.split(rk, [None, GPU_SPLIT_K])
    sch.reorder(i, bx, tx, ko, ki)
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    sch.bind(ki, "threadIdx.y")
    return _private(sch.mod["main"].with_attr("tirx.is_scheduled", True))


def _gemv_block_scaled(layout: QuantLayout) -> Any:
    """One-token matmul that applies scales once per sub-block, not once per weight.

    ``sum_k x_k (q_k s + o) = s * sum_k x_k q_k + o * sum_k x_k`` over each sub-block: the
    inner loop is one convert and one FMA per weight; the sub-block sums of ``x`` are
    shared by all rows.
    """
    fmt = layout.format
    g_, kb_, ln_, bs, sub = layout.groups, layout.blocks, layout.lanes, fmt.block, fmt.sub
    ns = bs // sub
    x = te.placeholder((1, layout.cols), "float32", name="x")
    bufs = _param_placeholders(layout)
    dq = Dequant(layout, bufs)
    kk = te.reduce_axis((0, sub), name="kk")
    t = te.compute(
        (g_, kb_, ns, ln_),
        lambda g, kb, s, ln: te.sum(
            x[0, kb * bs + s * sub + kk] * dq.level(g, kb, s * sub + kk, ln), axis=[kk]
        ),
        name="t",
    )
    ks = te.reduce_axis((0, sub), name="ks")
    xs = te.compute(
        (kb_, ns), lambda kb, s: te.sum(x[0, kb * bs + s * sub + ks], axis=[ks]), name="xs"
    )
    kb = te.reduce_axis((0, kb_), name="kb")
    rs = te.reduce_axis((0, ns), name="rs")

    def term(g: Any, ln: Any) -> Any:
        v = dq.scale(g, kb, rs, ln) * t[g, kb, rs, ln]
        if dq.has_offset():
            v = v + dq.offset(g, kb, rs, ln) * xs[kb, rs]
        return v

    y = te.compute((1, g_, ln_), lambda i, g, ln: te.sum(term(g, ln), axis=[kb, rs]), name="y")
    # (create_prim_func keeps only the stages ``y`` needs: no ``xs`` without offsets)
    sch = Schedule(te.create_prim_func([x, *bufs, y]))
    blk_t, blk_y = sch.get_sblock("t"), sch.get_sblock("y")
    i, g, ln, rkb, rrs = sch.get_loops(blk_y)
    sch.reorder(g, i, rkb, rrs, ln)
    sch.parallel(g)
    sch.compute_at(blk_t, rrs)
    if ln_ > 1:
        tl, tk = sch.get_loops(blk_t)[-2:]
        sch.reorder(tk, tl)
        sch.vectorize(tl)
    else:  # compute_at drops the unit row loop
        tk = sch.get_loops(blk_t)[-1]
    sch.unroll(tk)
    sch.decompose_reduction(blk_t, tk)
    sch.vectorize(ln)
    sch.decompose_reduction(blk_y, rkb)
    return _private(sch.mod["main"])


def embed_func(layout: QuantLayout, target_kind: str = "llvm") -> Any:
    """``out[n, K] = W[ids[n], :]``: dequantised rows of a quantized embedding table."""
    n = tirx.Var("n", "int64")
    ids = te.placeholder((n,), "int32", name="ids")
    bufs = _param_placeholders(layout)
    dq = Dequant(layout, bufs)
    ln_, bs = layout.lanes, layout.block

    def row(t: Any, k: Any) -> Any:
        r = ids[t].astype("int64")
        return dq.value(r // ln_, k // bs, k % bs, r % ln_)

    out = te.compute((n, layout.cols), row, name="embed")
    func = te.create_prim_func([ids, *bufs, out])
    if target_kind != "llvm":
        return _private(func)
    sch = Schedule(func)
    t, _ = sch.get_loops(sch.get_sblock("embed"))
    sch.parallel(t)
    return _private(sch.mod["main"])


def _exp2(z: Any) -> Any:
    """``2**z`` as plain arithmetic (vectorises; ``exp``/``tanh`` become scalar libm calls).

    ``z = n + f``, ``|f| <= 0.5``: degree-6 Taylor polynomial of ``2**f`` (relative error
    < 1e-7) times ``2**n`` built in the exponent bits; ``z`` clamped to +-125.
    """
    z = tirx.max(tirx.min(z, _f32(125.0)), _f32(-125.0))
    n = tirx.floor(z + _f32(0.5))
    f = (z - n) * _f32(math.log(2.0))
    p = _f32(1.0 / 720)
    for c in (1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0):
        p = p * f + _f32(c)
    bits = (n.astype("int32") + tirx.const(127, "int32")) << tirx.const(23, "int32")
    return p * tirx.reinterpret("float32", bits)


def _f32(v: float) -> Any:
    return tirx.const(v, "float32")


def gated_act(gate: te.Tensor, up: te.Tensor, activation: str, width: int) -> te.Tensor:
    """``act(gate[..., :width]) * up[..., -width:]`` for SwiGLU (``silu``) and GeGLU
    (``gelu_tanh``), both as ``x * sigmoid(a x + b x^3)`` through ``_exp2``:
    ``gelu_tanh(x) = 0.5 x (1 + tanh(u)) = x * sigmoid(2u)``. ``gate`` and ``up`` may be
    one fused ``[..., 2 * width]`` tensor."""
    lead = list(gate.shape[:-1])
    uoff = up.shape[-1] - width
    k = 2.0 * math.sqrt(2.0 / math.pi)  # 2u = k (x + 0.044715 x^3)

    def val(*idx: Any) -> Any:
        *head, j = idx
        x = gate[(*head, j)]
        z = x * (_f32(k) + _f32(k * 0.044715) * x * x) if activation == "gelu_tanh" else x
        sig = _f32(1.0) / (_f32(1.0) + _exp2(-z * _f32(math.log2(math.e))))
        return x * sig * up[(*head, j + uoff)]

    return te.compute((*lead, width), val, name="act")


def _private(func: Any) -> Any:
    """Drop the ``main`` symbol so that many kernels can live in one module."""
    return func.without_attr("global_symbol")
