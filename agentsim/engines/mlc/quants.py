"""GGUF quantization formats: their block layouts and the repacking into kernel layouts.

Weights stay bit-exact. A GGUF block is split into "planes" (its quants, high bits, sub-block
scales, f16 super-scales), and each plane is stored interleaved: output rows are grouped
``lanes`` at a time and, inside a group, the plane's bytes of one block for all rows of the
group are contiguous, so a SIMD vector covers the rows of a group and dequantises as it
loads (see ``kernels.py``). Only two things change representation, both exactly: 6-bit
packed sub-block scales (Q3_K, Q4_K, Q5_K, IQ4_XS) are unpacked to one byte each, and
BF16 tensors widen to F32. f16 scales stay f16 and are widened inside the kernels.

Numpy only: agents import this (through ``config.py``) without loading the TVM compiler.
The element order inside each block follows llama.cpp's ``ggml-common.h`` / ``ggml-quants.c``;
``dequant.py`` holds the matching kernel expressions and the tests check both against the
``gguf`` package's own dequantisers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: bumped whenever a stored layout changes: part of the artifact cache key.
LAYOUT_VERSION = "interleaved-v2"

#: the smallest block of any format: every matrix dimension is a multiple of it.
BLOCK = 32

#: the 16 levels of the non-linear 4-bit types (IQ4_NL, IQ4_XS), from ggml-common.h.
IQ4_LEVELS = (-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)


@dataclass(frozen=True)
class Plane:
    """One stored tensor of a format: its ``shape`` per block and element type."""

    name: str
    shape: tuple[int, ...]
    dtype: str


Unpack = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True)
class QuantFormat:
    """A kernel weight format.

    Args:
        quant: the kernel name (``q4_k`` ...), used in ``ModelConfig.quants``.
        block: weights per block (GGUF's block; 32 for the float formats).
        sub: weights sharing one scale and offset inside a block.
        nbytes: bytes per GGUF block (0 for the float formats).
        planes: the stored tensors, in kernel-argument order.
        unpack: GGUF blocks ``uint8[rows, KB, nbytes]`` → planes ``[rows, KB, *shape]``.
    """

    quant: str
    block: int
    sub: int
    nbytes: int
    planes: tuple[Plane, ...]
    unpack: Unpack | None = None

    @property
    def is_float(self) -> bool:
        return self.nbytes == 0


def _f16(b: np.ndarray, off: int) -> np.ndarray:
    return b[..., off : off + 2].copy().view(np.float16)[..., 0]


def _nibble_type(d_off: int, qs_off: int, m_off: int | None, qh_off: int | None) -> Unpack:
    """Q4_0 / Q4_1 / Q5_0 / Q5_1 / IQ4_NL: f16 d (+ m), optional 32 high bits, 16 nibble bytes."""

    def unpack(b: np.ndarray) -> dict[str, np.ndarray]:
        out = {"qs": b[..., qs_off : qs_off + 16], "d": _f16(b, d_off)}
        if qh_off is not None:
            out["qh"] = b[..., qh_off : qh_off + 4]
        if m_off is not None:
            out["m"] = _f16(b, m_off)
        return out

    return unpack


def _q8_0(b: np.ndarray) -> dict[str, np.ndarray]:
    return {"qs": b[..., 2:34].view(np.int8), "d": _f16(b, 0)}


def _q2_k(b: np.ndarray) -> dict[str, np.ndarray]:
    return {"qs": b[..., 16:80], "sc": b[..., 0:16], "d": _f16(b, 80), "dmin": _f16(b, 82)}


def _q3_k(b: np.ndarray) -> dict[str, np.ndarray]:
    raw = b[..., 96:108].astype(np.int16)
    i = np.arange(16)
    low = (raw[..., i % 8] >> (4 * (i // 8))) & 15
    high = (raw[..., 8 + i % 4] >> (2 * (i // 4))) & 3
    sc = ((low | (high << 4)) - 32).astype(np.int8)
    return {"qs": b[..., 32:96], "hm": b[..., 0:32], "sc": sc, "d": _f16(b, 108)}


def _k_scales(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8 six-bit scales and mins packed into 12 bytes (Q4_K, Q5_K)."""
    s = raw.astype(np.uint8)
    sc = np.empty((*s.shape[:-1], 8), np.uint8)
    mn = np.empty_like(sc)
    sc[..., :4] = s[..., 0:4] & 63
    mn[..., :4] = s[..., 4:8] & 63
    sc[..., 4:] = (s[..., 8:12] & 15) | ((s[..., 0:4] >> 6) << 4)
    mn[..., 4:] = (s[..., 8:12] >> 4) | ((s[..., 4:8] >> 6) << 4)
    return sc, mn


def _q4_k(b: np.ndarray) -> dict[str, np.ndarray]:
    sc, mn = _k_scales(b[..., 4:16])
    return {"qs": b[..., 16:144], "sc": sc, "mn": mn, "d": _f16(b, 0), "dmin": _f16(b, 2)}


def _q5_k(b: np.ndarray) -> dict[str, np.ndarray]:
    sc, mn = _k_scales(b[..., 4:16])
    out = {"qs": b[..., 48:176], "qh": b[..., 16:48], "sc": sc, "mn": mn}
    return {**out, "d": _f16(b, 0), "dmin": _f16(b, 2)}


def _q6_k(b: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "ql": b[..., 0:128],
        "qh": b[..., 128:192],
        "sc": b[..., 192:208].view(np.int8),
        "d": _f16(b, 208),
    }


def _iq4_xs(b: np.ndarray) -> dict[str, np.ndarray]:
    high = b[..., 2:4].copy().view(np.uint16)[..., 0].astype(np.int16)
    low = b[..., 4:8].astype(np.int16)
    i = np.arange(8)
    ls = ((low[..., i // 2] >> (4 * (i % 2))) & 15) | (((high[..., None] >> (2 * i)) & 3) << 4)
    return {"qs": b[..., 8:136], "sc": (ls - 32).astype(np.int8), "d": _f16(b, 0)}


def _planes(*spec: tuple[str, tuple[int, ...], str]) -> tuple[Plane, ...]:
    return tuple(Plane(n, s, t) for n, s, t in spec)


_D = ("d", (), "float16")

FORMATS: dict[str, QuantFormat] = {
    f.quant: f
    for f in (
        QuantFormat("f32", 32, 32, 0, _planes(("qs", (32,), "float32"))),
        QuantFormat("f16", 32, 32, 0, _planes(("qs", (32,), "float16"))),
        QuantFormat(
            "q4_0", 32, 32, 18, _planes(("qs", (16,), "uint8"), _D), _nibble_type(0, 2, None, None)
        ),
        QuantFormat(
            "q4_1",
            32,
            32,
            20,
            _planes(("qs", (16,), "uint8"), _D, ("m", (), "float16")),
            _nibble_type(0, 4, 2, None),
        ),
        QuantFormat(
            "q5_0",
            32,
            32,
            22,
            _planes(("qs", (16,), "uint8"), ("qh", (4,), "uint8"), _D),
            _nibble_type(0, 6, None, 2),
        ),
        QuantFormat(
            "q5_1",
            32,
            32,
            24,
            _planes(("qs", (16,), "uint8"), ("qh", (4,), "uint8"), _D, ("m", (), "float16")),
            _nibble_type(0, 8, 2, 4),
        ),
        QuantFormat("q8_0", 32, 32, 34, _planes(("qs", (32,), "int8"), _D), _q8_0),
        QuantFormat(
            "iq4_nl",
            32,
            32,
            18,
            _planes(("qs", (16,), "uint8"), _D),
            _nibble_type(0, 2, None, None),
        ),
        QuantFormat(
            "q2_k",
            256,
            16,
            84,
            _planes(("qs", (64,), "uint8"), ("sc", (16,), "uint8"), _D, ("dmin", (), "float16")),
            _q2_k,
        ),
        QuantFormat(
            "q3_k",
            256,
            16,
            110,
            _planes(("qs", (64,), "uint8"), ("hm", (32,), "uint8"), ("sc", (16,), "int8"), _D),
            _q3_k,
        ),
        QuantFormat(
            "q4_k",
            256,
            32,
            144,
            _planes(
                ("qs", (128,), "uint8"),
                ("sc", (8,), "uint8"),
                ("mn", (8,), "uint8"),
                _D,
                ("dmin", (), "float16"),
            ),
            _q4_k,
        ),
        QuantFormat(
            "q5_k",
            256,
            32,
            176,
            _planes(
                ("qs", (128,), "uint8"),
                ("qh", (32,), "uint8"),
                ("sc", (8,), "uint8"),
                ("mn", (8,), "uint8"),
                _D,
                ("dmin", (), "float16"),
            ),
            _q5_k,
        ),
        QuantFormat(
            "q6_k",
            256,
            16,
            210,
            _planes(("ql", (128,), "uint8"), ("qh", (64,), "uint8"), ("sc", (16,), "int8"), _D),
            _q6_k,
        ),
        QuantFormat(
            "iq4_xs",
            256,
            32,
            136,
            _planes(("qs", (128,), "uint8"), ("sc", (8,), "int8"), _D),
            _iq4_xs,
        ),
    )
}

#: GGUF tensor type → kernel format.
GGUF_TO_KERNEL: dict[str, str] = {
    "F32": "f32",
    "F16": "f16",
    "BF16": "f32",
    "Q4_0": "q4_0",
    "Q4_1": "q4_1",
    "Q5_0": "q5_0",
    "Q5_1": "q5_1",
    "Q8_0": "q8_0",
    "Q2_K": "q2_k",
    "Q3_K": "q3_k",
    "Q4_K": "q4_k",
    "Q5_K": "q5_k",
    "Q6_K": "q6_k",
    "IQ4_NL": "iq4_nl",
    "IQ4_XS": "iq4_xs",
}
SUPPORTED_GGUF_TYPES = tuple(GGUF_TO_KERNEL)


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

    def __post_init__(self) -> None:
        if self.quant not in FORMATS:
            raise ValueError(f"unknown kernel quant {self.quant!r}; known: {', '.join(FORMATS)}")
        if self.cols % self.format.block:
            raise ValueError(
                f"a {self.quant} matrix needs cols a multiple of {self.format.block}, "
                f"got {self.rows}x{self.cols}"
            )

    @property
    def format(self) -> QuantFormat:
        return FORMATS[self.quant]

    @property
    def block(self) -> int:
        return self.format.block

    @property
    def lanes(self) -> int:
        return lanes_for(self.rows)

    @property
    def groups(self) -> int:
        return self.rows // self.lanes

    @property
    def blocks(self) -> int:
        return self.cols // self.format.block

    def params(self) -> list[tuple[str, tuple[int, ...], str]]:
        """(suffix, shape, dtype) of each stored tensor, in call order."""
        out: list[tuple[str, tuple[int, ...], str]] = []
        for p in self.format.planes:
            out.append((p.name, (self.groups, self.blocks, *p.shape, self.lanes), p.dtype))
        return out

    def nbytes(self) -> int:
        """Bytes the stored tensors take (what a matmul reads once)."""
        return sum(
            int(np.prod(shape)) * np.dtype(dtype).itemsize for _, shape, dtype in self.params()
        )


def repack(rows: np.ndarray, quant: str, cols: int) -> dict[str, np.ndarray]:
    """Row-major GGUF blocks (or float rows) → the interleaved tensors of ``QuantLayout``.

    Args:
        rows: ``uint8[rows, bytes]`` GGUF blocks, or ``[rows, cols]`` floats for ``f32``/``f16``.
        quant: the kernel format.
        cols: weights per row.
    """
    layout = QuantLayout(quant, rows.shape[0], cols)
    fmt = layout.format
    g, kb, ln = layout.groups, layout.blocks, layout.lanes

    def inter(a: np.ndarray) -> np.ndarray:
        # a: [rows, KB, ...] -> [G, KB, ..., lanes]
        a = a.reshape(g, ln, *a.shape[1:])
        return np.ascontiguousarray(np.moveaxis(a, 1, -1))

    if fmt.is_float:
        dtype = np.float16 if quant == "f16" else np.float32
        return {"qs": inter(np.asarray(rows, dtype).reshape(rows.shape[0], kb, fmt.block))}
    if rows.dtype != np.uint8 or rows.shape[1] != kb * fmt.nbytes:
        raise ValueError(
            f"{quant} rows must be uint8[{rows.shape[0]}, {kb * fmt.nbytes}], "
            f"got {rows.dtype}{list(rows.shape)}"
        )
    assert fmt.unpack is not None
    planes = fmt.unpack(rows.reshape(rows.shape[0], kb, fmt.nbytes))
    return {p.name: inter(np.asarray(planes[p.name]).astype(p.dtype)) for p in fmt.planes}


def gguf_rows(data: Any, qtype: str, shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
    """A GGUF tensor as per-row data for ``repack``: ``(rows, kernel quant)``.

    ``shape`` is GGUF's (columns first). Block formats give ``uint8[rows, bytes]``.
    """
    cols, nrows = int(shape[0]), int(np.prod(shape[1:], dtype=np.int64))
    arr = np.asarray(data)
    quant = GGUF_TO_KERNEL[qtype]
    if qtype == "F32":
        return arr.astype(np.float32, copy=False).reshape(nrows, cols), quant
    if qtype == "F16":
        return arr.view(np.float16).reshape(nrows, cols), quant
    if qtype == "BF16":
        bits = arr.view(np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32).reshape(nrows, cols), quant
    return arr.view(np.uint8).reshape(nrows, -1), quant
