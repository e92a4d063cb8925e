# mypy: disable-error-code="valid-type,untyped-decorator"
"""One-token matmuls (decode GEMV) of block-quantized matrices in groups of 64 rows, with
software prefetch.

At one thread a TE-scheduled GEMV (``kernels._gemv_block_scaled``) reads its weights from
memory at a fraction of the rate it runs at from cache (a 640x1024 Q4_K matrix: ~8 GB/s
against ~24; a 3072x576 Q4_1 one 17-20 against ~28): the hardware prefetcher does not run
far enough ahead, and TE cannot express a prefetch. These kernels ask for the weights a
fixed distance ahead of the loads (``llvm.prefetch``): ``gemv_any`` for every block format,
built with TVM's IR builder over ``dequant.Dequant``'s expressions (the number of planes
varies by format), the next block's lines spread over the current block's sub-blocks (a
burst of 128 prefetches stalls on the line-fill buffers); ``_q8_0`` in TVMScript for Q8_0
(the LM heads), which sums each block in two chains of 16 (49152x576 from memory: ~30 GB/s,
``gemv_any`` ~29).

The parallel loop runs over ``TASKS`` contiguous runs of row groups, not over the groups
themselves, and the per-task accumulators are ``global``-scope buffers: TVM 0.27 lowers a
``local`` buffer in a parallel loop's body to a ``TVMBackendAllocWorkspace``/``Free`` pair
per iteration (a ``global`` one of constant size to a stack slot), which cost ~0.13 us per
64-row group, ~15% of a 3072x576 Q4_1 GEMV at one thread (~25% of a Q8_0 one).
Weights keep the interleaved layout of ``quants.py``.
"""

from __future__ import annotations

from typing import Any

from tvm.script import tirx as T

from agentsim.engines.mlc.quants import QuantLayout

#: Q8_0 blocks (2 KiB for 64 rows) that ``_q8_0``'s prefetch runs ahead of the loads
#: (Zen 5, 1 thread, 49152x576 from memory: 8 -> ~30 GB/s, 16 or 32 -> ~25; into L2
#: instead of L1: ~25).
PREFETCH_BLOCKS = 8
LANES = 64
#: parallel tasks per call, each a contiguous run of row groups (TVM hands a thread pool
#: of n threads ~TASKS/n of them). Each task costs ~0.15 us at one thread; 8 keeps up to 8
#: threads busy. Zen 5, 576x576 Q4_1 from cache, 1 thread: 1 task 6.9 us, 8 tasks 8.1;
#: 2 threads: 1 task 7.5, 8 tasks 5.3.
TASKS = 8


def supports(layout: QuantLayout) -> bool:
    """Block formats (not f32/f16) in groups of 64 rows."""
    return not layout.format.is_float and layout.lanes == LANES


def gemv(layout: QuantLayout) -> Any:
    """``y[1, G, 64] = x[1, K] @ W.T`` for a ``layout`` this module ``supports``."""
    if layout.quant == "q8_0":
        return _q8_0(layout.groups, layout.blocks, layout.cols)
    return gemv_any(layout)


@T.macro
def _prefetch(buf: Any, start: Any, lines: int) -> None:
    """Ask for ``lines`` cache lines of ``buf`` from element ``start`` (a 64-byte line of
    bytes, or 32 halves)."""
    for ln in T.unroll(lines):
        T.evaluate(
            T.call_llvm_intrin(
                "void", "llvm.prefetch.p0", T.address_of(buf[start + ln * 64]), 0, 3, 1
            )
        )


