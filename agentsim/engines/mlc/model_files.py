"""The on-disk artifact: one flat ``weights.bin`` plus an index kept in ``meta.json``.

Every tensor starts on a 64-byte boundary, so a memory map of the file can back the runtime's
tensors directly (``map_weights`` / ``tensor_view``): the processes that map one artifact share
its pages in the page cache instead of each holding a copy.
"""

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


def map_weights(path: Path) -> np.memmap:
    """``weights.bin`` mapped copy-on-write (``MAP_PRIVATE``).

    Nothing writes to weights, so every page stays the page cache's page, shared by every
    process that maps the file; a write (a bug) would give that process a private copy of
    the page rather than change the artifact under the others. DLPack cannot export a
    read-only array, hence the writable private mapping rather than ``PROT_READ``.
    """
    return np.memmap(path, dtype=np.uint8, mode="c")


def tensor_view(weights: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
    """The tensor ``entry`` of ``meta.json`` as a view into the mapped file (no copy)."""
    dtype = np.dtype(entry["dtype"])
    shape = [int(x) for x in entry["shape"]]
    start = int(entry["offset"])
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if start % _ALIGN or start + nbytes > weights.nbytes:
        raise ValueError(f"tensor {entry['name']} at {start}+{nbytes} is not in the weights file")
    view: np.ndarray = weights[start : start + nbytes].view(dtype).reshape(shape)
    return view
