"""Resource limits of one sandboxed snippet."""

from __future__ import annotations

import msgspec


class SandboxLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Limits of one snippet run; every one is enforced by the kernel, not by Python.

    Attributes:
        wall_s: wall-clock time; then the whole sandbox is killed.
        cpu_s: CPU seconds (RLIMIT_CPU).
        memory_bytes: address space of the interpreter (RLIMIT_AS). Without subprocesses this
            bounds the whole sandbox; with them, each process.
        disk_bytes: size of the private writable directory (a tmpfs).
        disk_files: files and directories it may hold (tmpfs inodes).
        file_bytes: largest single file (RLIMIT_FSIZE).
        open_files: open file descriptors (RLIMIT_NOFILE).
        tasks: threads (and processes, when allowed) alive at once, main thread included
            (RLIMIT_NPROC in the sandbox's own user namespace).
        subprocesses: whether the snippet may fork; when False a seccomp filter refuses it.
        output_chars: characters of stdout/stderr shown to the model.
        output_bytes: bytes of stdout+stderr after which the snippet is stopped.
        code_bytes: largest snippet accepted.
    """

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_bytes: int = 1 << 30
    disk_bytes: int = 64 << 20
    disk_files: int = 4096
    file_bytes: int = 16 << 20
    open_files: int = 64
    tasks: int = 32
    subprocesses: bool = False
    output_chars: int = 4000
    output_bytes: int = 64 << 10
    code_bytes: int = 1 << 20


DEFAULT_LIMITS = SandboxLimits()
