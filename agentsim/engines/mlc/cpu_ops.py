"""CPU schedules for the small operators TVM's default CPU pipeline leaves serial.

After ``FuseTIR`` the model has, besides the matmul and attention kernels, norms (RMSNorm)
and fused elementwise functions (residual adds, SiLU/GELU x up). The default CPU
pipeline runs them as one serial loop nest: with several threads they do not scale, and
at long prompts they take a noticeable share of prefill. This pass parallelises them over
tokens (norms through dlight's CPU reduction rule) and vectorises their innermost loop.
Kernels that are already scheduled (the matmuls, ``attention.py``) and the KV cache's own
functions are left alone.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import tirx
from tvm.s_tir import Schedule
from tvm.s_tir import dlight as dl

#: functions made by legalization + fusion (the KV cache's are ``tir_kv_cache_*`` etc.)
_PREFIXES = ("fused_", "rms_norm", "add", "multiply", "silu", "gelu", "tanh")
_SKIP = ("fused_rope",)
#: floats per SIMD vector (AVX-512) for the innermost loop of elementwise functions
VECTOR = 16


def _elementwise(func: Any) -> Any | None:
    """Inline all stages into the last, parallelise its leading loops (all but the last)."""
    sch = Schedule(func)
    blocks = sch.get_child_blocks(sch.get_sblock("root"))
    for blk in blocks[:-1]:
        try:
            sch.compute_inline(blk)
        except RuntimeError:  # TVM's ScheduleError: a stage that cannot be inlined; leave it
            return None
    last = blocks[-1]
    if any(iv.iter_type != tirx.IterVar.DataPar for iv in sch.get(last).iter_vars):
        return None
    loops = sch.get_loops(last)
    if len(loops) < 2:
        return None
    outer = sch.fuse(*loops[:-1])
    extent = sch.get(outer).extent
    if isinstance(extent, tirx.IntImm) and int(extent) <= 1:
        return None  # one token: a parallel launch would cost more than it gives
    sch.parallel(outer)
    inner = sch.get(loops[-1]).extent
    if isinstance(inner, tirx.IntImm) and int(inner) % VECTOR == 0:
        _, vec = sch.split(loops[-1], [None, VECTOR])
        sch.vectorize(vec)
    return sch.mod["main"]


def _reduction(func: Any, target: Any) -> Any | None:
    sch = Schedule(func)
    loops = [
        lp for blk in sch.get_child_blocks(sch.get_sblock("root")) for lp in sch.get_loops(blk)
    ]
    if all(isinstance(sch.get(lp).extent, tirx.IntImm) for lp in loops):
        return None  # the one-token (decode) variant: nothing to split over threads
    out = dl.cpu.Reduction().apply(func, target, False)
    if out is None:
        return None
    sch = out[0] if isinstance(out, list) else out
    return sch.mod["main"]


@tvm.transform.module_pass(opt_level=0, name="ScheduleCpuOps")
class ScheduleCpuOps:
    """Module pass: schedule the unscheduled norm / elementwise functions (see module doc)."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def transform_module(self, mod: Any, _ctx: Any) -> Any:
        for gv, func in list(mod.functions_items()):
            name = gv.name_hint
            if not isinstance(func, tirx.PrimFunc) or not name.startswith(_PREFIXES):
                continue
            if name.startswith(_SKIP) or (
                func.attrs is not None and "tirx.is_scheduled" in func.attrs
            ):
                continue
            new = (
                _reduction(func, self.target) if name.startswith("rms_norm") else _elementwise(func)
            )
            if new is not None:
                mod.update_func(gv, new.with_attr("tirx.is_scheduled", True))
        return mod


@tvm.transform.module_pass(opt_level=0, name="MarkNoAlias")
class MarkNoAlias:
    """Module pass: mark every PrimFunc ``tirx.noalias`` (its buffer arguments never overlap).

    TVM 0.27's LLVM codegen lets one function without ``tirx.noalias`` (the KV cache's
    ``merge_state_inplace_cpu``, ``shape_func``, tree attention ...) put the buffers of
    *other* functions of the module into its "may alias" TBAA set. The matmul kernels'
    register accumulators then go back to memory after every FMA: 2.6x slower prefill
    GEMMs than the same kernel compiled alone. Every function here gets distinct tensors
    (Relax's destination-passing outputs, the KV cache's own buffers), so the attribute
    states what is true.
    """

    def transform_module(self, mod: Any, _ctx: Any) -> Any:
        for gv, func in list(mod.functions_items()):
            if isinstance(func, tirx.PrimFunc) and not (
                func.attrs is not None and func.attrs.get("tirx.noalias")
            ):
                mod.update_func(gv, func.with_attr("tirx.noalias", True))
        return mod


def pipeline(target: Any) -> Any:
    """TVM's default CPU pipeline with ``ScheduleCpuOps`` after operator fusion and
    ``MarkNoAlias`` at the end."""
    from tvm.relax.backend import cpu_generic

    cpu = cpu_generic.pipeline

    @tvm.transform.module_pass(opt_level=0)  # type: ignore[untyped-decorator]
    def _pipeline(mod: Any, _ctx: Any) -> Any:
        with target:
            seq = tvm.transform.Sequential(
                cpu.library_dispatch_passes(target)
                + cpu.legalize_passes(target)
                + [ScheduleCpuOps(target)]
                + cpu.dataflow_lower_passes(target)
                + cpu.finalize_passes(target)
                + [MarkNoAlias()]
            )
            return seq(mod)

    return _pipeline
