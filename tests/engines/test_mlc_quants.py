"""Every GGUF quantization type through the compiled kernels, against the ``gguf`` package.

The reference is ``gguf.quants.dequantize`` (the gguf package's own dequantisers, not ours)
followed by a numpy matmul or row lookup. Blocks are random bytes with finite f16 scales,
so every bit pattern of the quants is exercised, for types gguf cannot quantize too.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from tiny_gguf import TINY, random_blocks, write_tiny_gguf

from agentsim.engines.mlc.quants import (
    FORMATS,
    GGUF_TO_KERNEL,
    QuantLayout,
    gguf_rows,
    repack,
)

FLOATS = ("F32", "F16", "BF16")
BLOCK_TYPES = [t for t in GGUF_TO_KERNEL if t not in FLOATS]
COLS = 512  # two K-quant super-blocks, sixteen 32-blocks
TOKENS = (1, 5, 13)  # GEMM token counts: below, at and across the 8-token tile


def _gguf_tensor(qtype: str, rows: int, cols: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(GGUF data as the file holds it, float32 weights per the gguf package)."""
    rng = np.random.default_rng(seed)
    qt = getattr(gguf.GGMLQuantizationType, qtype)
    if qtype in FLOATS:
        w = (rng.standard_normal((rows, cols)) * 0.1).astype(np.float32)
        data = w if qtype == "F32" else gguf.quants.quantize(w, qt)
    else:
        data = random_blocks(qtype, rows, cols, rng)
    dense = np.asarray(gguf.quants.dequantize(data, qt), np.float32).reshape(rows, cols)
    return data, dense


def _target() -> Any:
    from agentsim.engines.mlc.compile import make_target

    return make_target("llvm", None, 2)


def _build(layout: QuantLayout, tile_rows: int | None = None) -> Any:
    import tvm

    from agentsim.engines.mlc.kernels import embed_func, matmul_func

    with _target():  # the register tiles this host's builds get (compile_model does the same)
        funcs = {
            "gemv": matmul_func(layout, 1),
            "gemm": matmul_func(layout, None, lane_chunk=tile_rows),
            "embed": embed_func(layout),
        }
    mod = tvm.IRModule({k: f.with_attr("global_symbol", k) for k, f in funcs.items()})
    return tvm.compile(mod, target=_target())


