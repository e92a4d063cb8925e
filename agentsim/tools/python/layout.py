"""The sandbox's file system: what is bound read-only, linked, made, and the working dir.

Computed once per process from this interpreter: its installation (a venv and its base, or
only the Python directories of a system ``/usr`` Python), the dynamic loader it names and the
C library directories it maps, the time zone data. Everything else of the host is absent.
"""

from __future__ import annotations

import functools
import os
import struct
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

_SYSTEM_PREFIXES = frozenset({"/", "/usr", "/usr/local", "/opt"})
_PACKAGE_DIR = Path(__file__).resolve().parents[2]  # the agentsim package: masked inside


class SandboxUnavailable(Exception):
    """The OS cannot isolate a snippet here; ``str()`` is one line saying why."""


def _reach(path: str, binds: set[str], links: dict[str, str], *, depth: int = 0) -> None:
    """Add what makes ``path`` resolve inside: the dirs holding each symlink hop, its dir."""
    if depth > 16:
        return
    cur = "/"
    parts = Path(path).parts[1:]
    for i, name in enumerate(parts):
        nxt = os.path.join(cur, name)
        if os.path.islink(nxt):
            target = os.readlink(nxt)
            if cur == "/":
                links[nxt] = target
            else:
                binds.add(cur)
            rest = os.path.join(os.path.normpath(os.path.join(cur, target)), *parts[i + 1 :])
            _reach(rest, binds, links, depth=depth + 1)
            return
        cur = nxt
    if os.path.isdir(cur):
        binds.add(cur)
    elif os.path.exists(cur):
        binds.add(os.path.dirname(cur))


def _elf_interpreter(path: str) -> str | None:
    """PT_INTERP of a 64-bit little-endian ELF executable (the dynamic loader it names)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return None
            (phoff,) = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            for i in range(phnum):
                fh.seek(phoff + i * phentsize)
                ptype, _, offset, _, _, filesz = struct.unpack("<IIQQQQ", fh.read(40))
                if ptype == 3:
                    fh.seek(offset)
                    return fh.read(filesz).rstrip(b"\0").decode()
    except (OSError, struct.error, UnicodeDecodeError):
        return None
    return None


def _mapped_system_libs() -> list[str]:
    """The C library files this process has mapped (their dirs hold the system libraries)."""
    found: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                name = os.path.basename(path)
                if path.startswith("/") and name.startswith(("libc.so", "libm.so", "ld-")):
                    found.append(path)
    except OSError:
        pass
    return found


def _python_roots() -> set[str]:
    roots: set[str] = set()
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        if not prefix:
            continue
        real = os.path.realpath(prefix)
        if real not in _SYSTEM_PREFIXES:
            roots.add(real)
            continue
        # a system Python: its own directories only, not all of /usr
        paths = sysconfig.get_paths()
        for entry in [*sys.path, paths["stdlib"], paths["platstdlib"]]:
            full = os.path.realpath(entry) if entry else ""
            if full.startswith(real.rstrip("/") + "/") and os.path.isdir(full):
                roots.add(full)
    return roots


@dataclass(frozen=True)
class Layout:
    """The sandbox's file system: bubblewrap arguments, interpreter, private working dir."""

    args: tuple[str, ...]
    executable: str
    workdir: str


def _workdir(binds: list[str]) -> str:
    """``/sandbox`` unless the Python installation lives there (then ``/sandbox-N``)."""
    n = 0
    while True:
        path = "/sandbox" if n == 0 else f"/sandbox-{n}"
        if not any(_under(b, path) or _under(path, b) for b in binds):
            return path
        n += 1


@functools.cache
def layout() -> Layout:
    """The sandbox's file system, computed once per process.

    The writable dir is not ``/tmp`` itself, since a Python installation may live under
    ``/tmp`` (a CI checkout) and the tmpfs would hide it; ``/tmp`` is a link to it when free.
    """
    executable = sys.executable
    if not executable or not os.path.exists(executable):
        raise SandboxUnavailable("the Python interpreter path is unknown (sys.executable)")
    binds = _python_roots()
    links: dict[str, str] = {}
    _reach(executable, binds, links)
    interp = _elf_interpreter(os.path.realpath(executable))
    for lib in [*([interp] if interp else []), *_mapped_system_libs()]:
        _reach(lib, binds, links)
    for top in ("/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(top):
            links.setdefault(top, os.readlink(top))
    zoneinfo = os.path.realpath("/usr/share/zoneinfo")
    if os.path.isdir(zoneinfo):
        binds.add(zoneinfo)
    kept = sorted(b for b in binds if not any(_under(b, o) for o in binds if o != b))
    workdir = _workdir(kept)
    args: list[str] = []
    dirs = sorted({str(p) for b in kept for p in Path(b).parents if str(p) != "/"}, key=len)
    if "/tmp" not in dirs and not any(_under(b, "/tmp") for b in kept):
        links["/tmp"] = workdir
    for d in [*dirs, "/etc", workdir]:
        args += ["--dir", d]
    for b in kept:
        args += ["--ro-bind", b, b]
    if any(_under(str(_PACKAGE_DIR), b) for b in kept):
        mask = str(_PACKAGE_DIR)
        args += ["--perms", "0555", "--size", "4096", "--tmpfs", mask, "--remount-ro", mask]
    for link, target in sorted(links.items()):
        args += ["--symlink", target, link]
    args += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
    return Layout(args=tuple(args), executable=executable, workdir=workdir)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")
