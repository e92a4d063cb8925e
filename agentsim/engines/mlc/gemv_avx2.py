# mypy: disable-error-code="valid-type,untyped-decorator"
"""One-token matmuls for AVX2 CPUs: Q4_1 through the byte dot product (kept exact), Q8_0.

On a CPU without AVX-512 the float GEMV (``gemv_prefetch.gemv_any``) is bound by compute,
not memory: per 8 weights it zero-extends, masks, converts and multiplies (Zen 3, one
thread: SmolLM2's Q4_1 matrices at ~6 GB/s against ~13 GB/s of read bandwidth). Here the
4-bit levels meet the activations as integers, 32 products per ``vpmaddubsw``:

* each 32-column block of ``x`` becomes integers ``X = round(x / s)``, ``s = max|x| / 2**20``,
  written as three balanced base-128 digits, ``X = D0 + 128 D1 + 16384 D2``, ``|Dk| <= 64``.
  The only rounding is ``x -> X s`` (at most ``2**-21`` of the block's largest ``|x|``), well
  inside what float32 sums of the same products lose; nothing is cut to 8 bits;
* the levels (0..15) of columns ``j`` and ``j + 16`` of a row share a byte: unpacked next
  to each other, ``vpmaddubsw`` against that column pair's digits gives a 16-bit partial
  sum per row, and the 16 of a block stay within 16 bits (``16 * 15 * 128 = 30720``);
* per block the three digit sums are combined exactly in 32 bits, converted once and
  scaled: ``y += d * s * S + m * sum(x)``.

Rows go 32 at a time (six 16-bit accumulators and their operands fit AVX2's 16 registers);
each block's weights are prefetched ``AHEAD`` blocks ahead, as in ``gemv_prefetch``.

Q8_0 (the LM heads) stays in floats: with signed 8-bit weights no AVX2 integer product
beats the float one exactly (``vpmaddubsw`` needs an unsigned operand, and the 16-bit sums
of 8-bit weights would have to be widened after every column pair). Its kernel here only
orders the work for 16 registers (see ``_q8_0``): SmolLM2's 49152x576 head 1.3x faster
from memory, decode +7-9% (Zen 3, in-process A/B).
"""

from __future__ import annotations

from typing import Any

from tvm.script import tirx as T

from agentsim.engines.mlc.gemv_prefetch import _prefetch
from agentsim.engines.mlc.quants import QuantLayout

#: blocks (1 KiB of nibbles for 64 rows) the prefetch runs ahead of the loads
AHEAD = 8
#: parallel tasks per call, each a contiguous run of 64-row groups (see gemv_prefetch)
TASKS = 8
#: |X| <= 2**20 (three base-128 digits, the top one at most 64)
X_SCALE = float(2**20)


def current_cpu_has(feature: str) -> bool | None:
    """Whether the current target (``tvm.target.Target.current``) has an LLVM CPU
    ``feature``; None when there is no current target or it is not a CPU."""
    from tvm.target import Target, codegen

    target = Target.current(allow_none=True)
    if target is None or target.kind.name != "llvm":
        return None
    return bool(codegen.target_has_features(feature, target))


def supports(layout: QuantLayout) -> bool:
    """Q4_1 or Q8_0 in groups of 64 rows, for a current target that has AVX2 but not
    AVX-512 (there the other kernels already read at memory speed)."""
    if layout.quant not in ("q4_1", "q8_0") or layout.lanes != 64:
        return False
    return bool(current_cpu_has("avx2")) and not current_cpu_has("avx512f")


@T.macro
def digits(x: Any, kb: Any, xi: Any, xs: Any) -> None:
    """Block ``kb`` of ``x`` as integers: ``xi[1 + k, j]`` the digit ``k`` of column ``j``'s
    ``X``, ``xs[kb]`` = (s, sum(x)). Shared with ``gemv_vnni``."""
    st = T.decl_buffer((3,), "float32", scope="global")  # max|x|, 1/s, sum
    st[0] = T.float32(0)
    st[2] = T.float32(0)
    for j in T.serial(32):
        st[0] = T.max(st[0], T.fabs(x[0, kb * 32 + j]))
        st[2] = st[2] + x[0, kb * 32 + j]
    st[1] = T.if_then_else(st[0] > T.float32(0), T.float32(X_SCALE) / st[0], T.float32(0))
    xs[kb, 0] = st[0] * T.float32(1.0 / X_SCALE)
    xs[kb, 1] = st[2]
    for j in T.vectorized(32):
        xi[0, j] = T.Cast("int32", T.round(x[0, kb * 32 + j] * st[1]))
        xi[1, j] = T.bitwise_and(xi[0, j] + 64, 127) - 64
        xi[0, j] = T.shift_right(xi[0, j] - xi[1, j], 7)
        xi[2, j] = T.bitwise_and(xi[0, j] + 64, 127) - 64
        xi[3, j] = T.shift_right(xi[0, j] - xi[2, j], 7)


