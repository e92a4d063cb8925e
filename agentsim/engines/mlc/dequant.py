"""Dequantisation of every kernel format as TIR expressions, written once for all kernels.

A weight is ``level * scale + offset``: ``level`` is a small integer (as float32) taken from
the bit planes of its block, ``scale`` and ``offset`` are shared by the ``sub`` weights of a
sub-block. Matmul kernels use that split to apply the scale once per sub-block (``gemv``);
the others use ``value``. Element ``kk`` of a block maps to bytes and bit shifts exactly as
in llama.cpp's ``dequantize_row_*`` (the planes are laid out by ``quants.py``).
"""

from __future__ import annotations

from typing import Any

from tvm import te, tirx

from agentsim.engines.mlc.quants import IQ4_LEVELS, QuantLayout


def _u8(v: int) -> Any:
    return tirx.const(v, "uint8")


def _f32(v: float) -> Any:
    return tirx.const(v, "float32")


def _shift(v: Any) -> Any:
    return v.astype("uint8") if not isinstance(v, int) else _u8(v)


def _bits(byte: Any, shift: Any, mask: int) -> Any:
    return (byte >> _shift(shift)) & _u8(mask)


def _table(nibble: Any, lo: int = 0, size: int = 16) -> Any:
    """``IQ4_LEVELS[nibble]`` as a tree of byte selects: no memory gather, so it vectorises
    on CPUs (64 rows per instruction) and stays elementwise for dlight's GPU rules."""
    if size == 1:
        return tirx.const(IQ4_LEVELS[lo], "int8")
    half = size // 2
    upper = (nibble & _u8(half)) != _u8(0)
    return tirx.Select(upper, _table(nibble, lo + half, half), _table(nibble, lo, half))


class Dequant:
    """Expressions for one matrix: ``bufs`` are its parameters in ``layout.params()`` order.

    Indices: ``g`` row group, ``kb`` block, ``kk`` weight in the block (or ``s`` sub-block),
    ``ln`` row in the group.
    """

    def __init__(self, layout: QuantLayout, bufs: list[te.Tensor]) -> None:
        self.layout = layout
        self.fmt = layout.format
        self.quant = layout.quant
        self.b = {name: buf for (name, _, _), buf in zip(layout.params(), bufs, strict=True)}

    def _d(self, g: Any, kb: Any, ln: Any, name: str = "d") -> Any:
        return self.b[name][g, kb, ln].astype("float32")

    def has_offset(self) -> bool:
        return self.quant not in ("q8_0", "iq4_nl", "iq4_xs", "f32", "f16")

    def level(self, g: Any, kb: Any, kk: Any, ln: Any) -> Any:
        """The integer level of weight ``kk`` (float32)."""
        b, q = self.b, self.quant
        if q in ("q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"):
            lv = _bits(b["qs"][g, kb, kk % 16, ln], kk // 16 * 4, 15)
            if q in ("q5_0", "q5_1"):
                lv = lv | (_bits(b["qh"][g, kb, kk // 8, ln], kk % 8, 1) << _u8(4))
            if q == "iq4_nl":
                return _table(lv).astype("float32")
            return lv.astype("float32")
        if q == "q8_0":
            return b["qs"][g, kb, kk, ln].astype("float32")
        if q in ("q2_k", "q3_k"):
            lv = _bits(b["qs"][g, kb, kk // 128 * 32 + kk % 32, ln], kk % 128 // 32 * 2, 3)
            if q == "q3_k":
                lv = lv | (_bits(b["hm"][g, kb, kk % 32, ln], kk // 32, 1) << _u8(2))
            return lv.astype("float32")
        if q in ("q4_k", "q5_k"):
            lv = _bits(b["qs"][g, kb, kk // 64 * 32 + kk % 32, ln], kk // 32 % 2 * 4, 15)
            if q == "q5_k":
                lv = lv | (_bits(b["qh"][g, kb, kk % 32, ln], kk // 32, 1) << _u8(4))
            return lv.astype("float32")
        if q == "q6_k":
            lo = _bits(b["ql"][g, kb, kk // 128 * 64 + kk % 64, ln], kk % 128 // 64 * 4, 15)
            hi = _bits(b["qh"][g, kb, kk // 128 * 32 + kk % 32, ln], kk % 128 // 32 * 2, 3)
            return (lo | (hi << _u8(4))).astype("float32")
        if q == "iq4_xs":
            lv = _bits(b["qs"][g, kb, kk // 32 * 16 + kk % 16, ln], kk % 32 // 16 * 4, 15)
            return _table(lv).astype("float32")
        return b["qs"][g, kb, kk, ln].astype("float32")  # f32 / f16

    def scale(self, g: Any, kb: Any, s: Any, ln: Any) -> Any:
        """The factor of sub-block ``s``."""
        b, q = self.b, self.quant
        if q == "q2_k":
            return self._d(g, kb, ln) * (b["sc"][g, kb, s, ln] & _u8(15)).astype("float32")
        if q in ("q3_k", "q6_k", "iq4_xs", "q4_k", "q5_k"):
            return self._d(g, kb, ln) * b["sc"][g, kb, s, ln].astype("float32")
        if q in ("f32", "f16"):
            return _f32(1.0)
        return self._d(g, kb, ln)

    def offset(self, g: Any, kb: Any, s: Any, ln: Any) -> Any:
        """The term added to every weight of sub-block ``s`` (see ``has_offset``)."""
        b, q = self.b, self.quant
        if q in ("q4_1", "q5_1"):
            return self._d(g, kb, ln, "m")
        if q in ("q4_0", "q5_0"):
            return self._d(g, kb, ln) * _f32(-8.0 if q == "q4_0" else -16.0)
        if q == "q2_k":
            mn = (b["sc"][g, kb, s, ln] >> _u8(4)).astype("float32")
            return -(self._d(g, kb, ln, "dmin") * mn)
        if q in ("q4_k", "q5_k"):
            return -(self._d(g, kb, ln, "dmin") * b["mn"][g, kb, s, ln].astype("float32"))
        if q in ("q3_k", "q6_k"):
            return self.scale(g, kb, s, ln) * _f32(-4.0 if q == "q3_k" else -32.0)
        raise ValueError(f"{q} has no offset")

    def value(self, g: Any, kb: Any, kk: Any, ln: Any) -> Any:
        """Weight ``kk`` of block ``kb`` of row ``g * lanes + ln`` as float32."""
        if self.fmt.is_float:
            return self.level(g, kb, kk, ln)
        s = kk // self.fmt.sub
        v = self.level(g, kb, kk, ln) * self.scale(g, kb, s, ln)
        if self.has_offset():
            v = v + self.offset(g, kb, s, ln)
        return v
