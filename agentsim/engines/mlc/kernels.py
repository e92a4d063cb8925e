"""TIR kernels for quantized matmuls, scheduled by hand for CPUs.

Weights are stored "interleaved": output rows are grouped ``lanes`` at a time and, inside a
group, the values of one input column for all rows of the group are contiguous. The inner
loop then runs over the rows of a group as one SIMD vector and dequantises as it loads,
which is what makes a batch-of-one GEMV fast on a CPU (see ENGINE.md).

Layouts (``G = N // lanes``, ``KB = K // 32``):

- ``q4_1`` / ``q4_0``: ``qs uint8[G, KB, 16, lanes]`` (GGUF block bytes: low nibble = column
  ``j``, high nibble = column ``j + 16``), ``d float32[G, KB, lanes]`` (+ ``m`` for q4_1).
- ``q8_0``: ``qs int8[G, KB, 32, lanes]``, ``d float32[G, KB, lanes]``.
- ``f32``: ``qs float32[G, KB, 32, lanes]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tvm import te, tirx
from tvm.s_tir import Schedule

BLOCK = 32
QUANTS = ("q4_1", "q4_0", "q8_0", "f32")
#: rows of a token tile in prefill kernels: weights are dequantised once per tile.
TOKEN_TILE = 8


def lanes_for(rows: int) -> int:
    """Rows per interleaved group: the widest of 64/32/16/8/4/2/1 that divides ``rows``."""
    for lanes in (64, 32, 16, 8, 4, 2, 1):
        if rows % lanes == 0:
            return lanes
    return 1


@dataclass(frozen=True)
class QuantLayout:
    """Shapes and dtypes of the parameters of one quantized ``[rows, cols]`` matrix."""

    quant: str
    rows: int
    cols: int

    @property
    def lanes(self) -> int:
        return lanes_for(self.rows)

    @property
    def groups(self) -> int:
        return self.rows // self.lanes

    @property
    def blocks(self) -> int:
        return self.cols // BLOCK

    def params(self) -> list[tuple[str, tuple[int, ...], str]]:
        """(suffix, shape, dtype) of each stored tensor, in call order."""
        g, kb, ln = self.groups, self.blocks, self.lanes
        if self.quant in ("q4_1", "q4_0"):
            out = [("qs", (g, kb, BLOCK // 2, ln), "uint8"), ("d", (g, kb, ln), "float32")]
            if self.quant == "q4_1":
                out.append(("m", (g, kb, ln), "float32"))
            return out
        if self.quant == "q8_0":
            return [("qs", (g, kb, BLOCK, ln), "int8"), ("d", (g, kb, ln), "float32")]
        return [("qs", (g, kb, BLOCK, ln), "float32")]


def _dequant(layout: QuantLayout, bufs: list[te.Tensor]) -> Any:
    """A function (g, kb, kk, lane) -> float32 weight for ``layout``."""
    quant = layout.quant

    def value(g: Any, kb: Any, kk: Any, ln: Any) -> Any:
        if quant in ("q4_1", "q4_0"):
            byte = bufs[0][g, kb, kk % 16, ln]
            shift = (kk // 16 * 4).astype("uint8")
            q = ((byte >> shift) & tirx.const(15, "uint8")).astype("float32")
            if quant == "q4_1":
                return q * bufs[1][g, kb, ln] + bufs[2][g, kb, ln]
            return (q - tirx.const(8.0, "float32")) * bufs[1][g, kb, ln]
        if quant == "q8_0":
            return bufs[0][g, kb, kk, ln].astype("float32") * bufs[1][g, kb, ln]
        return bufs[0][g, kb, kk, ln]

    return value


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
    if block_scaled and tokens == 1 and layout.quant != "f32":
        return _gemv_block_scaled(layout)
    n: Any = tokens if tokens is not None else tirx.Var("n", "int64")
    x = te.placeholder((n, layout.cols), "float32", name="x")
    bufs = _param_placeholders(layout)
    deq = _dequant(layout, bufs)
    g_, kb_, ln_ = layout.groups, layout.blocks, layout.lanes
    w = te.compute((g_, kb_, BLOCK, ln_), deq, name="w")
    kb = te.reduce_axis((0, kb_), name="kb")
    kk = te.reduce_axis((0, BLOCK), name="kk")
    y = te.compute(
        (n, g_, ln_),
        lambda i, g, ln: te.sum(x[i, kb * BLOCK + kk] * w[g, kb, kk, ln], axis=[kb, kk]),
        name="y",
    )
    sch = Schedule(te.create_prim_func([x, *bufs, y]))
    blk_w, blk_y = sch.get_sblock("w"), sch.get_sblock("y")
    i, g, ln, rkb, rkk = sch.get_loops(blk_y)
    if tokens == 1:
        sch.compute_inline(blk_w)
        sch.reorder(g, i, rkb, rkk, ln)
        sch.parallel(g)
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
    """``y[n, rows]``: a dequantise stage then a plain matmul, the shape dlight's GPU rules
    recognise (they fuse the dequantisation into the matmul/GEMV). All indices are int64."""

    def i64(v: int) -> Any:
        return tirx.IntImm("int64", v)

    n: Any = i64(tokens) if tokens is not None else tirx.Var("n", "int64")
    rows, cols, ln_ = i64(layout.rows), i64(layout.cols), layout.lanes
    x = te.placeholder((n, cols), "float32", name="x")
    bufs = _param_placeholders(layout)
    deq = _dequant(layout, bufs)
    w = te.compute(
        (rows, cols),
        lambda r, k: deq(r // ln_, k // BLOCK, k % BLOCK, r % ln_),
        name="w",
    )
    k = te.reduce_axis((i64(0), cols), name="k")
    y = te.compute((n, rows), lambda i, j: te.sum(x[i, k] * w[j, k], axis=k), name="y")
    return _private(te.create_prim_func([x, *bufs, y]))


def _gemv_block_scaled(layout: QuantLayout) -> Any:
    """One-token matmul that applies block scales once per block, not once per weight.

    ``sum_k x_k (q_k d + m) = d * sum_k x_k q_k + m * sum_k x_k``: the inner loop is one
    convert and one FMA per weight; the per-block sums of ``x`` are shared by all rows.
    """
    g_, kb_, ln_ = layout.groups, layout.blocks, layout.lanes
    x = te.placeholder((1, layout.cols), "float32", name="x")
    bufs = _param_placeholders(layout)
    quant = layout.quant

    def level(g: Any, kb: Any, kk: Any, ln: Any) -> Any:
        if quant == "q8_0":
            return bufs[0][g, kb, kk, ln].astype("float32")
        byte = bufs[0][g, kb, kk % 16, ln]
        shift = (kk // 16 * 4).astype("uint8")
        return ((byte >> shift) & tirx.const(15, "uint8")).astype("float32")

    kk = te.reduce_axis((0, BLOCK), name="kk")
    t = te.compute(
        (g_, kb_, ln_),
        lambda g, kb, ln: te.sum(x[0, kb * BLOCK + kk] * level(g, kb, kk, ln), axis=[kk]),
        name="t",
    )
    ks = te.reduce_axis((0, BLOCK), name="ks")
    xs = te.compute((kb_,), lambda kb: te.sum(x[0, kb * BLOCK + ks], axis=[ks]), name="xs")
    kb = te.reduce_axis((0, kb_), name="kb")

    def term(g: Any, ln: Any) -> Any:
        d = bufs[1][g, kb, ln]
        if quant == "q4_1":
            return d * t[g, kb, ln] + bufs[2][g, kb, ln] * xs[kb]
        if quant == "q4_0":
            return d * (t[g, kb, ln] - tirx.const(8.0, "float32") * xs[kb])
        return d * t[g, kb, ln]

    y = te.compute((1, g_, ln_), lambda i, g, ln: te.sum(term(g, ln), axis=[kb]), name="y")
    sch = Schedule(te.create_prim_func([x, *bufs, y]))
    blk_t, blk_y = sch.get_sblock("t"), sch.get_sblock("y")
    i, g, ln, rkb = sch.get_loops(blk_y)
    sch.reorder(g, i, rkb, ln)
    sch.parallel(g)
    sch.compute_at(blk_t, rkb)
    tl, tk = sch.get_loops(blk_t)[-2:]
    sch.reorder(tk, tl)
    sch.unroll(tk)
    sch.vectorize(tl)
    sch.decompose_reduction(blk_t, tk)
    sch.vectorize(ln)
    sch.decompose_reduction(blk_y, rkb)
    return _private(sch.mod["main"])


def embed_func(layout: QuantLayout, target_kind: str = "llvm") -> Any:
    """``out[n, K] = W[ids[n], :]``: dequantised rows of a quantized embedding table."""
    n = tirx.Var("n", "int64")
    ids = te.placeholder((n,), "int32", name="ids")
    bufs = _param_placeholders(layout)
    deq = _dequant(layout, bufs)
    ln_ = layout.lanes

    def row(t: Any, k: Any) -> Any:
        r = ids[t].astype("int64")
        return deq(r // ln_, k // BLOCK, k % BLOCK, r % ln_)

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
