# mypy: disable-error-code="valid-type,untyped-decorator"
"""One-token Q4_1 matmul for AVX-512 VNNI CPUs, through ``vpdpbusd`` and kept exact.

The float GEMV (``gemv_prefetch.gemv_any``) spends four operations per 16 weights
(zero-extend, mask, convert, FMA) and at one thread is bound by them, not by memory
(Zen 5: SmolLM2's Q4_1 matrices from memory at ~21-23 GB/s, ~28 from cache). Here the
4-bit levels meet the activations as integers, 64 products per ``vpdpbusd``, with the
activations written exactly as ``gemv_avx2`` writes them (three balanced base-128 digits
of ``X = round(x / s)``, ``s = max|x| / 2**20`` per 32-column block; the only rounding is
``x -> X s``, at most ``2**-21`` of the block's largest ``|x|``):

* ``vpdpbusd`` sums 4 byte products into each 32-bit lane, so a lane must hold 4 levels
  of one row: the bytes of 4 consecutive columns ``j`` (each a level of column ``j`` and
  one of ``j + 16``) of 16 rows are interleaved into a lane per row, and their low and
  high nibbles are two such vectors, against the digits of columns ``4q .. 4q + 3`` and
  ``16 + 4q .. 16 + 4q + 3``, broadcast as one 32-bit word;
* per block and digit the 32-bit sums are exact (``32 * 15 * 64``), so are the digits
  combined (``S0 + 2**7 S1 + 2**14 S2``), converted once and scaled:
  ``y += d * s * S + m * sum(x)``.

All 64 rows of a group at once: 12 accumulators (3 digits x 4 sixteen-row quarters) and
the operands fit AVX-512's 32 registers (LLVM makes each 4-source interleave two
``vpermt2b``). Weights are prefetched ``AHEAD`` blocks ahead.

Q8_0 (the LM heads) the same way, its signed weights made unsigned bytes by ``w + 128``
(one ``xor``) and ``128 * sum(D)`` taken back out per block and digit; the digits are
combined in floats there, as the exact sum of a block can pass 2**31.

Zen 4, one thread, 3072x576 Q4_1: 45 us from cache against the float kernel's 79, 61-72
from memory against 87. SmolLM2 decode in one process, against the float kernels:
+21% at one thread (98.7 -> 119.6 tok/s, 16 alternating rounds), +8% at two; the Q8_0
kernel alone is worth ~1% of that (the LM head streams at memory speed either way).
"""

from __future__ import annotations

from typing import Any

from tvm.script import tirx as T

from agentsim.engines.mlc.gemv_avx2 import TASKS, current_cpu_has, digits
from agentsim.engines.mlc.gemv_prefetch import _prefetch
from agentsim.engines.mlc.quants import QuantLayout

#: blocks the weights' prefetch runs ahead of the loads (Zen 4, 1 thread, 3072x576 from
#: memory: 2 -> 61-66 us, 8 -> 69, 32 -> 77, none -> 70)
AHEAD = 2


def supports(layout: QuantLayout) -> bool:
    """Q4_1 or Q8_0 in groups of 64 rows, for a current target with AVX-512 VNNI."""
    if layout.quant not in ("q4_1", "q8_0") or layout.lanes != 64:
        return False
    return bool(current_cpu_has("avx512vnni")) and bool(current_cpu_has("avx512bw"))


def _quads(v: list[Any], o: int) -> Any:
    """Rows ``16 o .. 16 o + 15`` of the four 64-row byte vectors ``v``: lane ``r`` holds
    byte ``r`` of each, in order."""
    return T.Shuffle(v, [i * 64 + 16 * o + r for r in range(16) for i in range(4)])


def _dpbusd(acc: Any, levels: Any, word: Any) -> Any:
    return T.call_llvm_pure_intrin(
        "int32x16",
        "llvm.x86.avx512.vpdpbusd.512",
        acc,
        T.reinterpret("int8x64", levels),
        T.reinterpret("int8x64", T.broadcast(word, 16)),
    )


