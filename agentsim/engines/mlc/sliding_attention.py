"""CPU attention kernels for the cache's sliding-window layers (Gemma 2/3 local layers).

TVM 0.27's reference kernel ``batch_prefill_paged_kv_cpu_sliding_window`` returns NaN once a
sequence holds a full window (it indexes a one-element rescale buffer by the head
dimension and reads an unset running maximum for masked keys), and both of its sliding
kernels run serially. These replace them, with the same signatures.

The window rule is positional, as in llama.cpp and Hugging Face: a query at position ``p``
sees keys at positions ``p - window < k <= p``. The cache hands these kernels the pages of
the last ``window`` cached tokens (``length_info`` rows: last-page length, offset of the
window in its first page, sink length) and the position of the chunk's first key
(``k_rope_pos_offset``); the new tokens' own keys come from the ragged kernel, which is
exact as long as a prefill chunk holds at most ``window`` tokens (``Runtime`` enforces it).
Jobs are (query row, KV head) pairs in parallel; all query heads of a KV head share each
key/value load; the head dimension is vectorised (q.k as SIMD partial sums, as in
``attention.py``), and the running sum is rescaled only when the running maximum grows.
"""

from __future__ import annotations

import math
from typing import Any

from tvm.script import tirx as T

from agentsim.engines.mlc.attention import exp2, replace_kernels

LOG2E = math.log2(math.e)
NEG = -5e4


