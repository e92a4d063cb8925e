"""An opened GGUF file: metadata fields and tensors by name (the ``gguf`` package's reader).

No TVM here: ``agentsim models list`` and the reference use it without the compiler.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from agentsim.engines.base import EngineUnavailable


class GGUFModel:
    """Metadata and tensors of one GGUF file; tensors are memory-mapped, not read."""

    def __init__(self, path: Path) -> None:
        import gguf

        self.path = path
        try:
            self.reader = gguf.GGUFReader(str(path))
        except Exception as e:
            raise EngineUnavailable(f"cannot read GGUF file {path}: {e}") from e
        self.tensors = {t.name: t for t in self.reader.tensors}

    def field(self, key: str, default: Any = None) -> Any:
        f = self.reader.fields.get(key)
        if f is None:
            return default
        return f.contents()

    @property
    def arch(self) -> str:
        return str(self.field("general.architecture", "?"))

    def qtype(self, name: str) -> str:
        return str(self.tensors[name].tensor_type.name)

    def quant_counts(self) -> Counter[str]:
        """How many tensors of each GGUF type the file holds."""
        return Counter(self.qtype(n) for n in self.tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        """Row-major shape (``[rows, cols]`` for a matrix), the reverse of GGUF's order."""
        return tuple(reversed([int(x) for x in self.tensors[name].shape]))

    def dense(self, name: str) -> np.ndarray:
        """The tensor dequantised to float32 in its GGUF row order (``gguf``'s dequantisers)."""
        import gguf

        t = self.tensors[name]
        arr = gguf.quants.dequantize(t.data, t.tensor_type)
        return np.asarray(arr, dtype=np.float32).reshape(self.shape(name))
