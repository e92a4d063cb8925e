"""The weaker fallback sandbox, used only when a scenario opts in (``run.python_sandbox = "weak"``).

It is what the python tool did before OS isolation, and it is NOT a security boundary:

- a fresh interpreter (``python -I``) in a new temporary directory, with a scrubbed
  environment, in its own process group that is killed at the wall-time limit;
- resource limits: address space, CPU seconds, file size, open files (no process cap: the
  kernel ignores RLIMIT_NPROC for root and counts all of a user's processes otherwise);
- a network namespace with no interfaces (``unshare -n``) when the host permits it;
- an audit hook (``sys.addaudithook``) refusing sockets, subprocesses, ``ctypes`` calls and
  files outside the temporary directory and the Python installation.

Known escapes (why the OS sandbox exists): ``_posixsubprocess.fork_exec`` raises no audit
event and the exec'd child has no hook; ``dir_fd=`` relative paths through a symlink; patching
the ``posixpath`` helpers the hook calls; ``os.listdir``/``os.stat`` anywhere; native code.
Runs using it are named as such in ``env.json``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from agentsim.tools.python.limits import SandboxLimits
from agentsim.tools.python.stream import Finished, run_streaming

DESCRIPTION = "weak: audit hook + rlimits + unshare -n (opted in; NOT OS isolation)"

# Runs first in the child: installs the audit hook, then executes the snippet file.
_BOOTSTRAP = r"""
import sys

def _install(argv):
    # Everything the hook needs lives in this closure, out of reach of the snippet's globals.
    import json, os, resource
    for name, value in json.loads(argv[2]):
        resource.setrlimit(getattr(resource, name), (value, value))
    realpath, fspath, sep = os.path.realpath, os.fspath, os.sep
    tmp = realpath(os.getcwd())
    read_roots = tuple(realpath(p) for p in argv[3:]) + (tmp,)
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


def launch(code: str, limits: SandboxLimits) -> Finished:
    """Run ``code`` in the weak sandbox."""
    rlimits = [
        ["RLIMIT_AS", limits.memory_bytes],
        ["RLIMIT_CPU", limits.cpu_s],
        ["RLIMIT_FSIZE", limits.file_bytes],
        ["RLIMIT_NOFILE", limits.open_files],
        ["RLIMIT_CORE", 0],
    ]
    with tempfile.TemporaryDirectory(prefix="agentsim-py-") as tmp:
        snippet = Path(tmp) / "snippet.py"
        snippet.write_text(code, encoding="utf-8")
        cmd = [sys.executable, "-I", "-c", _BOOTSTRAP, str(snippet), json.dumps(rlimits)]
        cmd += _read_roots()
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
        with open(os.devnull, "rb") as devnull:
            return run_streaming(
                cmd,
                env=env,
                stdin=devnull.fileno(),
                wall_s=limits.wall_s,
                output_bytes=limits.output_bytes,
                cwd=tmp,
            )