def _kernels(
    h_kv: int, h_q: int, d: int, page: int, window: int, softcap: float = 0.0
) -> dict[str, Any]:
    group = h_q // h_kv
    cap2 = float(softcap) * LOG2E  # soft-capping on the log2-scaled score (see attention.py)
    capped = softcap > 0
    vec = math.gcd(d, 16)  # SIMD width of the q.k dot products (AVX-512: 16 floats)

    @T.macro  # type: ignore[untyped-decorator]
    def attend(
        q_row: Any,
        q_pos: Any,
        hk: Any,
        n_kv: Any,
        k_pos0: Any,
        offset: Any,
        p0: Any,
        qbuf: Any,
        pages: Any,
        page_values: Any,
        output: Any,
        lse: Any,
        sm_scale: Any,
    ) -> None:
        start: T.let[T.int32] = T.max(0, q_pos - window + 1 - k_pos0)
        with T.sblock("attend"):
            qv = T.sblock_alloc_buffer((group, d), "float32")
            acc = T.sblock_alloc_buffer((group, d), "float32")
            st = T.sblock_alloc_buffer((group, 5), "float32")  # m, l, dot, new m, p
            part = T.sblock_alloc_buffer((group, vec), "float32")
            for g in T.serial(group):
                for i in T.vectorized(d):
                    qv[g, i] = qbuf[q_row, hk * group + g, i] * sm_scale * LOG2E
                    acc[g, i] = T.float32(0)
                st[g, 0] = T.float32(NEG)
                st[g, 1] = T.float32(1)
            for j in T.serial(T.max(n_kv - start, 0)):
                so: T.let[T.int32] = start + j + offset
                pg: T.let[T.int32] = page_values[p0 + so // page]
                po: T.let[T.int32] = so % page
                # q.k for all heads of the group as SIMD vectors (each key chunk loaded
                # once), then a tree of halving adds
                for g in T.serial(group):
                    for v in T.vectorized(vec):
                        part[g, v] = T.float32(0)
                for c in T.unroll(d // vec):
                    for g in T.unroll(group):
                        for v in T.vectorized(vec):
                            part[g, v] = (
                                part[g, v] + qv[g, c * vec + v] * pages[pg, 0, hk, po, c * vec + v]
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
                    st[g, 2] = part[g, 0]
                    if capped:
                        st[g, 2] = T.float32(cap2) * T.tanh(st[g, 2] / T.float32(cap2))
                    st[g, 3] = T.max(st[g, 0], st[g, 2])
                    if st[g, 2] > st[g, 0]:  # a new running maximum: rescale what is summed
                        st[g, 4] = exp2(st[g, 0] - st[g, 3])
                        st[g, 1] = st[g, 1] * st[g, 4]
                        for i in T.vectorized(d):
                            acc[g, i] = acc[g, i] * st[g, 4]
                    st[g, 4] = exp2(st[g, 2] - st[g, 3])
                    st[g, 1] = st[g, 1] + st[g, 4]
                    for i in T.vectorized(d):
                        acc[g, i] = acc[g, i] + st[g, 4] * pages[pg, 1, hk, po, i]
                    st[g, 0] = st[g, 3]
            for g in T.serial(group):
                for i in T.vectorized(d):
                    output[q_row, hk * group + g, i] = acc[g, i] / st[g, 1]
                lse[q_row, hk * group + g] = st[g, 0] + T.log2(st[g, 1])

    @T.prim_func(s_tir=True)  # type: ignore[untyped-decorator]
    def prefill(
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
        length_info = T.match_buffer(var_length_info, (3, batch_size), "int32", elem_offset=li_off)
        k_pos = T.match_buffer(var_k_rope_pos_offset, (batch_size,), "int32", elem_offset=kr_off)
        q_pos = T.match_buffer(var_q_rope_position, (total_len,), "int32", elem_offset=qr_off)
        output = T.match_buffer(var_output, (total_len, h_q, d), "float32")
        lse = T.match_buffer(var_lse, (total_len, h_q), "float32")
        for b in T.serial(batch_size):
            q0: T.let[T.int32] = q_indptr[b]
            n_q: T.let[T.int32] = q_indptr[b + 1] - q0
            p0: T.let[T.int32] = page_indptr[b]
            n_pages: T.let[T.int32] = page_indptr[b + 1] - p0
            n_kv: T.let[T.int32] = T.if_then_else(
                n_pages > 0,
                (n_pages - 1) * page + length_info[0, b] - length_info[1, b] + length_info[2, b],
                0,
            )
            for job in T.parallel(n_q * h_kv):
                r: T.let[T.int32] = job // h_kv
                attend(
                    q0 + r,
                    q_pos[q0 + r],
                    job % h_kv,
                    n_kv,
                    k_pos[b],
                    length_info[1, b],
                    p0,
                    q,
                    pages,
                    page_values,
                    output,
                    lse,
                    sm_scale,
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
        length_info = T.match_buffer(var_length_info, (3, B), "int32", elem_offset=li_off)
        k_pos = T.match_buffer(k_rope_pos_offset_handle, (B,), "int32", elem_offset=kr_off)
        q_pos = T.match_buffer(q_rope_position_handle, (B,), "int32", elem_offset=qr_off)
        output = T.match_buffer(output_handle, (B, h_q, d), "float32")
        lse = T.match_buffer(lse_handle, (B, h_q), "float32")
        for job in T.parallel(B * h_kv):
            b: T.let[T.int32] = job // h_kv
            p0: T.let[T.int32] = page_indptr[b]
            n_pages: T.let[T.int32] = page_indptr[b + 1] - p0
            n_kv: T.let[T.int32] = T.if_then_else(
                n_pages > 0,
                (n_pages - 1) * page + length_info[0, b] - length_info[1, b] + length_info[2, b],
                0,
            )
            attend(
                b,
                q_pos[b],
                job % h_kv,
                n_kv,
                k_pos[b],
                length_info[1, b],
                p0,
                q,
                pages,
                page_values,
                output,
                lse,
                sm_scale,
            )

    return {
        "batch_prefill_paged_kv_cpu_sliding_window": prefill,
        "batch_decode_paged_kv_cpu_sliding_window": decode,
    }


def install(
    mod: Any, h_kv: int, h_q: int, d: int, window: int, page: int = 16, *, softcap: float = 0.0
) -> Any:
    """Replace TVM's sliding-window CPU attention kernels in ``mod`` with the ones above
    (``softcap`` > 0: scores soft-capped as Gemma 2's are)."""
    return replace_kernels(mod, _kernels(h_kv, h_q, d, page, window, softcap))
