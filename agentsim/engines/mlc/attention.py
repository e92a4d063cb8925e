# ruff: noqa: B023  (TVMScript evaluates these lambdas while parsing the loop body)
"""Faster CPU attention kernels for TVM's paged KV cache (same signatures as its reference ones).

TVM's CPU kernels are serial and scalar. These give every (query token, KV head) pair its own
thread-pool slot and serve all query heads of that KV head from one read of each key/value
row (GQA), go a page (16 rows) at a time, rescale the online softmax once per page with a
vectorised polynomial ``exp2``, and keep the head dimension in SIMD registers. RoPE is applied before
the cache (``RopeMode.NORMAL``), so the kernels ignore ``rotary_mode``. Sliding windows are
not supported (the model definition never enables them).
"""

from __future__ import annotations

import math
from typing import Any

from tvm.script import tirx as T

LOG2E = math.log2(math.e)
NEG = -5e4


def exp2(x: Any) -> Any:
    """``2**x`` as plain arithmetic, so that LLVM vectorises it (``exp2f`` calls do not).

    ``x = n + f`` with integer ``n`` and ``|f| <= 0.5``; ``2**f`` by its degree-6 Taylor
    polynomial (relative error < 1e-7); ``2**n`` by building the float's exponent bits.
    """
    x = T.max(x, T.float32(-125.0))
    n = T.floor(x + T.float32(0.5))
    f = (x - n) * T.float32(math.log(2.0))
    p = T.float32(1.0 / 720)
    for c in (1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0):
        p = p * f + T.float32(c)
    bits = T.shift_left(T.Cast("int32", n) + 127, 23)
    return p * T.reinterpret("float32", bits)