def _unpack(lo: Any, hi: Any, upper: int) -> Any:
    # vpunpck{l,h}bw: within each 128-bit lane, byte i of ``lo`` next to byte i of ``hi``.
    # Lanes of the result: rows upper*8 + (0..7) (low 128 bits), 16 + upper*8 + (0..7).
    idx = []
    for lane in (0, 16):
        for i in range(8):
            idx += [lane + upper * 8 + i, 32 + lane + upper * 8 + i]
    return T.Shuffle([lo, hi], idx)


def _widen(v: Any, part: int) -> Any:
    """Rows of 8 lanes of a 16-bit vector (``part`` 0 / 1: its low / high 128 bits) as int32."""
    return T.Cast("int32x8", T.Shuffle([v], list(range(part * 8, part * 8 + 8))))


def _k_u(k: int, u: int) -> int:
    """Accumulator of digit ``k``, unpack half ``u``."""
    return k * 2 + u


def _pair(word: Any) -> Any:
    """A 16-bit digit pair in every one of 16 lanes, as 32 bytes."""
    return T.reinterpret("int8x32", T.broadcast(word, 16))


def _maddubs(a: Any, b: Any) -> Any:
    return T.call_llvm_pure_intrin("int16x16", "llvm.x86.avx2.pmadd.ub.sw", a, b)


def gemv(layout: QuantLayout) -> Any:
    """``y[1, G, 64] = x[1, K] @ W.T`` for a layout this module ``supports``."""
    if layout.quant == "q8_0":
        return _q8_0(layout.groups, layout.blocks, layout.cols)
    return _q4_1(layout)


