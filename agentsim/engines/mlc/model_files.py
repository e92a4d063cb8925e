"""The on-disk artifact: one flat ``weights.bin`` plus an index kept in ``meta.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS_FILE = "weights.bin"
LIB_FILE = "model.so"
META_FILE = "meta.json"
TOKENIZER_FILE = "tokenizer.json"
_ALIGN = 64


def save_weights(path: Path, arrays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Write ``arrays`` back to back (64-byte aligned); returns the index for ``meta.json``."""
    index: list[dict[str, Any]] = []
    offset = 0
    with path.open("wb") as f:
        for name, arr in arrays.items():
            pad = (-offset) % _ALIGN
            f.write(b"\0" * pad)
            offset += pad
            data = np.ascontiguousarray(arr)
            f.write(data.tobytes())
            index.append(
                {
                    "name": name,
                    "dtype": str(data.dtype),
                    "shape": list(data.shape),
                    "offset": offset,
                }
            )
            offset += data.nbytes
    return index


def read_tensor(path: Path, entry: dict[str, Any]) -> np.ndarray:
    """One tensor read from ``weights.bin`` (one at a time keeps the peak RSS low)."""
    dtype = np.dtype(entry["dtype"])
    count = int(np.prod(entry["shape"], dtype=np.int64))
    arr = np.fromfile(path, dtype=dtype, count=count, offset=int(entry["offset"]))
    return arr.reshape(entry["shape"])
