"""Run a model's Python snippet in a sandboxed subprocess.

Layers, each a fallback for the others:

- a fresh interpreter (``sys.executable -I``) in a new temporary directory, with a scrubbed
  environment, in its own process group that is killed at the wall-time limit;
- ``resource`` limits set before exec: address space, CPU seconds, file size, open files;
- a network namespace with no interfaces (``unshare -n``) when the host permits it;
- inside the child, an audit hook (``sys.addaudithook``) that refuses sockets, subprocesses,
  ``ctypes``, opening files for writing outside the temporary directory and opening files for
  reading outside it and the Python installation (so the standard library still imports).

Audit hooks are not a security boundary against hostile native code; they stop what a small
model writes by accident or by naive design, which is what this tool is for.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import msgspec

from agentsim.tools.base import ToolError, ToolTimeout


class SandboxLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Resource limits of one sandboxed run."""

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_bytes: int = 1 << 30
    file_bytes: int = 16 << 20
    open_files: int = 64
    output_chars: int = 4000


DEFAULT_LIMITS = SandboxLimits()

# Runs first in the child: installs the audit hook, then executes the snippet file.
_BOOTSTRAP = r"""
import sys

def _install(argv):
    # Everything the hook needs lives in this closure, out of reach of the snippet's globals.
    import os
    realpath, fspath, sep = os.path.realpath, os.fspath, os.sep
    tmp = realpath(os.getcwd())
    read_roots = tuple(realpath(p) for p in argv[2:]) + (tmp,)
    devices = frozenset(("/dev/null", "/dev/urandom", "/dev/random", "/dev/zero"))
    # ctypes.dlopen stays allowed because numpy's import opens libraries; calling through
    # ctypes (dlsym, call_function, raw memory) does not. gc/trace/frames would let the
    # snippet reach this closure.
    deny = ("socket.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
            "os.forkpty", "os.system", "os.kill", "os.killpg", "pty.", "ctypes.dlsym",
            "ctypes.call_function", "ctypes.cdata", "ctypes.string_at", "ctypes.wstring_at",
            "ctypes.addressof", "ctypes.get_errno", "ctypes.set_errno", "ctypes.PyObj_FromPtr",
            "gc.get_", "sys.settrace", "sys.setprofile", "sys._current_frames")
    mutating = frozenset(("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod",
                          "os.chown", "os.symlink", "os.link", "os.truncate", "os.utime",
                          "os.chdir", "shutil.rmtree", "shutil.copyfile", "shutil.move"))
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    path_types = (str, bytes, os.PathLike)

    def text(path):
        path = fspath(path)
        return path.decode("utf-8", "surrogateescape") if isinstance(path, bytes) else path

    def inside(path, roots):
        path = realpath(path)
        return any(path == r or path.startswith(r + sep) for r in roots)

    def hook(event, args):
        if event.startswith(deny):
            if event.startswith("socket."):
                raise PermissionError("sandbox: network access is not allowed")
            raise PermissionError("sandbox: " + event + " is not allowed")
        if event == "open":
            path, mode, flags = args
            if path is None or isinstance(path, int):
                return
            path = text(path)
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
                (flags or 0) & write_flags)
            if writing:
                if not inside(path, (tmp,)):
                    raise PermissionError("sandbox: writing " + path + " is not allowed")
            elif not (realpath(path) in devices or inside(path, read_roots)):
                raise PermissionError("sandbox: reading " + path + " is not allowed")
        elif event in mutating:
            for arg in args[:2]:
                if isinstance(arg, path_types) and not inside(text(arg), (tmp,)):
                    raise PermissionError(
                        "sandbox: " + event + " outside the sandbox is not allowed")

    sys.addaudithook(hook)

with open(sys.argv[1], encoding="utf-8") as _f:
    _code = compile(_f.read(), "<snippet>", "exec")
_install(sys.argv)
del _install, _f
exec(_code, {"__name__": "__main__", "__builtins__": __builtins__})
"""


def _read_roots() -> list[str]:
    """Directories the snippet may read from: the Python installation and its packages."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(path)
    return sorted(r for r in roots if r and r != os.sep)


@functools.cache
def network_namespace_available() -> bool:
    """Whether ``unshare -n`` works here (it needs root or unprivileged user namespaces)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        done = subprocess.run(
            [unshare, "-n", "--", "true"], capture_output=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _limit_child(limits: SandboxLimits) -> None:
    # Runs in the child between fork and exec; keep it to async-signal-safe calls.
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # RLIMIT_NPROC counts every process of the user (and threads), so a small cap would break
    # unrelated work of the same user; the audit hook refuses fork/exec instead.


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [{len(text) - limit} more characters truncated]"


def run_sandboxed(code: str, limits: SandboxLimits = DEFAULT_LIMITS) -> str:
    """Run ``code`` in the sandbox and return its stdout (and stderr, if any).

    Raises:
        ToolTimeout: the snippet ran past ``limits.wall_s``.
        ToolError: the snippet exited with an error, was killed, or the sandbox failed to start.
    """
    with tempfile.TemporaryDirectory(prefix="agentsim-py-") as tmp:
        snippet = Path(tmp) / "snippet.py"
        snippet.write_text(code, encoding="utf-8")
        cmd = [sys.executable, "-I", "-c", _BOOTSTRAP, str(snippet), *_read_roots()]
        if network_namespace_available():
            cmd = ["unshare", "-n", "--", *cmd]
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": tmp,
            "TMPDIR": tmp,
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=lambda: _limit_child(limits),
            )
        except OSError as e:
            raise ToolError(f"sandbox failed to start: {e}") from e
        with proc:  # closes the pipes and reaps the child on every path
            try:
                out, err = proc.communicate(timeout=limits.wall_s)
            except subprocess.TimeoutExpired as e:
                _kill_group(proc)
                raise ToolTimeout(f"snippet ran past the {limits.wall_s:g} s time limit") from e
            finally:
                if proc.poll() is None:
                    _kill_group(proc)
    stdout = _truncate(out.decode("utf-8", "replace"), limits.output_chars)
    stderr = _truncate(err.decode("utf-8", "replace"), limits.output_chars)
    if proc.returncode == 0:
        return stdout + (f"\n[stderr]\n{stderr}" if stderr.strip() else "")
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode)
        if sig == signal.SIGXCPU:
            raise ToolTimeout(f"snippet used more than {limits.cpu_s} s of CPU time")
        raise ToolError(f"snippet killed by {sig.name}\n{stdout}{stderr}".strip())
    raise ToolError(f"snippet exited with status {proc.returncode}\n{stdout}{stderr}".strip())


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def python(code: str) -> str:
    """Run a Python 3 snippet in a sandbox and return what it prints.

    The snippet has no network, can only write files in its own temporary directory, and is
    stopped after 10 seconds. Print the values you want to see.

    Args:
        code: The Python source code to run.
    """
    return run_sandboxed(code)
