"""Run a compiled artifact with TVM's runtime only: weights, paged KV cache, logits.

An agent process never loads the TVM compiler, nor on CPU even the ``tvm`` Python package:
``tvm_api`` drives the runtime library through TVM's FFI (see there). One sequence per
runtime: an agent holds one conversation at a time; ``reset`` clears it, ``popn`` rolls
tokens back.

Weights are shared, not loaded: ``load_artifact`` memory-maps ``weights.bin`` and wraps each
tensor as a TVM tensor over the mapping (DLPack, no copy), once per process. Every runtime of
that artifact in the process uses those tensors, and every process that maps the file shares
its pages through the page cache; each runtime keeps its own KV cache and activations. With
``share=False`` a runtime reads a private copy instead (the behaviour before sharing).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from agentsim.engines.base import ContextOverflow, EngineError
from agentsim.engines.mlc.config import PAGE_SIZE, ModelConfig
from agentsim.engines.mlc.model_files import (
    LIB_FILE,
    META_FILE,
    WEIGHTS_FILE,
    map_weights,
    read_tensor,
    tensor_view,
)
from agentsim.engines.mlc.tvm_api import tvm_api

_SEQ = 0


class Artifact:
    """A loaded artifact: what every runtime of it in this process shares, read-only.

    Args:
        path: directory with ``model.so``, ``weights.bin`` and ``meta.json``.
        device: ``cpu`` or ``cuda``.
        share: back the parameters by a memory map of ``weights.bin`` (CPU) instead of
            private copies.
    """

    def __init__(self, path: Path, device: str = "cpu", *, share: bool = True) -> None:
        self.api = api = tvm_api(device)
        t0 = time.perf_counter()
        self.path = path
        self.meta: dict[str, Any] = json.loads((path / META_FILE).read_text())
        self.cfg = ModelConfig.from_json(self.meta["config"])
        self.lib = api.load_module(path / LIB_FILE)
        t1 = time.perf_counter()
        index = {ent["name"]: ent for ent in self.meta["weights"]}
        names = list(self.meta["param_order"])
        #: parameters a runtime may put in place of one in ``param_order`` (LongRoPE's
        #: ``rope_global.long`` for contexts past ``long_rope_above``)
        alternates = [n + ".long" for n in names if n + ".long" in index]
        order = [index[name] for name in names + alternates]
        self.mapped = share and device != "cuda"
        self.weights: np.ndarray | None = None
        if self.mapped:
            self.weights = map_weights(path / WEIGHTS_FILE)
            self.params = [api.wrap(tensor_view(self.weights, e)) for e in order]
        elif share:  # on a GPU the mapping is only the source of one copy to the device
            mm = map_weights(path / WEIGHTS_FILE)
            self.params = [api.copy(tensor_view(mm, e)) for e in order]
            del mm
        else:
            wpath = path / WEIGHTS_FILE
            self.params = [api.copy(read_tensor(wpath, e)) for e in order]
        self.alternates = dict(zip(alternates, self.params[len(names) :], strict=True))
        self.names = names
        self.params = self.params[: len(names)]
        self.timings = {"module_s": t1 - t0, "params_s": time.perf_counter() - t1}


_LOADED: dict[tuple[str, str], Artifact] = {}


def load_artifact(path: Path, device: str = "cpu", *, share: bool = True) -> Artifact:
    """The process's shared ``Artifact`` for ``path`` (loaded on first use); with
    ``share=False`` a new, private one every call."""
    if not share:
        return Artifact(path, device, share=False)
    key = (str(path.resolve()), device)
    art = _LOADED.get(key)
    if art is None:
        art = _LOADED[key] = Artifact(path, device, share=True)
    return art


class Runtime:
    """A loaded model: ``prefill``/``decode`` append tokens to the one sequence and return logits.

    Args:
        artifact: directory with ``model.so``, ``weights.bin`` and ``meta.json``.
        threads: compute threads (> 0).
        prefill_chunk: longest prompt slice fed in one prefill call.
        context_length: KV capacity in tokens (defaults to the model's).
        share_weights: use the process's shared, memory-mapped weights (default) rather
            than a private copy.
    """

    def __init__(
        self,
        artifact: Path,
        threads: int,
        *,
        device: str = "cpu",
        prefill_chunk: int = 256,
        context_length: int | None = None,
        share_weights: bool = True,
    ) -> None:
        self.art = load_artifact(artifact, device, share=share_weights)
        self.api = api = self.art.api
        api.set_threads(threads)
        self.cfg = self.art.cfg
        self.context_length = int(context_length or self.cfg.context_length)
        # Sliding-window layers see at most one window of new tokens per chunk correctly.
        if self.cfg.has_sliding:
            prefill_chunk = min(prefill_chunk, self.cfg.sliding_window)
        self.prefill_chunk = prefill_chunk
        self.vm = api.vm(self.art.lib)
        self.params = self.art.params  # the process's shared tensors, not a copy
        if self.cfg.long_rope is not None and self.context_length > self.cfg.long_rope_above:
            i = self.art.names.index("rope_global")  # LongRoPE: the long factors past the cut
            self.params = [
                *self.params[:i],
                self.art.alternates["rope_global.long"],
                *self.params[i + 1 :],
            ]
        self._prefill = self.vm["prefill"]
        self._decode = self.vm["decode"]
        st = api.shape
        self.kv = self.vm["create_paged_kv_cache"](
            st([1]), st([self.context_length]), st([prefill_chunk]), st([PAGE_SIZE]), st([0])
        )
        g = api.global_func
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
        host = np.asarray([ids], dtype=np.int32)
        arr = self.api.tensor(host)
        self._begin(self.kv, self._shape([_SEQ]), self._shape([len(ids)]))
        try:
            logits, _ = fn(arr, self.kv, self.params)
        finally:
            self._end(self.kv)
        self.seq_len += len(ids)
        return np.asarray(self.api.to_numpy(logits)[0], dtype=np.float32)

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
