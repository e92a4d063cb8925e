"""The seccomp filter the sandboxed interpreter installs on itself before running a snippet.

Namespaces already take away the network, the file system and every other process; the filter
closes what is left of the kernel's attack surface and makes the process cap exact:

- creating processes (``fork``, ``vfork``, ``clone`` without ``CLONE_THREAD``) fails with
  ``EPERM`` unless subprocesses are allowed, so ``RLIMIT_AS`` bounds the whole sandbox's memory;
- ``clone3`` fails with ``ENOSYS`` (its flags live in memory a filter cannot read; glibc then
  falls back to ``clone``, whose flags it can);
- new namespaces, mounts, ``ptrace``, cross-process memory access, keyrings, BPF, perf events,
  ``userfaultfd``, ``io_uring``, module loading and the like fail with ``EPERM``;
- any other syscall ABI (x32, i386 via ``int 0x80``) kills the process.

The program is classic BPF over ``struct seccomp_data`` (nr at 0, arch at 4, args at 16),
built here for x86_64 and aarch64.
"""

from __future__ import annotations

import platform
import struct

# BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_RET_KILL_PROCESS = 0x80000000
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_EPERM = 1
_ENOSYS = 38

_CLONE_THREAD = 0x00010000
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID
# | CLONE_NEWNET
_CLONE_NAMESPACES = 0x7E020000
_X32_BIT = 0x40000000

# Denied syscalls per machine, with the process-creating ones listed last; numbers from the
# kernel's unistd tables (asm/unistd_64.h for x86_64, asm-generic/unistd.h for aarch64).
_PROCESS_CALLS = frozenset({"clone", "clone3", "fork", "vfork"})
_X86_64 = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "perf_event_open": 298,
    "bpf": 321, "userfaultfd": 323, "keyctl": 250, "add_key": 248, "request_key": 249,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "mount": 165,
    "umount2": 166, "pivot_root": 155, "unshare": 272, "setns": 308, "kexec_load": 246,
    "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "open_by_handle_at": 304, "name_to_handle_at": 303, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "move_mount": 429, "open_tree": 428, "mount_setattr": 442,
    "acct": 163, "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170,
    "setdomainname": 171, "quotactl": 179, "quotactl_fd": 443, "syslog": 103,
    "pidfd_getfd": 438, "kcmp": 312, "chroot": 161, "lookup_dcookie": 212, "vhangup": 153,
    "iopl": 172, "ioperm": 173, "uselib": 134,
    "clone": 56, "clone3": 435, "fork": 57, "vfork": 58,
}  # fmt: skip

_AARCH64 = {
    "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "perf_event_open": 241,
    "bpf": 280, "userfaultfd": 282, "keyctl": 219, "add_key": 217, "request_key": 218,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "mount": 40,
    "umount2": 39, "pivot_root": 41, "unshare": 97, "setns": 268, "kexec_load": 104,
    "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "delete_module": 106,
    "open_by_handle_at": 265, "name_to_handle_at": 264, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "move_mount": 429, "open_tree": 428, "mount_setattr": 442,
    "acct": 89, "swapon": 224, "swapoff": 225, "reboot": 142, "sethostname": 161,
    "setdomainname": 162, "quotactl": 60, "quotactl_fd": 443, "syslog": 116,
    "pidfd_getfd": 438, "kcmp": 272, "chroot": 51, "lookup_dcookie": 18, "vhangup": 58,
    "clone": 220, "clone3": 435,
}  # fmt: skip

_ARCHES = {"x86_64": (0xC000003E, _X86_64, True), "aarch64": (0xC00000B7, _AARCH64, False)}


class _Program:
    """Classic BPF with forward jumps to named labels, resolved at the end."""

    def __init__(self) -> None:
        self.ops: list[tuple[int, int, str | None, str | None]] = []
        self.labels: dict[str, int] = {}

    def stmt(self, code: int, k: int) -> None:
        self.ops.append((code, k, None, None))

    def jump(self, code: int, k: int, jt: str | None, jf: str | None) -> None:
        self.ops.append((code, k, jt, jf))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.ops)

    def assemble(self) -> bytes:
        out = bytearray()
        for i, (code, k, jt, jf) in enumerate(self.ops):
            offsets = []
            for target in (jt, jf):
                off = 0 if target is None else self.labels[target] - (i + 1)
                if not 0 <= off <= 255:
                    raise ValueError(f"seccomp: jump to {target} out of range ({off})")
                offsets.append(off)
            out += struct.pack("=HBBI", code, offsets[0], offsets[1], k)
        return bytes(out)


def supported_machine() -> str | None:
    """The machine name if a filter can be built for it, else ``None``."""
    machine = platform.machine()
    return machine if machine in _ARCHES else None


def build_filter(*, allow_processes: bool, machine: str | None = None) -> bytes:
    """The filter program (``struct sock_filter`` array) for this machine.

    Args:
        allow_processes: let the snippet fork (the process cap then comes from RLIMIT_NPROC).
        machine: ``platform.machine()`` by default.

    Raises:
        ValueError: no syscall table for this machine.
    """
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        raise ValueError(f"seccomp: no syscall table for {machine}")
    arch, table, has_x32 = _ARCHES[machine]
    p = _Program()
    p.stmt(_LD_W_ABS, 4)
    p.jump(_JEQ_K, arch, None, "kill")
    p.stmt(_LD_W_ABS, 0)
    if has_x32:
        p.jump(_JGE_K, _X32_BIT, "kill", None)
    p.jump(_JEQ_K, table["clone3"], "enosys", None)
    denied = [nr for name, nr in table.items() if name not in _PROCESS_CALLS]
    if not allow_processes:
        denied += [table[n] for n in ("fork", "vfork") if n in table]
    for nr in denied:
        p.jump(_JEQ_K, nr, "eperm", None)
    p.jump(_JEQ_K, table["clone"], None, "allow")
    p.stmt(_LD_W_ABS, 16)  # low 32 bits of args[0]: the clone flags (little endian)
    p.jump(_JSET_K, _CLONE_NAMESPACES, "eperm", None)
    if not allow_processes:
        p.jump(_JSET_K, _CLONE_THREAD, "allow", "eperm")
    p.label("allow")
    p.stmt(_RET_K, _RET_ALLOW)
    p.label("eperm")
    p.stmt(_RET_K, _RET_ERRNO | _EPERM)
    p.label("enosys")
    p.stmt(_RET_K, _RET_ERRNO | _ENOSYS)
    p.label("kill")
    p.stmt(_RET_K, _RET_KILL_PROCESS)
    return p.assemble()