@T.macro
def prepare(x: Any, kb_: int, xw: Any, xs: Any, xb: Any) -> None:
    """Per block ``kb`` of ``x``: ``xw[kb, k, q]`` digit ``k`` of columns ``4q .. 4q + 3`` as
    the bytes of one 32-bit word, ``xs[kb]`` = (s, sum(x)), ``xb[kb, k]`` = 128 * the sum of
    digit ``k`` over the block (what ``vpdpbusd`` adds for weights biased to unsigned)."""
    for kb in T.serial(kb_):
        xi = T.decl_buffer((4, 32), "int32", scope="global")
        digits(x, kb, xi, xs)
        for k in T.unroll(3):
            xb[kb, k] = 0
            for j in T.serial(32):
                xb[kb, k] = xb[kb, k] + xi[k + 1, j] * 128
            for q in T.vectorized(8):
                xw[kb, k, q] = T.bitwise_or(
                    T.bitwise_or(
                        T.bitwise_and(xi[k + 1, q * 4], 255),
                        T.shift_left(T.bitwise_and(xi[k + 1, q * 4 + 1], 255), 8),
                    ),
                    T.bitwise_or(
                        T.shift_left(T.bitwise_and(xi[k + 1, q * 4 + 2], 255), 16),
                        T.shift_left(xi[k + 1, q * 4 + 3], 24),
                    ),
                )


def gemv(layout: QuantLayout) -> Any:
    """``y[1, G, 64] = x[1, K] @ W.T`` for a layout this module ``supports``."""
    if layout.quant == "q8_0":
        return _q8_0(layout)
    return _q4_1(layout)


