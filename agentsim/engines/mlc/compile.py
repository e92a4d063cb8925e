"""Compile the model definition for a target and export the shared library.

Imports the TVM compiler: only the build step (``build.py``) and tests load this module;
agents load the exported ``.so`` runtime-only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import structlog
import tvm
from tvm import relax

from agentsim.engines.base import EngineUnavailable
from agentsim.engines.mlc import attention, cpu_ops, sliding_attention
from agentsim.engines.mlc.config import PAGE_SIZE, ModelConfig
from agentsim.engines.mlc.model import build_model

log = structlog.get_logger("agentsim.engines.mlc")


def make_target(kind: str, mcpu: str | None, cores: int) -> Any:
    """A TVM target: ``llvm`` for the given CPU with fast-math, or ``cuda``."""
    if kind == "cuda":
        spec: dict[str, Any] = {"kind": "cuda"}
        dev = tvm.cuda(0)
        if dev.exist:  # compile for the GPU that is here; else TVM's default arch
            spec["arch"] = "sm_" + str(dev.compute_version).replace(".", "")
        return tvm.target.Target(spec, host={"kind": "llvm"})
    return tvm.target.Target(
        {"kind": "llvm", "mcpu": mcpu or host_cpu(), "num-cores": cores, "fast-math": True}
    )


def host_cpu() -> str:
    """The exact host CPU name LLVM knows ("native" silently means generic in TVM 0.27)."""
    return str(tvm.target.codegen.llvm_get_system_cpu())


def compile_model(
    cfg: ModelConfig, target: Any, lib_path: Path, *, fast_attention: bool = True
) -> list[str]:
    """Export, compile and ``export_library`` the model; returns the parameter order.

    ``fast_attention`` swaps TVM's reference CPU attention kernels for ``attention.py``'s.
    """
    t0 = time.perf_counter()
    with target:  # kernels pick their register tiles by the target's vector registers
        model = build_model(cfg, target)
        mod, named_params = model.export_tvm(spec=model.spec())
    h_kv, h_q, d, cap = cfg.num_kv_heads, cfg.num_heads, cfg.head_dim, cfg.attn_softcap
    if cap and not (target.kind.name == "llvm" and fast_attention):
        raise EngineUnavailable(
            f"{cfg.arch}: attention soft-capping ({cap:g}) is applied by the CPU attention "
            "kernels only (target llvm); TVM's own kernels on this target have no such step"
        )
    if target.kind.name == "llvm" and fast_attention:
        mod = attention.install(mod, h_kv, h_q, d, PAGE_SIZE, softcap=cap)
    if target.kind.name == "llvm" and cfg.has_sliding:  # TVM's own ones are wrong (NaN)
        mod = sliding_attention.install(
            mod, h_kv, h_q, d, cfg.sliding_window, PAGE_SIZE, softcap=cap
        )
    t1 = time.perf_counter()
    llvm = target.kind.name == "llvm"
    pipeline = cpu_ops.pipeline(target) if llvm else relax.get_default_pipeline(target)
    with target:
        ex = tvm.compile(mod, target=target, relax_pipeline=pipeline)
    t2 = time.perf_counter()
    ex.export_library(str(lib_path))
    log.info(
        "mlc_compiled",
        export_s=round(t1 - t0, 2),
        compile_s=round(t2 - t1, 2),
        link_s=round(time.perf_counter() - t2, 2),
        target=str(target.kind.name),
    )
    return [name for name, _ in named_params]