def _check_kernels(qtype: str, rows: int, seed: int, tile_rows: int | None = None) -> None:
    import tvm

    data, dense = _gguf_tensor(qtype, rows, COLS, seed)
    per_row, quant = gguf_rows(data, qtype, (COLS, rows))
    layout = QuantLayout(quant, rows, COLS)
    planes = repack(per_row, quant, COLS)
    assert [n for n, _, _ in layout.params()] == list(planes)
    for (_, shape, dtype), arr in zip(layout.params(), planes.values(), strict=True):
        assert (arr.shape, str(arr.dtype)) == (shape, dtype)
    lib = _build(layout, tile_rows)
    args = [tvm.runtime.tensor(a) for a in planes.values()]
    rng = np.random.default_rng(seed + 1)
    scale = float(np.abs(dense).max())
    for name, counts in (("gemv", (1,)), ("gemm", TOKENS)):
        for n in counts:
            x = rng.standard_normal((n, COLS)).astype(np.float32)
            y = tvm.runtime.tensor(np.zeros((n, layout.groups, layout.lanes), np.float32))
            lib[name](tvm.runtime.tensor(x), *args, y)
            want = x @ dense.T
            err = np.abs(y.numpy().reshape(n, rows) - want).max()
            # float32 sums of 512 products: error ~1e-6 of the output scale
            assert err <= 1e-5 * np.abs(want).max(), f"{qtype} {name} n={n}: {err}"
    ids = np.array([0, rows - 1, rows // 2, 0, rows // 3], np.int32)
    out = tvm.runtime.tensor(np.zeros((len(ids), COLS), np.float32))
    lib["embed"](tvm.runtime.tensor(ids), *args, out)
    assert np.array_equal(out.numpy(), dense[ids]), f"{qtype} embedding rows differ"
    assert scale > 0.01  # the weights are not all zero


@pytest.mark.parametrize("qtype", list(GGUF_TO_KERNEL))
def test_kernels_match_gguf_dequantize(qtype: str) -> None:
    # 104 rows: 13 interleaved groups of 8, an odd group count
    _check_kernels(qtype, 104, seed=len(qtype) * 7 + sum(map(ord, qtype)))


@pytest.mark.parametrize("rows", [192, 576])
@pytest.mark.parametrize("qtype", list(GGUF_TO_KERNEL))
def test_kernels_in_groups_of_64_rows(qtype: str, rows: int) -> None:
    # groups of 64 lanes: gemv_prefetch's one-token kernels; 3 groups leave most of its
    # TASKS empty, 9 split unevenly among them
    _check_kernels(qtype, rows, seed=5 + rows)


@pytest.mark.parametrize("tile_rows", [16, 64])
@pytest.mark.parametrize("qtype", ["Q4_1", "Q8_0", "Q4_K", "Q6_K"])
def test_prefill_register_tiles_of_16_and_64_rows(qtype: str, tile_rows: int) -> None:
    # AVX2 hosts tile a 64-row group 16 rows at a time, AVX-512 ones all 64: both, anywhere
    _check_kernels(qtype, 192, seed=3 + tile_rows, tile_rows=tile_rows)


@pytest.mark.parametrize("qtype", ["Q4_K", "Q6_K", "Q5_0", "IQ4_XS"])
def test_kernels_with_an_odd_row_count(qtype: str) -> None:
    _check_kernels(qtype, 3, seed=11)  # one row per group: no SIMD lanes at all


@pytest.mark.parametrize("qtype", BLOCK_TYPES)
def test_blocks_stay_at_their_gguf_size(qtype: str) -> None:
    """No type is expanded at load: stored bytes = GGUF bytes, up to unpacked 6-bit scales."""
    rows = 64
    data, _ = _gguf_tensor(qtype, rows, COLS, seed=3)
    per_row, quant = gguf_rows(data, qtype, (COLS, rows))
    stored = sum(a.nbytes for a in repack(per_row, quant, COLS).values())
    assert stored == QuantLayout(quant, rows, COLS).nbytes()
    fmt = FORMATS[quant]
    extra = {"q3_k": 4, "q4_k": 4, "q5_k": 4, "iq4_xs": 2}.get(quant, 0)  # bytes per block
    assert stored == data.nbytes + extra * rows * COLS // fmt.block


def test_layout_refuses_columns_that_are_not_whole_blocks() -> None:
    with pytest.raises(ValueError, match=r"q4_k matrix needs cols a multiple of 256, got 8x320"):
        QuantLayout("q4_k", 8, 320)
    with pytest.raises(ValueError, match=r"unknown kernel quant 'q7_k'"):
        QuantLayout("q7_k", 8, 256)


def test_repack_refuses_rows_of_the_wrong_size() -> None:
    rows = np.zeros((4, 100), np.uint8)
    with pytest.raises(ValueError, match=r"q4_k rows must be uint8\[4, 144\], got uint8\[4, 100\]"):
        repack(rows, "q4_k", 256)


def test_mixed_tiny_models_cover_every_block_type() -> None:
    used = set()
    for name in ("llama-kquants-mixed", "llama-q4_k_m-small"):
        spec = TINY[name]
        used |= {spec.quant, spec.embed_quant, *spec.overrides.values()}
    assert set(BLOCK_TYPES) <= used | {"Q4_1", "Q8_0"}


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no CUDA compiler (nvcc) here")
def test_cuda_kernels_and_model_build(tmp_path: Path) -> None:
    """The cuda target compiles every format's kernels (dlight schedules) and a mixed model.

    There is no GPU here: this proves the code generates and compiles, not its numbers.
    """
    import tvm
    from tvm.s_tir import dlight as dl

    from agentsim.engines.mlc.build import build_artifact
    from agentsim.engines.mlc.compile import make_target
    from agentsim.engines.mlc.kernels import embed_func, matmul_func

    funcs: dict[str, Any] = {}
    for quant in FORMATS:
        lay = QuantLayout(quant, 128, COLS)
        funcs[f"gemv_{quant}"] = matmul_func(lay, 1, "cuda")
        funcs[f"gemm_{quant}"] = matmul_func(lay, None, "cuda")
        funcs[f"embed_{quant}"] = embed_func(lay, "cuda")
    mod = tvm.IRModule({k: f.with_attr("global_symbol", k) for k, f in funcs.items()})
    target = make_target("cuda", None, 1)
    with target:
        mod = dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.Fallback())(mod)
    for name in funcs:
        assert "threadIdx" in mod[name].script(), f"{name} is not bound to GPU threads"
    src = tvm.compile(mod, target=target).mod.imports[0].inspect_source()
    assert all(f"{name}_kernel" in src for name in funcs)
    gguf_path = write_tiny_gguf(tmp_path / "mixed.gguf", TINY["llama-kquants-mixed"])
    build_artifact(gguf_path, tmp_path / "art", "cuda", None)
    assert (tmp_path / "art" / "model.so").stat().st_size > 0


def _avx2_target() -> Any:
    from tvm.target import codegen

    from agentsim.engines.mlc.compile import make_target

    host = make_target("llvm", None, 2)
    if not codegen.target_has_features("avx2", host):
        pytest.skip("the host CPU has no AVX2")
    # the AVX2 kernel's own target even on an AVX-512 host (which would not pick it)
    return make_target("llvm", "znver3" if "znver" in str(host) else "haswell", 2)


def _vnni_target() -> Any:
    from tvm.target import codegen

    from agentsim.engines.mlc.compile import make_target

    host = make_target("llvm", None, 2)
    if not codegen.target_has_features("avx512vnni", host):
        pytest.skip("the host CPU has no AVX-512 VNNI")
    return host


def _extreme_xs(cols: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [
        np.full(cols, -1.0),  # every X = -2**20: the top digit's extreme
        np.tile(np.r_[np.ones(16), -np.ones(16)], cols // 32),
        rng.standard_normal(cols) * 10.0 ** rng.uniform(-30, 30, cols),
        np.r_[np.zeros(32), rng.standard_normal(cols - 32)],
        rng.integers(-64, 65, cols) * (2.0**-20) + rng.choice([-1.0, 1.0], cols),
    ]


@pytest.mark.parametrize(
    ("kernel", "qtype"), [("avx2", "Q4_1"), ("vnni", "Q4_1"), ("vnni", "Q8_0")]
)
def test_integer_gemv_is_exact_for_extreme_levels_and_activations(kernel: str, qtype: str) -> None:
    """The integer kernels (``gemv_avx2``, ``gemv_vnni``) against float64 sums: every
    level at its largest or smallest (the integer partial sums' worst cases: Q4_1 15 / 0,
    Q8_0 127 / -128), blocks of x at the digits' extremes, an all-zero block, magnitudes
    from 1e-30 to 1e30 within one row."""
    import importlib

    import tvm

    module = importlib.import_module(f"agentsim.engines.mlc.gemv_{kernel}")
    rows, cols = 192, 512
    target = _avx2_target() if kernel == "avx2" else _vnni_target()
    layout = QuantLayout(qtype.lower(), rows, cols)
    with target:
        assert module.supports(layout)
        lib = tvm.compile(
            tvm.IRModule({"f": module.gemv(layout).with_attr("global_symbol", "f")}),
            target=target,
        )
    rng = np.random.default_rng(7)
    data, dense = _gguf_tensor(qtype, rows, cols, 7)
    per_row, quant = gguf_rows(data, qtype, (cols, rows))
    head, size = (4, 20) if qtype == "Q4_1" else (2, 34)  # scale bytes, block bytes
    top, bottom = (0xFF, 0x00) if qtype == "Q4_1" else (0x7F, 0x80)
    raw = per_row.reshape(rows, -1, size).copy()
    raw[: rows // 3, :, head:] = top
    raw[rows // 3 : rows // 2, :, head:] = bottom
    per_row = raw.reshape(rows, -1)
    dense = np.asarray(gguf.quants.dequantize(per_row, getattr(gguf.GGMLQuantizationType, qtype)))
    dense = dense.reshape(rows, cols).astype(np.float64)
    args = [tvm.runtime.tensor(a) for a in repack(per_row, quant, cols).values()]
    for i, x in enumerate(_extreme_xs(cols, rng)):
        x32 = x.astype(np.float32)[None]
        y = tvm.runtime.tensor(np.zeros((1, layout.groups, 64), np.float32))
        lib["f"](tvm.runtime.tensor(x32), *args, y)
        got = y.numpy().reshape(rows).astype(np.float64)
        want = dense @ x32[0].astype(np.float64)
        # per row, against the row's sum of |products| (the scale its float32 sum works at)
        bound = 1e-5 * (np.abs(dense) @ np.abs(x32[0].astype(np.float64))) + 1e-30
        assert np.all(np.abs(got - want) <= bound), f"x #{i}: {np.abs(got - want).max()}"


def test_q4_1_and_q8_0_decode_use_the_avx2_kernels_on_an_avx2_cpu() -> None:
    from tvm.target import codegen

    from agentsim.engines.mlc.compile import make_target
    from agentsim.engines.mlc.kernels import matmul_func

    layout = QuantLayout("q4_1", 576, 576)
    with _avx2_target():
        assert "pmadd.ub.sw" not in str(matmul_func(layout, 32).script())  # prefill: float
        assert "pmadd.ub.sw" in str(matmul_func(layout, 1).script())
        q8 = str(matmul_func(QuantLayout("q8_0", 576, 576), 1).script())
        assert 'T.Cast("float32x8", qs[' in q8  # gemv_avx2's Q8_0 order, 8 rows per FMA
    host = make_target("llvm", None, 2)
    if codegen.target_has_features("avx512f", host):
        with host:  # AVX-512 keeps the float kernel, which reads at memory speed there
            assert "pmadd.ub.sw" not in str(matmul_func(layout, 1).script())


def test_q4_1_and_q8_0_decode_use_vpdpbusd_on_an_avx512_vnni_cpu() -> None:
    from agentsim.engines.mlc.kernels import matmul_func

    with _vnni_target():
        for quant in ("q4_1", "q8_0"):
            layout = QuantLayout(quant, 576, 576)
            assert "vpdpbusd" in str(matmul_func(layout, 1).script())
            assert "vpdpbusd" not in str(matmul_func(layout, 32).script())  # prefill: float
        # the other block formats keep the float kernels
        assert "vpdpbusd" not in str(matmul_func(QuantLayout("q4_0", 576, 576), 1).script())
