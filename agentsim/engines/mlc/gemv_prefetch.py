# mypy: disable-error-code="valid-type,untyped-decorator"
"""One-token matmul (decode GEMV) of Q4_0 / Q4_1 / Q8_0 matrices in groups of 64 rows,
written directly in TVMScript with software prefetch.

At one thread the TE-scheduled GEMV (``kernels._gemv_block_scaled``) streams weights at
~17-20 GB/s although the same kernel runs at ~28 GB/s from cache: the hardware prefetcher
does not run far enough ahead of it. These kernels ask for the block ``PREFETCH_BLOCKS``
ahead (its 1 KiB of nibbles or 2 KiB of Q8_0 bytes, and its scales) at the top of each
block (Q8_0 LM head 49152x576: 1.2x). The 4-bit kernels read each level
as the float ``1 + q/16`` (the nibble's bits put into the mantissa of 1.0: a shift and an
and-or per 16 weights, no int-to-float convert):

``sum_k x_k (q_k d + o) = 16 d sum_k x_k (1 + q_k/16) + (o - 16 d) sum_k x_k``

per 32-weight block, exactly (``o`` is Q4_1's ``m`` or Q4_0's ``-8 d``). Weights keep the
interleaved layout of ``quants.py`` (``qs[G, KB, 16, 64]``: byte ``j`` of a block holds
weight ``j`` in its low nibble and ``j + 16`` in its high nibble).
"""

from __future__ import annotations

from typing import Any

from tvm.script import tirx as T

from agentsim.engines.mlc.quants import QuantLayout

#: blocks (1 KiB of nibbles each for 64 rows) that the prefetch runs ahead of the loads.
#: Measured on Zen 5, 1 thread, 100 copies of 3072x576 (cold): 2 -> 67 us, 4 -> 55,
#: 8 -> 50, 16 -> 50; without prefetch 87; the TE kernel 63.
PREFETCH_BLOCKS = 8
LANES = 64


def supports(layout: QuantLayout) -> bool:
    return layout.quant in ("q4_0", "q4_1", "q8_0") and layout.lanes == LANES


def gemv(layout: QuantLayout) -> Any:
    """``y[1, G, 64] = x[1, K] @ W.T`` for a Q4_0 / Q4_1 / Q8_0 ``layout`` (``supports``)."""
    g_, kb_, cols = layout.groups, layout.blocks, layout.cols
    ahead = PREFETCH_BLOCKS
    if layout.quant == "q8_0":
        return _q8_0(g_, kb_, cols, ahead)
    if layout.quant == "q4_1":
        return _q4_1(g_, kb_, cols, ahead)
    return _q4_0(g_, kb_, cols, ahead)