def _q8_0(g_: int, kb_: int, cols: int) -> Any:
    ahead, tasks = PREFETCH_BLOCKS, TASKS

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
        for task in T.parallel(tasks):
            acc = T.decl_buffer((64,), "float32", scope="global")
            t = T.decl_buffer((128,), "float32", scope="global")
            for g in range(task * g_ // tasks, (task + 1) * g_ // tasks):
                for v in T.unroll(4):
                    acc[T.ramp(v * 16, 1, 16)] = T.broadcast(T.float32(0), 16)
                for kb in range(kb_):
                    nxt = g * kb_ + kb + ahead
                    _prefetch(qf, nxt * 2048, 32)
                    _prefetch(df, nxt * 64, 2)
                    for v in T.unroll(4):
                        t[T.ramp(v * 32, 1, 16)] = T.broadcast(T.float32(0), 16)
                        t[T.ramp(v * 32 + 16, 1, 16)] = T.broadcast(T.float32(0), 16)
                        for j in T.unroll(16):
                            t[T.ramp(v * 32, 1, 16)] = t[T.ramp(v * 32, 1, 16)] + T.broadcast(
                                x[0, kb * 32 + j], 16
                            ) * T.Cast("float32x16", qs[g, kb, j, T.ramp(v * 16, 1, 16)])
                            t[T.ramp(v * 32 + 16, 1, 16)] = t[
                                T.ramp(v * 32 + 16, 1, 16)
                            ] + T.broadcast(x[0, kb * 32 + 16 + j], 16) * T.Cast(
                                "float32x16", qs[g, kb, 16 + j, T.ramp(v * 16, 1, 16)]
                            )
                        acc[T.ramp(v * 16, 1, 16)] = acc[T.ramp(v * 16, 1, 16)] + T.Cast(
                            "float32x16", d[g, kb, T.ramp(v * 16, 1, 16)]
                        ) * (t[T.ramp(v * 32, 1, 16)] + t[T.ramp(v * 32 + 16, 1, 16)])
                for v in T.unroll(4):
                    y[0, g, T.ramp(v * 16, 1, 16)] = acc[T.ramp(v * 16, 1, 16)]

    return gemv_q8_0


#: bytes of a matrix's largest plane the prefetch of ``gemv_any`` runs ahead of the loads
#: (a Q4_K block's 8 KiB of nibbles for 64 rows: one block ahead; a Q4_1 block's 1 KiB: 8).
PREFETCH_BYTES = 8192
_LINE = 64


def gemv_any(layout: QuantLayout) -> Any:
    """The one-token matmul of any block format in groups of 64 rows, built with TVM's IR
    builder (the number of planes varies by format).

    Per sub-block ``scale * sum_k x_k level_k + offset * sum_k x_k``, as
    ``kernels._gemv_block_scaled``, with ``dequant.Dequant``'s expressions; here every
    plane is prefetched ``PREFETCH_BYTES`` ahead and the parallel loop runs over ``TASKS``
    runs of groups. Zen 5, 1 thread, from memory: 640x1024 Q4_K 20.5 us (TE 44), 3072x576
    Q4_1 45 us (the TVMScript kernel it replaced, with a burst of prefetches per block and
    4-bit levels made floats through their mantissa bits, 48-54).
    """
    import numpy as np
    from tvm.script.ir_builder import IRBuilder
    from tvm.tirx.script.builder import ir as B

    from agentsim.engines.mlc.dequant import Dequant

    fmt = layout.format
    g_, kb_, cols, bs, sub = layout.groups, layout.blocks, layout.cols, fmt.block, fmt.sub
    ns, tasks = bs // sub, TASKS
    specs = layout.params()
    per_block = [int(np.prod(shape[2:])) for _, shape, _ in specs]  # elements per (g, kb)
    widths = [np.dtype(dt).itemsize for _, _, dt in specs]
    ahead = max(1, PREFETCH_BYTES // max(n * w for n, w in zip(per_block, widths, strict=True)))
    with IRBuilder() as ib, B.prim_func(private=True):
        B.func_name(f"gemv_{layout.quant}")
        B.func_attr({"tirx.noalias": True})
        x = B.arg("x", B.buffer((1, cols), "float32"))
        bufs = [B.arg(name, B.buffer(shape, dt)) for name, shape, dt in specs]
        y = B.arg("y", B.buffer((1, g_, LANES), "float32"))
        dq = Dequant(layout, bufs)
        flats = [
            B.decl_buffer((g_ * kb_ * n,), dt, data=b.data)
            for (_, _, dt), b, n in zip(specs, bufs, per_block, strict=True)
        ]
        xs = B.alloc_buffer((kb_ * ns,), "float32", scope="global")
        with B.serial(0, kb_ * ns) as s:
            one = B.alloc_buffer((1,), "float32", scope="global")
            B.buffer_store(one, T.float32(0), [0])
            with B.serial(0, sub) as k:
                B.buffer_store(one, one[0] + x[0, s * sub + k], [0])
            B.buffer_store(xs, one[0], [s])
        with B.parallel(0, tasks) as task:
            acc = B.alloc_buffer((LANES,), "float32", scope="global")
            t = B.alloc_buffer((LANES,), "float32", scope="global")
            _any_task(B, layout, dq, x, y, xs, acc, t, flats, per_block, widths, ahead, task)
    return ib.get()


def _any_task(
    B: Any,
    layout: QuantLayout,
    dq: Any,
    x: Any,
    y: Any,
    xs: Any,
    acc: Any,
    t: Any,
    flats: list[Any],
    per_block: list[int],
    widths: list[int],
    ahead: int,
    task: Any,
) -> None:
    g_, kb_, bs, sub = layout.groups, layout.blocks, layout.block, layout.format.sub
    ns, tasks = bs // sub, TASKS
    with B.serial(task * g_ // tasks, (task + 1) * g_ // tasks) as g:
        with B.vectorized(0, LANES) as ln:
            B.buffer_store(acc, T.float32(0), [ln])
        with B.serial(0, kb_) as kb:
            nxt = g * kb_ + kb + ahead  # (past the end on the last groups: harmless)
            with B.serial(0, ns) as rs:
                # the next block's lines spread over the sub-blocks (a burst of 128
                # prefetches would stall on the line-fill buffers); a few lines past a
                # small plane's block are the block after it: harmless
                for flat, n, w in zip(flats, per_block, widths, strict=True):
                    per_line = _LINE // w
                    for j in range(-(-max(1, n * w // _LINE) // ns)):
                        B.evaluate(
                            T.call_llvm_intrin(
                                "void",
                                "llvm.prefetch.p0",
                                T.address_of(flat[nxt * n + (j * ns + rs) * per_line]),
                                0,
                                3,
                                1,
                            )
                        )
                with B.vectorized(0, LANES) as ln:
                    B.buffer_store(t, T.float32(0), [ln])
                with B.unroll(0, sub) as kk, B.vectorized(0, LANES) as ln:
                    lv = dq.level(g, kb, rs * sub + kk, ln)
                    B.buffer_store(t, t[ln] + x[0, kb * bs + rs * sub + kk] * lv, [ln])
                with B.vectorized(0, LANES) as ln:
                    v = dq.scale(g, kb, rs, ln) * t[ln]
                    if dq.has_offset():
                        v = v + dq.offset(g, kb, rs, ln) * xs[kb * ns + rs]
                    B.buffer_store(acc, acc[ln] + v, [ln])
        with B.vectorized(0, LANES) as ln:
            B.buffer_store(y, acc[ln], [0, g, ln])
