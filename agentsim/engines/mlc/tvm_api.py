"""The few TVM runtime calls a compiled artifact needs, from TVM's FFI alone when possible.

``import tvm`` costs ~0.3 s of CPU even runtime-only (it imports ~250 Python modules and
registers their classes), and its FFI pulls in ``ml_dtypes`` (~0.6 s more) — most of an
agent's start. Running an artifact needs much less: load ``libtvm_runtime``, load the
module, make the Relax VM, wrap arrays as tensors (DLPack), call global functions. On CPU,
with ``tvm`` not imported yet, ``TvmApi`` does exactly that through ``tvm_ffi`` (the FFI
package ``tvm`` itself is built on) and ``libtvm_runtime.so`` from the ``tvm`` wheel; the
objects are the same C++ objects ``tvm`` would return. Otherwise (a GPU, the compiler
already loaded, ``AGENTSIM_TVM_FFI_ONLY=0``) it goes through the ``tvm`` package.

Either way ``TVM_USE_RUNTIME_LIB=1`` is set first, so a later ``import tvm`` in the process
stays runtime-only too.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

_SHARE_ALL_CORES = -3  # threading::ThreadGroup::kSpecifyThreadShareAllCore
_POOLED_ALLOCATOR = 2
_KDL_CPU = 1


_ALIGN = 64  # TVM's kAllocAlignment


def aligned_copy(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``array`` starting on a 64-byte boundary (numpy only promises
    16): TVM's kernels may use aligned vector loads."""
    buf = np.empty(array.nbytes + _ALIGN, dtype=np.uint8)
    start = (-buf.ctypes.data) % _ALIGN
    out: np.ndarray = buf[start : start + array.nbytes].view(array.dtype).reshape(array.shape)
    out[...] = array
    return out


def _runtime_library() -> Path | None:
    """``libtvm_runtime.so`` of the installed ``tvm`` wheel, found without importing it."""
    spec = importlib.util.find_spec("tvm")
    if spec is None or spec.origin is None:
        return None
    lib = Path(spec.origin).parent / "lib" / "libtvm_runtime.so"
    return lib if lib.is_file() else None


def _import_hiding(module: str, hidden: str) -> Any:
    """Import ``module`` while ``hidden`` cannot be imported (it is optional to it); ``hidden``
    stays importable afterwards."""
    hide = hidden not in sys.modules
    if hide:
        sys.modules[hidden] = None  # type: ignore[assignment]  # -> ImportError
    try:
        return importlib.import_module(module)
    finally:
        if hide and sys.modules.get(hidden, 0) is None:
            del sys.modules[hidden]


class TvmApi:
    """Load modules, make VMs and tensors, call global functions (see the module docstring).

    Args:
        device: ``cpu`` or ``cuda``.
    """

    def __init__(self, device: str = "cpu") -> None:
        os.environ.setdefault("TVM_USE_RUNTIME_LIB", "1")
        # TVM pins pool threads to fixed cores by default: agents sharing a machine would
        # then all run on the same cores. Let the OS place them.
        os.environ.setdefault("TVM_BIND_THREADS", "0")
        lib = _runtime_library()
        self.ffi_only = (
            device == "cpu"
            and "tvm" not in sys.modules
            and lib is not None
            and os.environ.get("AGENTSIM_TVM_FFI_ONLY", "1") != "0"
        )
        self.tvm: Any = None
        if self.ffi_only:
            # ml_dtypes only maps bfloat16/float8 numpy dtypes, which no artifact here uses.
            self.ffi: Any = _import_hiding("tvm_ffi", "ml_dtypes")
            ctypes.CDLL(str(lib), ctypes.RTLD_GLOBAL)  # what tvm.base does on import
            self.dev = self.ffi.device("cpu", 0)
        else:
            if "tvm" not in sys.modules and os.environ.get("TVM_USE_RUNTIME_LIB") == "1":
                _import_hiding("tvm", "ml_dtypes")
            import tvm
            import tvm.runtime.vm

            self.tvm = tvm
            self.ffi = tvm_ffi = sys.modules["tvm_ffi"]
            self.dev = tvm.cuda(0) if device == "cuda" else tvm.cpu(0)
            del tvm_ffi
        self.shape = self.ffi.Shape
        self.global_func = self.ffi.get_global_func

    def set_threads(self, threads: int) -> None:
        """Size the runtime's thread pool (the env var counts only before its first use).

        Also sets ``TVM_NUM_THREADS``: every parallel loop of a kernel asks TVM's
        ``MaxConcurrency()``, which without that variable (or ``OMP_NUM_THREADS``) calls
        ``std::thread::hardware_concurrency()`` — glibc opens and reads
        ``/sys/devices/system/cpu/online`` each time, ~180 times per SmolLM2 token (one run
        here: 150 against 190 tok/s at one thread) — and takes half the cores it finds as
        the pool's size, so on a 2-core machine a 2-thread runtime ran on one.
        """
        if threads > 0:
            os.environ["TVM_NUM_THREADS"] = str(threads)
            self.global_func("runtime.config_threadpool")(_SHARE_ALL_CORES, threads)

    def load_module(self, path: Path) -> Any:
        return self.ffi.load_module(str(path))

    def vm(self, lib: Any) -> Any:
        """A Relax VM over the executable in ``lib`` on this device (pooled allocator)."""
        if self.tvm is not None:
            return self.tvm.runtime.vm.VirtualMachine(lib, self.dev).module
        vm = lib["vm_load_executable"]()
        vm["vm_initialization"](_KDL_CPU, 0, _POOLED_ALLOCATOR)
        return vm

    def wrap(self, array: np.ndarray) -> Any:
        """A CPU tensor over ``array``'s memory (no copy; keep ``array`` alive)."""
        if array.ctypes.data % _ALIGN:
            raise ValueError(
                f"tensor memory at {array.ctypes.data:#x} is not {_ALIGN}-byte aligned"
            )
        return self.ffi.from_dlpack(array)

    def copy(self, array: np.ndarray) -> Any:
        """A tensor on this device holding its own copy of ``array`` (aligned as TVM's own
        allocations are: the compiled kernels assume it)."""
        if self.tvm is not None:
            return self.tvm.runtime.tensor(array, self.dev)
        return self.ffi.from_dlpack(aligned_copy(array))

    def tensor(self, array: np.ndarray) -> Any:
        """``array`` as an input tensor on this device."""
        return self.copy(array)

    @staticmethod
    def to_numpy(tensor: Any) -> np.ndarray:
        """A host copy of ``tensor`` (its memory may be reused by the VM's next call)."""
        if hasattr(tensor, "numpy"):
            out: np.ndarray = tensor.numpy()
            return out
        return np.array(np.from_dlpack(tensor), copy=True)


_APIS: dict[str, TvmApi] = {}


def tvm_api(device: str = "cpu") -> TvmApi:
    """This process's ``TvmApi`` for ``device`` (made on first use)."""
    api = _APIS.get(device)
    if api is None:
        api = _APIS[device] = TvmApi(device)
    return api