def _q4_1(g_: int, kb_: int, cols: int, ahead: int) -> Any:
    @T.prim_func(private=True)
    def gemv_q4_1(
        x: T.Buffer((1, cols), "float32"),
        qs: T.Buffer((g_, kb_, 16, 64), "uint8"),
        d: T.Buffer((g_, kb_, 64), "float16"),
        m: T.Buffer((g_, kb_, 64), "float16"),
        y: T.Buffer((1, g_, 64), "float32"),
    ) -> None:
        T.func_attr({"tirx.noalias": True})
        xs = T.alloc_buffer((kb_,), "float32")
        qf = T.decl_buffer((g_ * kb_ * 1024,), "uint8", data=qs.data)
        df = T.decl_buffer((g_ * kb_ * 64,), "float16", data=d.data)
        mf = T.decl_buffer((g_ * kb_ * 64,), "float16", data=m.data)
        for kb in range(kb_):
            s = T.decl_buffer((1,), "float32", scope="local")
            s[0] = T.float32(0)
            for k in range(32):
                s[0] = s[0] + x[0, kb * 32 + k]
            xs[kb] = s[0]
        for g in T.parallel(g_):
            acc = T.decl_buffer((64,), "float32", scope="local")
            for v in T.unroll(4):
                acc[T.ramp(v * 16, 1, 16)] = T.broadcast(T.float32(0), 16)
            for kb in range(kb_):
                nxt = g * kb_ + kb + ahead  # (past the end on the last groups: harmless)
                for ln in T.unroll(16):
                    T.evaluate(
                        T.call_llvm_intrin(
                            "void",
                            "llvm.prefetch.p0",
                            T.address_of(qf[nxt * 1024 + ln * 64]),
                            0,
                            3,
                            1,
                        )
                    )
                for ln in T.unroll(2):
                    T.evaluate(
                        T.call_llvm_intrin(
                            "void",
                            "llvm.prefetch.p0",
                            T.address_of(df[nxt * 64 + ln * 32]),
                            0,
                            3,
                            1,
                        )
                    )
                    T.evaluate(
                        T.call_llvm_intrin(
                            "void",
                            "llvm.prefetch.p0",
                            T.address_of(mf[nxt * 64 + ln * 32]),
                            0,
                            3,
                            1,
                        )
                    )
                for v in T.unroll(4):
                    t = T.decl_buffer((32,), "float32", scope="local")
                    t[T.ramp(0, 1, 16)] = T.broadcast(T.float32(0), 16)
                    t[T.ramp(16, 1, 16)] = T.broadcast(T.float32(0), 16)
                    for j in T.unroll(16):
                        w = T.Cast("int32x16", qs[g, kb, j, T.ramp(v * 16, 1, 16)])
                        lo = (w << T.broadcast(19, 16)) & T.broadcast(0x780000, 16)
                        hi = (w << T.broadcast(15, 16)) & T.broadcast(0x780000, 16)
                        one = T.broadcast(0x3F800000, 16)
                        t[T.ramp(0, 1, 16)] = t[T.ramp(0, 1, 16)] + T.broadcast(
                            x[0, kb * 32 + j], 16
                        ) * T.reinterpret("float32x16", lo | one)
                        t[T.ramp(16, 1, 16)] = t[T.ramp(16, 1, 16)] + T.broadcast(
                            x[0, kb * 32 + 16 + j], 16
                        ) * T.reinterpret("float32x16", hi | one)
                    sc = T.Cast("float32x16", d[g, kb, T.ramp(v * 16, 1, 16)]) * T.broadcast(
                        T.float32(16), 16
                    )
                    off = T.Cast("float32x16", m[g, kb, T.ramp(v * 16, 1, 16)]) - sc
                    acc[T.ramp(v * 16, 1, 16)] = (
                        acc[T.ramp(v * 16, 1, 16)]
                        + sc * (t[T.ramp(0, 1, 16)] + t[T.ramp(16, 1, 16)])
                        + off * T.broadcast(xs[kb], 16)
                    )
            for v in T.unroll(4):
                y[0, g, T.ramp(v * 16, 1, 16)] = acc[T.ramp(v * 16, 1, 16)]

    return gemv_q4_1


def _q4_0(g_: int, kb_: int, cols: int, ahead: int) -> Any:
    @T.prim_func(private=True)
    def gemv_q4_0(
        x: T.Buffer((1, cols), "float32"),
        qs: T.Buffer((g_, kb_, 16, 64), "uint8"),
        d: T.Buffer((g_, kb_, 64), "float16"),
        y: T.Buffer((1, g_, 64), "float32"),
    ) -> None:
        T.func_attr({"tirx.noalias": True})
        xs = T.alloc_buffer((kb_,), "float32")
        qf = T.decl_buffer((g_ * kb_ * 1024,), "uint8", data=qs.data)
        df = T.decl_buffer((g_ * kb_ * 64,), "float16", data=d.data)
        for kb in range(kb_):
            s = T.decl_buffer((1,), "float32", scope="local")
            s[0] = T.float32(0)
            for k in range(32):
                s[0] = s[0] + x[0, kb * 32 + k]
            xs[kb] = s[0]
        for g in T.parallel(g_):
            acc = T.decl_buffer((64,), "float32", scope="local")
            for v in T.unroll(4):
                acc[T.ramp(v * 16, 1, 16)] = T.broadcast(T.float32(0), 16)
            for kb in range(kb_):
                nxt = g * kb_ + kb + ahead
                for ln in T.unroll(16):
                    T.evaluate(
                        T.call_llvm_intrin(
                            "void",
                            "llvm.prefetch.p0",
                            T.address_of(qf[nxt * 1024 + ln * 64]),
                            0,
                            3,
                            1,
                        )
                    )
                for ln in T.unroll(2):
                    T.evaluate(
                        T.call_llvm_intrin(
                            "void",
                            "llvm.prefetch.p0",
                            T.address_of(df[nxt * 64 + ln * 32]),
                            0,
                            3,
                            1,
                        )
                    )
                for v in T.unroll(4):
                    t = T.decl_buffer((32,), "float32", scope="local")
                    t[T.ramp(0, 1, 16)] = T.broadcast(T.float32(0), 16)
                    t[T.ramp(16, 1, 16)] = T.broadcast(T.float32(0), 16)
                    for j in T.unroll(16):
                        w = T.Cast("int32x16", qs[g, kb, j, T.ramp(v * 16, 1, 16)])
                        lo = (w << T.broadcast(19, 16)) & T.broadcast(0x780000, 16)
                        hi = (w << T.broadcast(15, 16)) & T.broadcast(0x780000, 16)
                        one = T.broadcast(0x3F800000, 16)
                        t[T.ramp(0, 1, 16)] = t[T.ramp(0, 1, 16)] + T.broadcast(
                            x[0, kb * 32 + j], 16
                        ) * T.reinterpret("float32x16", lo | one)
                        t[T.ramp(16, 1, 16)] = t[T.ramp(16, 1, 16)] + T.broadcast(
                            x[0, kb * 32 + 16 + j], 16
                        ) * T.reinterpret("float32x16", hi | one)
                    sc = T.Cast("float32x16", d[g, kb, T.ramp(v * 16, 1, 16)]) * T.broadcast(
                        T.float32(16), 16
                    )
                    # w = q d - 8 d = 16 d (1 + q/16) - 24 d
                    off = sc * T.broadcast(T.float32(-1.5), 16)
                    acc[T.ramp(v * 16, 1, 16)] = (
                        acc[T.ramp(v * 16, 1, 16)]
                        + sc * (t[T.ramp(0, 1, 16)] + t[T.ramp(16, 1, 16)])
                        + off * T.broadcast(xs[kb], 16)
                    )
            for v in T.unroll(4):
                y[0, g, T.ramp(v * 16, 1, 16)] = acc[T.ramp(v * 16, 1, 16)]

    return gemv_q4_0