def _q8_0(g_: int, kb_: int, cols: int) -> Any:
    """Q8_0 in floats, as ``gemv_prefetch._q8_0`` but ordered for 16 registers: per column
    one broadcast of ``x`` and 8 independent FMAs, one per 8 rows (the AVX-512 order, two
    chains of 16 columns per 16 rows, left LLVM two dependent FMA chains per 8 rows here,
    and spills)."""
    ahead, tasks = AHEAD, TASKS

    @T.prim_func(private=True)
    def gemv_q8_0_avx2(
        x: T.Buffer((1, cols), "float32"),
        qs: T.Buffer((g_, kb_, 32, 64), "int8"),
        d: T.Buffer((g_, kb_, 64), "float16"),
        y: T.Buffer((1, g_, 64), "float32"),
    ) -> None:
        T.func_attr({"tirx.noalias": True})
        qf = T.decl_buffer((g_ * kb_ * 2048,), "int8", data=qs.data)
        df = T.decl_buffer((g_ * kb_ * 64,), "float16", data=d.data)
        for task in T.parallel(tasks):
            acc = T.decl_buffer((64,), "float32", scope="global")
            t = T.decl_buffer((64,), "float32", scope="global")
            for g in T.serial(task * g_ // tasks, (task + 1) * g_ // tasks):
                for v in T.unroll(8):
                    acc[T.ramp(v * 8, 1, 8)] = T.broadcast(T.float32(0), 8)
                for kb in T.serial(kb_):
                    nxt = g * kb_ + kb + ahead
                    _prefetch(qf, nxt * 2048, 32)
                    _prefetch(df, nxt * 64, 2)
                    for v in T.unroll(8):
                        t[T.ramp(v * 8, 1, 8)] = T.broadcast(T.float32(0), 8)
                    for j in T.serial(32):
                        for v in T.unroll(8):
                            t[T.ramp(v * 8, 1, 8)] = t[T.ramp(v * 8, 1, 8)] + T.broadcast(
                                x[0, kb * 32 + j], 8
                            ) * T.Cast("float32x8", qs[g, kb, j, T.ramp(v * 8, 1, 8)])
                    for v in T.unroll(8):
                        acc[T.ramp(v * 8, 1, 8)] = (
                            acc[T.ramp(v * 8, 1, 8)]
                            + T.Cast("float32x8", d[g, kb, T.ramp(v * 8, 1, 8)])
                            * t[T.ramp(v * 8, 1, 8)]
                        )
                for v in T.unroll(8):
                    y[0, g, T.ramp(v * 8, 1, 8)] = acc[T.ramp(v * 8, 1, 8)]

    return gemv_q8_0_avx2


def _q4_1(layout: QuantLayout) -> Any:
    g_, kb_, cols = layout.groups, layout.blocks, layout.cols
    tasks, ahead = TASKS, AHEAD

    @T.macro
    def finish(
        a16: Any, acc: Any, d: Any, m: Any, xs: Any, g: Any, kb: Any, h: Any, u: int, p: int
    ) -> None:
        # rows h*32 + p*16 + u*8 + (0..7): digit sums combined exactly, converted, scaled
        s32 = (
            _widen(a16[_k_u(0, u), T.ramp(0, 1, 16)], p)
            + T.shift_left(_widen(a16[_k_u(1, u), T.ramp(0, 1, 16)], p), T.broadcast(7, 8))
            + T.shift_left(_widen(a16[_k_u(2, u), T.ramp(0, 1, 16)], p), T.broadcast(14, 8))
        )
        acc[T.ramp(h * 32 + p * 16 + u * 8, 1, 8)] = (
            acc[T.ramp(h * 32 + p * 16 + u * 8, 1, 8)]
            + T.Cast("float32x8", d[g, kb, T.ramp(h * 32 + p * 16 + u * 8, 1, 8)])
            * T.broadcast(xs[kb, 0], 8)
            * T.Cast("float32x8", s32)
            + T.Cast("float32x8", m[g, kb, T.ramp(h * 32 + p * 16 + u * 8, 1, 8)])
            * T.broadcast(xs[kb, 1], 8)
        )

    @T.prim_func(private=True)
    def gemv_q4_1_avx2(
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
        # per block: the digit pairs of columns (j, j+16) as 16-bit words, s and sum(x)
        xw = T.alloc_buffer((kb_, 3, 16), "int16", scope="global")
        xs = T.alloc_buffer((kb_, 2), "float32", scope="global")
        for kb in T.serial(kb_):
            xi = T.decl_buffer((4, 32), "int32", scope="global")  # X, then its digits
            digits(x, kb, xi, xs)
            for k in T.unroll(3):
                for j in T.vectorized(16):
                    xw[kb, k, j] = T.Cast(
                        "int16",
                        T.bitwise_or(
                            T.bitwise_and(xi[k + 1, j], 255),
                            T.shift_left(T.bitwise_and(xi[k + 1, j + 16], 255), 8),
                        ),
                    )
        for task in T.parallel(tasks):
            acc = T.decl_buffer((64,), "float32", scope="global")
            a16 = T.decl_buffer((6, 16), "int16", scope="global")
            for g in T.serial(task * g_ // tasks, (task + 1) * g_ // tasks):
                # half h: rows h*32 .. h*32+31 over all blocks (with the halves inside the
                # block loop, LLVM hoists the digit loads out of them and spills them)
                for h in T.serial(2):
                    for v in T.unroll(4):
                        acc[T.ramp(h * 32 + v * 8, 1, 8)] = T.broadcast(T.float32(0), 8)
                    for kb in T.serial(kb_):
                        nxt = g * kb_ + kb + ahead  # (past the end on the last groups: harmless)
                        _prefetch(qf, nxt * 1024, 16)
                        _prefetch(df, nxt * 64 + h * 32, 1)
                        _prefetch(mf, nxt * 64 + h * 32, 1)
                        for a in T.unroll(6):
                            a16[a, T.ramp(0, 1, 16)] = T.broadcast(T.int16(0), 16)
                        for j in T.serial(16):  # (unrolled, LLVM spills the operands)
                            v8 = qs[g, kb, j, T.ramp(h * 32, 1, 32)]
                            lo = T.bitwise_and(v8, T.broadcast(T.uint8(15), 32))
                            hi = T.shift_right(v8, T.broadcast(T.uint8(4), 32))
                            for k in T.unroll(3):
                                a16[k * 2, T.ramp(0, 1, 16)] = a16[
                                    k * 2, T.ramp(0, 1, 16)
                                ] + _maddubs(_unpack(lo, hi, 0), _pair(xw[kb, k, j]))
                                a16[k * 2 + 1, T.ramp(0, 1, 16)] = a16[
                                    k * 2 + 1, T.ramp(0, 1, 16)
                                ] + _maddubs(_unpack(lo, hi, 1), _pair(xw[kb, k, j]))
                        finish(a16, acc, d, m, xs, g, kb, h, 0, 0)
                        finish(a16, acc, d, m, xs, g, kb, h, 0, 1)
                        finish(a16, acc, d, m, xs, g, kb, h, 1, 0)
                        finish(a16, acc, d, m, xs, g, kb, h, 1, 1)
                for v in T.unroll(8):
                    y[0, g, T.ramp(v * 8, 1, 8)] = acc[T.ramp(v * 8, 1, 8)]

    return gemv_q4_1_avx2