def _q8_0(layout: QuantLayout) -> Any:
    g_, kb_, cols = layout.groups, layout.blocks, layout.cols
    tasks, ahead = TASKS, AHEAD

    @T.prim_func(private=True)
    def gemv_q8_0_vnni(
        x: T.Buffer((1, cols), "float32"),
        qs: T.Buffer((g_, kb_, 32, 64), "int8"),
        d: T.Buffer((g_, kb_, 64), "float16"),
        y: T.Buffer((1, g_, 64), "float32"),
    ) -> None:
        T.func_attr({"tirx.noalias": True})
        qf = T.decl_buffer((g_ * kb_ * 2048,), "int8", data=qs.data)
        df = T.decl_buffer((g_ * kb_ * 64,), "float16", data=d.data)
        xw = T.alloc_buffer((kb_, 3, 8), "int32", scope="global")
        xs = T.alloc_buffer((kb_, 2), "float32", scope="global")
        xb = T.alloc_buffer((kb_, 3), "int32", scope="global")
        prepare(x, kb_, xw, xs, xb)
        for task in T.parallel(tasks):
            acc = T.decl_buffer((64,), "float32", scope="global")
            a32 = T.decl_buffer((12, 16), "int32", scope="global")
            for g in T.serial(task * g_ // tasks, (task + 1) * g_ // tasks):
                for o in T.unroll(4):
                    acc[T.ramp(o * 16, 1, 16)] = T.broadcast(T.float32(0), 16)
                for kb in T.serial(kb_):
                    nxt = g * kb_ + kb + ahead  # (past the end on the last groups: harmless)
                    _prefetch(qf, nxt * 2048, 32)
                    _prefetch(df, nxt * 64, 2)
                    for a in T.unroll(12):
                        a32[a, T.ramp(0, 1, 16)] = T.broadcast(T.int32(0), 16)
                    for q in T.serial(8):
                        v = [qs[g, kb, q * 4 + i, T.ramp(0, 1, 64)] for i in range(4)]
                        for o in T.unroll(4):
                            # w + 128 as unsigned bytes; xb takes the 128s back out
                            u = T.bitwise_xor(
                                T.reinterpret("uint8x64", _quads(v, o)),
                                T.broadcast(T.uint8(128), 64),
                            )
                            for k in T.unroll(3):
                                a32[k * 4 + o, T.ramp(0, 1, 16)] = _dpbusd(
                                    a32[k * 4 + o, T.ramp(0, 1, 16)], u, xw[kb, k, q]
                                )
                    for o in T.unroll(4):
                        # digits combined in floats: the exact sum can pass 2**31
                        f = (
                            T.Cast(
                                "float32x16",
                                a32[o, T.ramp(0, 1, 16)] - T.broadcast(xb[kb, 0], 16),
                            )
                            + T.Cast(
                                "float32x16",
                                a32[4 + o, T.ramp(0, 1, 16)] - T.broadcast(xb[kb, 1], 16),
                            )
                            * T.broadcast(T.float32(128), 16)
                            + T.Cast(
                                "float32x16",
                                a32[8 + o, T.ramp(0, 1, 16)] - T.broadcast(xb[kb, 2], 16),
                            )
                            * T.broadcast(T.float32(16384), 16)
                        )
                        acc[T.ramp(o * 16, 1, 16)] = (
                            acc[T.ramp(o * 16, 1, 16)]
                            + T.Cast("float32x16", d[g, kb, T.ramp(o * 16, 1, 16)])
                            * T.broadcast(xs[kb, 0], 16)
                            * f
                        )
                for o in T.unroll(4):
                    y[0, g, T.ramp(o * 16, 1, 16)] = acc[T.ramp(o * 16, 1, 16)]

    return gemv_q8_0_vnni


def _q4_1(layout: QuantLayout) -> Any:
    g_, kb_, cols = layout.groups, layout.blocks, layout.cols
    tasks, ahead = TASKS, AHEAD

    @T.prim_func(private=True)
    def gemv_q4_1_vnni(
        x: T.Buffer((1, cols), "float32"),
        qs: T.Buffer((g_, kb_, 16, 64), "uint8"),
        d: T.Buffer((g_, kb_, 64), "float16"),
        m: T.Buffer((g_, kb_, 64), "float16"),
        y: T.Buffer((1, g_, 64), "float32"),
    ) -> None:
        T.func_attr({"tirx.noalias": True})
        qf = T.decl_buffer((g_ * kb_ * 1024,), "uint8", data=qs.data)
        df = T.decl_buffer((g_ * kb_ * 64,), "float16", data=d.data)
        mf = T.decl_buffer((g_ * kb_ * 64,), "float16", data=m.data)
        # per block: digit k of columns 4q .. 4q+3 as one 32-bit word, and s, sum(x)
        xw = T.alloc_buffer((kb_, 3, 8), "int32", scope="global")
        xs = T.alloc_buffer((kb_, 2), "float32", scope="global")
        xb = T.alloc_buffer((kb_, 3), "int32", scope="global")
        prepare(x, kb_, xw, xs, xb)
        for task in T.parallel(tasks):
            acc = T.decl_buffer((64,), "float32", scope="global")
            a32 = T.decl_buffer((12, 16), "int32", scope="global")
            for g in T.serial(task * g_ // tasks, (task + 1) * g_ // tasks):
                for o in T.unroll(4):
                    acc[T.ramp(o * 16, 1, 16)] = T.broadcast(T.float32(0), 16)
                for kb in T.serial(kb_):
                    nxt = g * kb_ + kb + ahead  # (past the end on the last groups: harmless)
                    _prefetch(qf, nxt * 1024, 16)
                    _prefetch(df, nxt * 64, 2)
                    _prefetch(mf, nxt * 64, 2)
                    for a in T.unroll(12):
                        a32[a, T.ramp(0, 1, 16)] = T.broadcast(T.int32(0), 16)
                    for q in T.serial(4):
                        v = [qs[g, kb, q * 4 + i, T.ramp(0, 1, 64)] for i in range(4)]
                        for o in T.unroll(4):
                            w = _quads(v, o)
                            lo = T.bitwise_and(w, T.broadcast(T.uint8(15), 64))
                            hi = T.shift_right(w, T.broadcast(T.uint8(4), 64))
                            for k in T.unroll(3):
                                a32[k * 4 + o, T.ramp(0, 1, 16)] = _dpbusd(
                                    _dpbusd(a32[k * 4 + o, T.ramp(0, 1, 16)], lo, xw[kb, k, q]),
                                    hi,
                                    xw[kb, k, q + 4],
                                )
                    for o in T.unroll(4):
                        s32 = (
                            a32[o, T.ramp(0, 1, 16)]
                            + T.shift_left(a32[4 + o, T.ramp(0, 1, 16)], T.broadcast(7, 16))
                            + T.shift_left(a32[8 + o, T.ramp(0, 1, 16)], T.broadcast(14, 16))
                        )
                        acc[T.ramp(o * 16, 1, 16)] = (
                            acc[T.ramp(o * 16, 1, 16)]
                            + T.Cast("float32x16", d[g, kb, T.ramp(o * 16, 1, 16)])
                            * T.broadcast(xs[kb, 0], 16)
                            * T.Cast("float32x16", s32)
                            + T.Cast("float32x16", m[g, kb, T.ramp(o * 16, 1, 16)])
                            * T.broadcast(xs[kb, 1], 16)
                        )
                for o in T.unroll(4):
                    y[0, g, T.ramp(o * 16, 1, 16)] = acc[T.ramp(o * 16, 1, 16)]

    return gemv_q4_1_vnni