def _q8_0(g_: int, kb_: int, cols: int, ahead: int) -> Any:
    @T.prim_func(private=True)
    def gemv_q8_0(
        x: T.Buffer((1, cols), "float32"),
        qs: T.Buffer((g_, kb_, 32, 64), "int8"),
        d: T.Buffer((g_, kb_, 64), "float16"),
        y: T.Buffer((1, g_, 64), "float32"),
    ) -> None:
        T.func_attr({"tirx.noalias": True})
        qf = T.decl_buffer((g_ * kb_ * 2048,), "int8", data=qs.data)
        df = T.decl_buffer((g_ * kb_ * 64,), "float16", data=d.data)
        for g in T.parallel(g_):
            acc = T.decl_buffer((64,), "float32", scope="local")
            for v in T.unroll(4):
                acc[T.ramp(v * 16, 1, 16)] = T.broadcast(T.float32(0), 16)
            for kb in range(kb_):
                nxt = g * kb_ + kb + ahead
                for ln in T.unroll(32):
                    T.evaluate(
                        T.call_llvm_intrin(
                            "void",
                            "llvm.prefetch.p0",
                            T.address_of(qf[nxt * 2048 + ln * 64]),
                            0,
                            3,
                            1,
                        )
                    )
                for ln in T.unroll(2):
                    T.evaluate(
                        T.call_llvm_intrin(
                            "void",
                            "llvm.prefetch.p0",
                            T.address_of(df[nxt * 64 + ln * 32]),
                            0,
                            3,
                            1,
                        )
                    )
                for v in T.unroll(4):
                    t = T.decl_buffer((32,), "float32", scope="local")
                    t[T.ramp(0, 1, 16)] = T.broadcast(T.float32(0), 16)
                    t[T.ramp(16, 1, 16)] = T.broadcast(T.float32(0), 16)
                    for j in T.unroll(16):
                        t[T.ramp(0, 1, 16)] = t[T.ramp(0, 1, 16)] + T.broadcast(
                            x[0, kb * 32 + j], 16
                        ) * T.Cast("float32x16", qs[g, kb, j, T.ramp(v * 16, 1, 16)])
                        t[T.ramp(16, 1, 16)] = t[T.ramp(16, 1, 16)] + T.broadcast(
                            x[0, kb * 32 + 16 + j], 16
                        ) * T.Cast("float32x16", qs[g, kb, 16 + j, T.ramp(v * 16, 1, 16)])
                    acc[T.ramp(v * 16, 1, 16)] = acc[T.ramp(v * 16, 1, 16)] + T.Cast(
                        "float32x16", d[g, kb, T.ramp(v * 16, 1, 16)]
                    ) * (t[T.ramp(0, 1, 16)] + t[T.ramp(16, 1, 16)])
            for v in T.unroll(4):
                y[0, g, T.ramp(v * 16, 1, 16)] = acc[T.ramp(v * 16, 1, 16)]

    return gemv_q8_0