def _kernels(h_kv: int, h_q: int, d: int, page: int, softcap: float = 0.0) -> dict[str, Any]:
    group = h_q // h_kv
    # Gemma 2's soft-capping, s -> cap * tanh(s / cap), on the log2-scaled score sc = s * LOG2E
    cap2 = float(softcap) * LOG2E
    capped = softcap > 0
    vec = math.gcd(d, 16)  # SIMD width of the q.k dot products (AVX-512: 16 floats)

    @T.macro  # type: ignore[untyped-decorator]
    def attend(
        q_row: Any,
        hk: Any,
        allowed: Any,
        qbuf: Any,
        kv: Any,
        output: Any,
        lse: Any,
        sm_scale: Any,
        page_of: Any,
        k_at: Any,
        v_at: Any,
    ) -> None:
        # All query heads of one KV head together: each key/value row is loaded once.
        with T.sblock("attend"):
            qv = T.sblock_alloc_buffer((group, d), "float32")
            acc = T.sblock_alloc_buffer((group, d), "float32")
            sc = T.sblock_alloc_buffer((group, page), "float32")
            st = T.sblock_alloc_buffer((group, 6), "float32")  # m, l, blk max, -, new m, p
            part = T.sblock_alloc_buffer((group, vec), "float32")
            for g in T.serial(group):
                for i in T.vectorized(d):
                    qv[g, i] = qbuf[q_row, hk * group + g, i] * sm_scale * LOG2E
                    acc[g, i] = T.float32(0)
                st[g, 0] = T.float32(NEG)
                st[g, 1] = T.float32(1)
            for blk in T.serial((allowed + page - 1) // page):
                for t in T.serial(page):
                    for g in T.serial(group):
                        sc[g, t] = T.float32(NEG)
                    if blk * page + t < allowed:
                        # q.k for all heads of the group: each key chunk is loaded once and
                        # multiplied as a SIMD vector, then a tree of halving adds sums it
                        for g in T.serial(group):
                            for v in T.vectorized(vec):
                                part[g, v] = T.float32(0)
                        for c in T.unroll(d // vec):
                            for g in T.unroll(group):
                                for v in T.vectorized(vec):
                                    part[g, v] = part[g, v] + qv[g, c * vec + v] * k_at(
                                        kv, page_of(blk), blk * page + t, hk, c * vec + v
                                    )
                        for g in T.serial(group):
                            if vec >= 16:
                                for v in T.vectorized(8):
                                    part[g, v] = part[g, v] + part[g, v + 8]
                            if vec >= 8:
                                for v in T.vectorized(4):
                                    part[g, v] = part[g, v] + part[g, v + 4]
                            if vec >= 4:
                                for v in T.vectorized(2):
                                    part[g, v] = part[g, v] + part[g, v + 2]
                            if vec >= 2:
                                part[g, 0] = part[g, 0] + part[g, 1]
                            sc[g, t] = part[g, 0]
                            if capped:
                                sc[g, t] = T.float32(cap2) * T.tanh(sc[g, t] / T.float32(cap2))
                for g in T.serial(group):
                    st[g, 2] = T.float32(NEG)
                    for t in T.serial(page):
                        st[g, 2] = T.max(st[g, 2], sc[g, t])
                    st[g, 4] = T.max(st[g, 0], st[g, 2])
                    st[g, 5] = exp2(st[g, 0] - st[g, 4])
                    st[g, 1] = st[g, 1] * st[g, 5]
                    for i in T.vectorized(d):
                        acc[g, i] = acc[g, i] * st[g, 5]
                    # one SIMD exp2 for the whole page (masked rows underflow to ~0)
                    for t in T.vectorized(page):
                        sc[g, t] = exp2(sc[g, t] - st[g, 4])
                    for t in T.serial(page):
                        st[g, 1] = st[g, 1] + sc[g, t]
                    st[g, 0] = st[g, 4]
                for t in T.serial(page):
                    if blk * page + t < allowed:
                        for g in T.serial(group):
                            for i in T.vectorized(d):
                                acc[g, i] = acc[g, i] + sc[g, t] * v_at(
                                    kv, page_of(blk), blk * page + t, hk, i
                                )
            for g in T.serial(group):
                for i in T.vectorized(d):
                    output[q_row, hk * group + g, i] = acc[g, i] / st[g, 1]
                lse[q_row, hk * group + g] = st[g, 0] + T.log2(st[g, 1])

    @T.prim_func(s_tir=True)  # type: ignore[untyped-decorator]
    def ragged(
        var_q: T.handle,
        var_q_indptr: T.handle,
        var_k: T.handle,
        var_v: T.handle,
        var_kv_indptr: T.handle,
        var_q_rope_position: T.handle,
        var_k_rope_pos_offset: T.handle,
        var_output: T.handle,
        var_lse: T.handle,
        causal: T.int32,
        rotary_mode: T.int32,
        rope_scale: T.float32,
        rope_theta: T.float32,
        sm_scale: T.float32,
    ) -> None:
        batch_size = T.int32()
        qo_len = T.int32()
        kv_len = T.int32()
        qi_off = T.int32()
        kvi_off = T.int32()
        qr_off = T.int32()
        kr_off = T.int32()
        q = T.match_buffer(var_q, (qo_len, h_q, d), "float32")
        q_indptr = T.match_buffer(var_q_indptr, (batch_size + 1,), "int32", elem_offset=qi_off)
        k = T.match_buffer(var_k, (kv_len, h_kv, d), "float32")
        v = T.match_buffer(var_v, (kv_len, h_kv, d), "float32")
        kv_indptr = T.match_buffer(var_kv_indptr, (batch_size + 1,), "int32", elem_offset=kvi_off)
        _qr = T.match_buffer(var_q_rope_position, (qo_len,), "int32", elem_offset=qr_off)
        _kr = T.match_buffer(var_k_rope_pos_offset, (batch_size,), "int32", elem_offset=kr_off)
        output = T.match_buffer(var_output, (qo_len, h_q, d), "float32")
        lse = T.match_buffer(var_lse, (qo_len, h_q), "float32")
        for b in T.serial(batch_size):
            q0: T.let[T.int32] = q_indptr[b]
            n_q: T.let[T.int32] = q_indptr[b + 1] - q0
            k0: T.let[T.int32] = kv_indptr[b]
            n_kv: T.let[T.int32] = kv_indptr[b + 1] - k0
            for job in T.parallel(n_q * h_kv):
                r: T.let[T.int32] = job // h_kv
                h: T.let[T.int32] = job % h_kv
                allowed: T.let[T.int32] = T.if_then_else(
                    causal > 0, T.min(n_kv - n_q + r + 1, n_kv), n_kv
                )
                attend(
                    q0 + r,
                    h,
                    allowed,
                    q,
                    (k, v),
                    output,
                    lse,
                    sm_scale,
                    lambda blk: k0,
                    lambda kv_, base, row, hk, i: kv_[0][base + row, hk, i],
                    lambda kv_, base, row, hk, i: kv_[1][base + row, hk, i],
                )

    @T.prim_func(s_tir=True)  # type: ignore[untyped-decorator]
    def paged_prefill(
        var_q: T.handle,
        var_q_indptr: T.handle,
        var_pages: T.handle,
        var_page_indptr: T.handle,
        var_page_values: T.handle,
        var_length_info: T.handle,
        var_k_rope_pos_offset: T.handle,
        var_q_rope_position: T.handle,
        var_output: T.handle,
        var_lse: T.handle,
        causal: T.int32,
        rotary_mode: T.int32,
        rope_scale: T.float32,
        rope_theta: T.float32,
        sm_scale: T.float32,
    ) -> None:
        batch_size = T.int32()
        total_len = T.int32()
        nnz_pages = T.int32()
        max_num_pages = T.int32()
        qi_off = T.int32()
        pi_off = T.int32()
        pv_off = T.int32()
        kr_off = T.int32()
        qr_off = T.int32()
        li_off = T.int32()
        q = T.match_buffer(var_q, (total_len, h_q, d), "float32")
        q_indptr = T.match_buffer(var_q_indptr, (batch_size + 1,), "int32", elem_offset=qi_off)
        pages = T.match_buffer(var_pages, (max_num_pages, 2, h_kv, page, d), "float32")
        page_indptr = T.match_buffer(
            var_page_indptr, (batch_size + 1,), "int32", elem_offset=pi_off
        )
        page_values = T.match_buffer(var_page_values, (nnz_pages,), "int32", elem_offset=pv_off)
        length_info = T.match_buffer(var_length_info, (batch_size,), "int32", elem_offset=li_off)
        _kr = T.match_buffer(var_k_rope_pos_offset, (batch_size,), "int32", elem_offset=kr_off)
        _qr = T.match_buffer(var_q_rope_position, (total_len,), "int32", elem_offset=qr_off)
        output = T.match_buffer(var_output, (total_len, h_q, d), "float32")
        lse = T.match_buffer(var_lse, (total_len, h_q), "float32")
        for b in T.serial(batch_size):
            q0: T.let[T.int32] = q_indptr[b]
            n_q: T.let[T.int32] = q_indptr[b + 1] - q0
            p0: T.let[T.int32] = page_indptr[b]
            n_pages: T.let[T.int32] = page_indptr[b + 1] - p0
            n_kv: T.let[T.int32] = T.if_then_else(
                n_pages > 0, (n_pages - 1) * page + length_info[b], 0
            )
            for job in T.parallel(n_q * h_kv):
                r: T.let[T.int32] = job // h_kv
                h: T.let[T.int32] = job % h_kv
                allowed: T.let[T.int32] = T.if_then_else(
                    causal > 0, T.min(n_kv - n_q + r + 1, n_kv), n_kv
                )
                attend(
                    q0 + r,
                    h,
                    allowed,
                    q,
                    (pages,),
                    output,
                    lse,
                    sm_scale,
                    lambda blk: page_values[p0 + blk],
                    lambda kv_, pg, row, hk, i: kv_[0][pg, 0, hk, row % page, i],
                    lambda kv_, pg, row, hk, i: kv_[0][pg, 1, hk, row % page, i],
                )

    @T.prim_func(s_tir=True)  # type: ignore[untyped-decorator]
    def decode(
        q_handle: T.handle,
        pages_handle: T.handle,
        page_indptr_handle: T.handle,
        page_values_handle: T.handle,
        var_length_info: T.handle,
        k_rope_pos_offset_handle: T.handle,
        q_rope_position_handle: T.handle,
        output_handle: T.handle,
        lse_handle: T.handle,
        rotary_mode: T.int32,
        rope_scale: T.float32,
        rope_theta: T.float32,
        sm_scale: T.float32,
    ) -> None:
        B = T.int32()
        nnz_pages = T.int32()
        max_num_pages = T.int32()
        pi_off = T.int32()
        pv_off = T.int32()
        kr_off = T.int32()
        qr_off = T.int32()
        li_off = T.int32()
        q = T.match_buffer(q_handle, (B, h_q, d), "float32")
        pages = T.match_buffer(pages_handle, (max_num_pages, 2, h_kv, page, d), "float32")
        page_indptr = T.match_buffer(page_indptr_handle, (B + 1,), "int32", elem_offset=pi_off)
        page_values = T.match_buffer(page_values_handle, (nnz_pages,), "int32", elem_offset=pv_off)
        length_info = T.match_buffer(var_length_info, (B,), "int32", elem_offset=li_off)
        _kr = T.match_buffer(k_rope_pos_offset_handle, (B,), "int32", elem_offset=kr_off)
        _qr = T.match_buffer(q_rope_position_handle, (B,), "int32", elem_offset=qr_off)
        output = T.match_buffer(output_handle, (B, h_q, d), "float32")
        lse = T.match_buffer(lse_handle, (B, h_q), "float32")
        for job in T.parallel(B * h_kv):
            b: T.let[T.int32] = job // h_kv
            h: T.let[T.int32] = job % h_kv
            p0: T.let[T.int32] = page_indptr[b]
            n_pages: T.let[T.int32] = page_indptr[b + 1] - p0
            n_kv: T.let[T.int32] = T.if_then_else(
                n_pages > 0, (n_pages - 1) * page + length_info[b], 0
            )
            attend(
                b,
                h,
                n_kv,
                q,
                (pages,),
                output,
                lse,
                sm_scale,
                lambda blk: page_values[p0 + blk],
                lambda kv_, pg, row, hk, i: kv_[0][pg, 0, hk, row % page, i],
                lambda kv_, pg, row, hk, i: kv_[0][pg, 1, hk, row % page, i],
            )

    return {
        # names the KV cache module gives TVM's kernels in the exported IRModule
        "batch_prefill_ragged_kv": ragged,
        "batch_prefill_paged_kv_cpu": paged_prefill,
        "batch_decode_paged_kv_cpu": decode,
    }


def install(mod: Any, h_kv: int, h_q: int, d: int, page: int = 16, *, softcap: float = 0.0) -> Any:
    """Replace TVM's reference CPU attention kernels in ``mod`` with the ones above
    (``softcap`` > 0: scores soft-capped as Gemma 2's are)."""
    return replace_kernels(mod, _kernels(h_kv, h_q, d, page, softcap))


def replace_kernels(mod: Any, kernels: dict[str, Any]) -> Any:
    """Put each prim_func of ``kernels`` in place of ``mod``'s function of that name."""
    for name, func in kernels.items():
        gv = mod.get_global_var(name)
        old = mod[gv]
        new = func.with_attr("tirx.is_scheduled", True)
        if old.attrs is not None and "global_symbol" in old.attrs:
            new = new.with_attr("global_symbol", old.attrs["global_symbol"])
        mod.update_func(gv, new)
    return mod
