"""How much memory a loaded model takes, and a refusal in one line when it would not fit.

The runtime holds the repacked weights (``weights.bin`` as stored) and a float32 paged KV
cache sized for the whole context up front (every layer, K and V, ``num_kv_heads *
head_dim`` floats per token, rounded up to pages), plus the runtime and scratch buffers.
Available memory is the smaller of the host's and the cgroup's (containers); the
``AGENTSIM_MEMORY_LIMIT`` environment variable (bytes, or with a K/M/G suffix) overrides it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agentsim.engines.base import EngineUnavailable
from agentsim.engines.mlc.config import PAGE_SIZE, ModelConfig

#: the TVM runtime, the tokenizer and the interpreter (measured: ~230 MB RSS for SmolLM2
#: less its weights and cache)
RUNTIME_OVERHEAD = 160 << 20
MiB = 1 << 20


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int
    kv_cache_bytes: int
    scratch_bytes: int
    context_length: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.scratch_bytes + RUNTIME_OVERHEAD


def kv_cache_bytes(cfg: ModelConfig, context: int) -> int:
    """Bytes of the float32 paged KV cache for ``context`` tokens (all layers, K and V)."""
    pages = -(-context // PAGE_SIZE) + 1
    layers = cfg.num_layers + (1 if cfg.layer_kinds and "global" not in cfg.layer_kinds else 0)
    return layers * 2 * pages * PAGE_SIZE * cfg.num_kv_heads * cfg.head_dim * 4


def estimate(
    cfg: ModelConfig, weights_bytes: int, context: int, prefill_chunk: int
) -> MemoryEstimate:
    """Weights + KV cache + activations of one prefill chunk (and the logits)."""
    width = cfg.hidden_size * 4 + 3 * cfg.intermediate_size
    width += (cfg.num_heads + 2 * cfg.num_kv_heads) * cfg.head_dim * 2
    scratch = prefill_chunk * width * 4 + cfg.vocab_size * 4 * 2
    return MemoryEstimate(weights_bytes, kv_cache_bytes(cfg, context), scratch, context)


def available_bytes() -> int:
    """Memory this process may still take: the override, else min(host, cgroup)."""
    override = os.environ.get("AGENTSIM_MEMORY_LIMIT", "").strip()
    if override:
        return parse_size(override, "AGENTSIM_MEMORY_LIMIT")
    import psutil

    avail = int(psutil.virtual_memory().available)
    limit = _cgroup_free()
    return min(avail, limit) if limit is not None else avail


def _cgroup_free() -> int | None:
    root = Path("/sys/fs/cgroup")
    for cap, cur in (
        ("memory.max", "memory.current"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ):
        try:
            text = (root / cap).read_text().strip()
            used = int((root / cur).read_text().strip())
        except (OSError, ValueError):
            continue
        if text == "max" or not text.isdigit() or int(text) >= 1 << 60:
            return None
        return max(0, int(text) - used)
    return None


def parse_size(text: str, name: str) -> int:
    """``123``, ``512M``, ``2G`` ... → bytes; one clear line otherwise."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    digits = t[:-1] if t[-1:] in "KMGT" else t
    try:
        value = float(digits)
    except ValueError:
        raise EngineUnavailable(f"{name} must be a size like 512M or 8G, got {text!r}") from None
    return int(value * mult)


def check_file_fits(gguf: Path, model: str) -> None:
    """Before building: a model whose file alone exceeds the available memory is refused
    (the repacked weights take about the file's size)."""
    size = gguf.stat().st_size
    avail = available_bytes()
    if size + RUNTIME_OVERHEAD > avail:
        raise EngineUnavailable(
            f"model {model} ({gguf.name}, {size / MiB:.0f} MiB of weights) needs more than the "
            f"{avail / MiB:.0f} MiB available; use a smaller model or quantization"
        )


def check_fits(est: MemoryEstimate, model: str, available: int | None = None) -> None:
    """Raise ``EngineUnavailable`` (one line) when ``est`` exceeds the available memory."""
    avail = available_bytes() if available is None else available
    if est.total_bytes <= avail:
        return
    per_1k = est.kv_cache_bytes / max(est.context_length, 1) * 1024
    raise EngineUnavailable(
        f"model {model} needs ~{est.total_bytes / MiB:.0f} MiB (weights "
        f"{est.weights_bytes / MiB:.0f} MiB + KV cache {est.kv_cache_bytes / MiB:.0f} MiB for "
        f"context_length {est.context_length} + {(est.scratch_bytes + RUNTIME_OVERHEAD) / MiB:.0f}"
        f" MiB runtime) but {avail / MiB:.0f} MiB is available; lower options.context_length "
        f"(each 1024 tokens cost {per_1k / MiB:.0f} MiB) or run fewer agents on this host"
    )
