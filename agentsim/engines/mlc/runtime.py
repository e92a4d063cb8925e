"""Run a compiled artifact with TVM's runtime only: weights, paged KV cache, logits.

``TVM_USE_RUNTIME_LIB=1`` is set before TVM is first imported, so an agent process never loads
the compiler library (0.8 s start, ~100 MB less memory). One sequence per runtime: an agent
holds one conversation at a time; ``reset`` clears it, ``popn`` rolls tokens back.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from agentsim.engines.base import ContextOverflow, EngineError
from agentsim.engines.mlc.config import PAGE_SIZE, ModelConfig
from agentsim.engines.mlc.model_files import WEIGHTS_FILE, read_tensor

_SEQ = 0
_SHARE_ALL_CORES = -3  # threading::ThreadGroup::kSpecifyThreadShareAllCore


def import_tvm_runtime(threads: int) -> Any:
    """Import TVM (runtime-only unless the compiler is already loaded) with ``threads``."""
    if "tvm" not in sys.modules:
        os.environ.setdefault("TVM_USE_RUNTIME_LIB", "1")
        if threads > 0:
            os.environ["TVM_NUM_THREADS"] = str(threads)
    # TVM pins pool threads to fixed cores by default: agents sharing a machine would then
    # all run on the same cores. Let the OS place them.
    os.environ.setdefault("TVM_BIND_THREADS", "0")
    import tvm
    import tvm.runtime.vm

    if threads > 0:
        # Reconfigure the pool too: the env var only counts before its first use.
        tvm.get_global_func("runtime.config_threadpool")(_SHARE_ALL_CORES, threads)
    return tvm


class Runtime:
    """A loaded model: ``prefill``/``decode`` append tokens to the one sequence and return logits.

    Args:
        artifact: directory with ``model.so``, ``weights.bin`` and ``meta.json``.
        threads: compute threads (> 0).
        prefill_chunk: longest prompt slice fed in one prefill call.
        context_length: KV capacity in tokens (defaults to the model's).
    """

    def __init__(
        self,
        artifact: Path,
        threads: int,
        *,
        device: str = "cpu",
        prefill_chunk: int = 256,
        context_length: int | None = None,
    ) -> None:
        self.tvm = tvm = import_tvm_runtime(threads)
        meta = json.loads((artifact / "meta.json").read_text())
        self.cfg = ModelConfig.from_json(meta["config"])
        self.context_length = int(context_length or self.cfg.context_length)
        # Sliding-window layers see at most one window of new tokens per chunk correctly.
        if self.cfg.has_sliding:
            prefill_chunk = min(prefill_chunk, self.cfg.sliding_window)
        self.prefill_chunk = prefill_chunk
        self.dev = tvm.cuda(0) if device == "cuda" else tvm.cpu(0)
        lib = tvm.runtime.load_module(str(artifact / "model.so"))
        self.vm = tvm.runtime.vm.VirtualMachine(lib, self.dev)
        index = {ent["name"]: ent for ent in meta["weights"]}
        wpath = artifact / WEIGHTS_FILE
        names = list(meta["param_order"])
        if self.cfg.long_rope is not None and self.context_length > self.cfg.long_rope_above:
            names = [n + ".long" if n == "rope_global" else n for n in names]  # LongRoPE
        self.params = [
            tvm.runtime.tensor(read_tensor(wpath, index[name]), self.dev) for name in names
        ]
        self._prefill = self.vm["prefill"]
        self._decode = self.vm["decode"]
        st = tvm.runtime.ShapeTuple
        self.kv = self.vm["create_paged_kv_cache"](
            st([1]), st([self.context_length]), st([prefill_chunk]), st([PAGE_SIZE]), st([0])
        )
        g = tvm.get_global_func
        self._add = g("vm.builtin.kv_state_add_sequence")
        self._remove = g("vm.builtin.kv_state_remove_sequence")
        self._begin = g("vm.builtin.kv_state_begin_forward")
        self._end = g("vm.builtin.kv_state_end_forward")
        self._popn = g("vm.builtin.kv_state_popn")
        self._shape = st
        self.seq_len = 0
        self._add(self.kv, _SEQ)

    def reset(self) -> None:
        """Forget the sequence (a new conversation)."""
        self._remove(self.kv, _SEQ)
        self._add(self.kv, _SEQ)
        self.seq_len = 0

    def popn(self, n: int) -> None:
        """Drop the last ``n`` tokens from the cache (reuse of a shared prompt prefix)."""
        if n <= 0:
            return
        if n > self.seq_len:
            raise EngineError(f"cannot pop {n} tokens from a sequence of {self.seq_len}")
        self._popn(self.kv, _SEQ, n)
        self.seq_len -= n

    def _check(self, ids: list[int]) -> None:
        if self.seq_len + len(ids) > self.context_length:
            raise ContextOverflow(self.seq_len + len(ids), self.context_length)
        vocab = self.cfg.vocab_size
        bad = [t for t in ids if not 0 <= t < vocab]
        if bad:
            raise EngineError(f"token id {bad[0]} is outside the vocabulary of {vocab}")

    def _run(self, fn: Any, ids: list[int]) -> np.ndarray:
        arr = self.tvm.runtime.tensor(np.asarray([ids], dtype=np.int32), self.dev)
        self._begin(self.kv, self._shape([_SEQ]), self._shape([len(ids)]))
        try:
            logits, _ = fn(arr, self.kv, self.params)
        finally:
            self._end(self.kv)
        self.seq_len += len(ids)
        return np.asarray(logits.numpy()[0], dtype=np.float32)

    def prefill(self, ids: list[int]) -> np.ndarray:
        """Append ``ids`` (in chunks) and return the logits after the last one."""
        if not ids:
            raise EngineError("prefill needs at least one token")
        self._check(ids)
        logits = np.empty(0, np.float32)
        for start in range(0, len(ids), self.prefill_chunk):
            chunk = ids[start : start + self.prefill_chunk]
            logits = self._run(self._decode if len(chunk) == 1 else self._prefill, chunk)
        return logits

    def decode(self, token: int) -> np.ndarray:
        """Append one token and return the next logits."""
        self._check([token])
        return self._run(self._decode, [token])

    def close(self) -> None:
        self.params = []
        self.kv = None
