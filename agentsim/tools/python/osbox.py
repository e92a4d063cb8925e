"""The OS sandbox: bubblewrap namespaces, a minimal read-only file system, seccomp, rlimits.

What the snippet's interpreter gets (built per call, gone when it exits):

- its own user, pid, network, IPC, UTS, mount and (where possible) cgroup namespaces: no
  network but a loopback of its own, no other process visible, nothing to signal or trace;
- a read-only root holding only the Python installation (the agentsim package masked, so task
  data and answer keys are not readable), the directories of the C library and loader, the
  time zone data, a fresh ``/proc`` and minimal ``/dev``, and an ``/etc`` of two lines
  (``passwd``/``group`` naming the sandbox user) — no ``/home``, ``/root`` content, host
  ``/etc``, ``/tmp``, ``/run`` or sockets;
- a private writable working dir, ``/sandbox`` (tmpfs, byte and inode limits, ``noexec``;
  ``/tmp`` links to it, ``HOME`` and ``TMPDIR`` name it);
- the limits in ``SandboxLimits`` and the seccomp filter of ``seccomp.py``, set by
  ``inside.py`` before the snippet runs.

Who it runs as: when the agent is root, a user namespace is made per call mapping the sandbox
user to an unused host id (``SANDBOX_ID``), so the snippet is an unprivileged host user and
``RLIMIT_NPROC`` applies (the kernel exempts uid 0 from it); otherwise bubblewrap maps the
agent's own id, which is not root, so the limit applies too.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agentsim.tools.python import seccomp
from agentsim.tools.python.layout import SandboxUnavailable, layout
from agentsim.tools.python.limits import SandboxLimits
from agentsim.tools.python.stream import Finished, run_streaming

SANDBOX_ID = 2_147_483_646  # host uid/gid the snippet runs as when the agent is root
_INSIDE = Path(__file__).with_name("inside.py")


@dataclass(frozen=True)
class Isolation:
    """How this host isolates snippets (found once per process by ``isolation()``)."""

    bwrap: str
    version: str
    as_root: bool
    seccomp: bool

    def describe(self) -> str:
        who = f"uid {SANDBOX_ID} in its own user namespace" if self.as_root else "own user ns"
        filt = "seccomp" if self.seccomp else "NO seccomp filter (unsupported machine)"
        return (
            f"bubblewrap {self.version}: user/pid/net/ipc/uts/mount namespaces, {who}, "
            f"read-only minimal root, private tmpfs, rlimits, {filt}"
        )


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _root_userns(uid: int) -> int:
    """A fresh user namespace owned by root mapping 0→0 (for bubblewrap's setup) and uid→uid.

    Made by a short-lived ``unshare --user`` child whose namespace outlives it through the
    returned descriptor.
    """
    unshare, sh = shutil.which("unshare"), shutil.which("sh")
    if unshare is None or sh is None:
        raise SandboxUnavailable("util-linux `unshare` or `sh` not found (needed as root)")
    child = subprocess.Popen(
        [unshare, "--user", "--", sh, "-c", "echo; exec cat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert child.stdin is not None and child.stdout is not None
    with child:
        try:
            if child.stdout.readline() != b"\n":
                raise SandboxUnavailable("`unshare --user` failed (user namespaces disabled?)")
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{child.pid}/{name}", "w", encoding="ascii") as fh:
                    fh.write(f"0 0 1\n{uid} {uid} 1\n")
            return os.open(f"/proc/{child.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise SandboxUnavailable(f"cannot set up a user namespace: {e}") from e
        finally:
            child.stdin.close()


def _bootstrap_args(
    limits: SandboxLimits, *, as_root: bool, program: bytes, workdir: str
) -> list[str]:
    """``inside.py``'s arguments: workdir, tmpfs options, uid to become, filter, limits."""
    owner = SANDBOX_ID if as_root else 0
    tmpfs = (
        f"size={limits.disk_bytes},nr_inodes={limits.disk_files},mode=0700,uid={owner},gid={owner}"
    )
    rlimits: dict[str, int | str] = {
        "RLIMIT_AS": limits.memory_bytes,
        "RLIMIT_CPU": f"{limits.cpu_s}:{limits.cpu_s + 1}",  # SIGXCPU, then SIGKILL
        "RLIMIT_FSIZE": limits.file_bytes,
        "RLIMIT_NOFILE": limits.open_files,
        # counted per (user namespace, host uid): bubblewrap's init (pid 1) is the sandbox
        # user's too unless the agent is root, when it stays uid 0
        "RLIMIT_NPROC": limits.tasks + (0 if as_root else 1),
        "RLIMIT_CORE": 0,
        "RLIMIT_MEMLOCK": 0,
        "RLIMIT_MSGQUEUE": 0,
    }
    user = str(SANDBOX_ID) if as_root else "-1"
    return [workdir, tmpfs, user, program.hex(), *(f"{k}={v}" for k, v in rlimits.items())]


def _argv(
    iso: Isolation,
    limits: SandboxLimits,
    userns: int | None,
    etc: tuple[int, int],
    inside: int,
) -> list[str]:
    fs = layout()
    executable = fs.executable
    # for inside.py: mount the tmpfs, empty the bounding set, (as root) become the sandbox user
    caps = ["CAP_SYS_ADMIN", "CAP_SETPCAP", *(["CAP_SETUID", "CAP_SETGID"] if iso.as_root else [])]
    argv = [iso.bwrap]
    if userns is not None:
        argv += ["--userns", str(userns)]
    else:
        argv += ["--unshare-user"]
    argv += ["--uid", "0", "--gid", "0", "--cap-drop", "ALL"]
    for cap in caps:
        argv += ["--cap-add", cap]
    argv += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    argv += ["--unshare-cgroup-try", "--hostname", "sandbox", "--die-with-parent", "--new-session"]
    argv += fs.args
    for fd, path in zip(etc, ("/etc/passwd", "/etc/group"), strict=True):
        argv += ["--perms", "0444", "--ro-bind-data", str(fd), path]
    argv += ["--remount-ro", "/"]  # bubblewrap's root tmpfs: its owner is the sandbox's root
    env = {
        "HOME": fs.workdir,
        "TMPDIR": fs.workdir,
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "LANG": "C.UTF-8",
        "PATH": os.path.dirname(executable),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",  # glibc reserves 64 MiB of address space per thread arena
        "MPLBACKEND": "Agg",
    }
    argv += ["--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    program = b""
    if iso.seccomp:
        program = seccomp.build_filter(allow_processes=limits.subprocesses)
    boot = _bootstrap_args(limits, as_root=iso.as_root, program=program, workdir=fs.workdir)
    loader = f"exec(compile(open({inside}, 'rb').read(), 'inside.py', 'exec'))"
    argv += ["--chdir", "/", "--", executable, "-I", "-B", "-c", loader, *boot]
    return argv


@functools.cache
def _inside_source() -> bytes:
    return _INSIDE.read_bytes()


def _etc_files(as_root: bool) -> tuple[int, int]:
    uid = SANDBOX_ID if as_root else 0
    passwd = f"sandbox:x:{uid}:{uid}:sandbox:{layout().workdir}:/nonexistent\n".encode()
    group = f"sandbox:x:{uid}:\n".encode()
    return _memfd("passwd", passwd), _memfd("group", group)


def launch(iso: Isolation, code: str, limits: SandboxLimits) -> Finished:
    """Run ``code`` under ``iso``; the caller turns the result into output or an error."""
    fds: list[int] = []
    try:
        userns = _root_userns(SANDBOX_ID) if iso.as_root else None
        if userns is not None:
            fds.append(userns)
        etc = _etc_files(iso.as_root)
        fds += etc
        inside = _memfd("inside", _inside_source())
        fds.append(inside)
        stdin = _memfd("snippet", code.encode("utf-8", "surrogatepass"))
        fds.append(stdin)
        argv = _argv(iso, limits, userns, etc, inside)
        return run_streaming(
            argv,
            env={"PATH": "/usr/bin:/bin"},
            stdin=stdin,
            wall_s=limits.wall_s,
            output_bytes=limits.output_bytes,
            pass_fds=[fd for fd in fds if fd != stdin],
        )
    finally:
        for fd in fds:
            os.close(fd)


_PROBE = "import sys; sys.stdout.write('agentsim-sandbox-ok')"


@functools.cache
def _probe() -> Isolation | str:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        version = subprocess.run(
            [bwrap, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.split()[-1:]
    except (OSError, subprocess.SubprocessError) as e:
        return f"bwrap does not run: {e}"
    iso = Isolation(
        bwrap=bwrap,
        version=version[0] if version else "?",
        as_root=os.geteuid() == 0,
        seccomp=seccomp.supported_machine() is not None,
    )
    try:
        done = launch(iso, _PROBE, SandboxLimits(wall_s=30))
    except (SandboxUnavailable, OSError) as e:
        return str(e)
    if done.stdout != b"agentsim-sandbox-ok":
        lines = (done.stderr or done.stdout).decode("utf-8", "replace").strip().splitlines()
        why = lines[-1] if lines else f"exit status {done.returncode}"
        return f"bwrap cannot build the sandbox here: {why}"
    return iso


def isolation() -> Isolation:
    """How this host isolates snippets, probed once per process by running one in it.

    Raises:
        SandboxUnavailable: bubblewrap is missing or cannot build the sandbox here.
    """
    found = _probe()
    if isinstance(found, str):
        raise SandboxUnavailable(f"{found} [{platform.system()} {platform.release()}]")
    return found
