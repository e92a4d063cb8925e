"""TIR kernels for quantized matmuls and embedding lookups, scheduled by hand for CPUs.

Weights are stored "interleaved" (``quants.py``): output rows are grouped ``lanes`` at a time
and, inside a group, the bytes of one block for all rows of the group are contiguous. The
inner loop then runs over the rows of a group as one SIMD vector and dequantises as it
loads (``dequant.py``), which is what makes a batch-of-one GEMV fast on a CPU (ENGINE.md).
Every format (F32/F16, Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, the K-quants, IQ4_NL/IQ4_XS) goes through
the same three schedules; only the dequantisation expression differs.
"""

from __future__ import annotations

from typing import Any

from tvm import te, tirx
from tvm.s_tir import Schedule

from agentsim.engines.mlc.dequant import Dequant
from agentsim.engines.mlc.quants import BLOCK, FORMATS, QuantLayout, lanes_for

__all__ = ["BLOCK", "QUANTS", "TOKEN_TILE", "QuantLayout", "embed_func", "lanes_for", "matmul_func"]

QUANTS = tuple(FORMATS)
#: rows of a token tile in prefill kernels: weights are dequantised once per tile.
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
    tile: int = TOKEN_TILE,
    local_acc: bool = True,
    dequant_per_group: bool = True,
) -> Any:
    """``y[n, G, lanes] = x[n, K] @ W.T``; ``tokens`` None means a symbolic token count.

    CPU schedule: parallel over row groups. Decode (1 token) uses ``_gemv_block_scaled``
    (or, with ``block_scaled=False``, dequantises inside the vectorised inner loop). Prefill
    dequantises a group's ``[K, lanes]`` panel once for all tokens (``dequant_per_group``)
    and accumulates ``tile`` tokens x ``lanes`` rows in a local block (``local_acc``).
    The keyword knobs exist for A/B measurements. GPU targets get ``_gpu_matmul``
    (``y[n, rows]``), which dlight schedules.
    """
    if target_kind != "llvm":
        return _gpu_matmul(layout, tokens)
    if block_scaled and tokens == 1 and not layout.format.is_float:
        return _gemv_block_scaled(layout)
    n: Any = tokens if tokens is not None else tirx.Var("n", "int64")
    x = te.placeholder((n, layout.cols), "float32", name="x")
    bufs = _param_placeholders(layout)
    dq = Dequant(layout, bufs)
    g_, kb_, ln_, bs = layout.groups, layout.blocks, layout.lanes, layout.block
    w = te.compute((g_, kb_, bs, ln_), dq.value, name="w")
    kb = te.reduce_axis((0, kb_), name="kb")
    kk = te.reduce_axis((0, bs), name="kk")
    y = te.compute(
        (n, g_, ln_),
        lambda i, g, ln: te.sum(x[i, kb * bs + kk] * w[g, kb, kk, ln], axis=[kb, kk]),
        name="y",
    )
    sch = Schedule(te.create_prim_func([x, *bufs, y]))
    blk_w, blk_y = sch.get_sblock("w"), sch.get_sblock("y")
    i, g, ln, rkb, rkk = sch.get_loops(blk_y)
    if tokens == 1:
        sch.compute_inline(blk_w)
        sch.reorder(g, i, rkb, rkk, ln)
        sch.parallel(g)
        if bs <= 32:
            sch.unroll(rkk)
        sch.vectorize(ln)
        sch.decompose_reduction(blk_y, rkb)
    else:
        io, ii = sch.split(i, [None, tile])
        sch.reorder(g, io, rkb, rkk, ii, ln)
        sch.parallel(g)
        # Dequantise the group's whole [K, lanes] panel once (L2-sized), for all tokens.
        sch.compute_at(blk_w, g if dequant_per_group else rkb)
        wl = sch.get_loops(blk_w)
        sch.vectorize(wl[-1])
        if local_acc:
            # accumulate a [tile, lanes] block in registers/L1, write it once per tile
            acc = sch.cache_write(blk_y, 0, "local")
            sch.reverse_compute_at(acc, io)
            sch.vectorize(sch.get_loops(acc)[-1])
            sch.unroll(ii)
        sch.vectorize(ln)
        sch.decompose_reduction(blk_y, rkb)
    return _private(sch.mod["main"])


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


def _private(func: Any) -> Any:
    """Drop the ``main`` symbol so that many kernels can live in one module."""
    return func.without_attr("global_symbol")
