"""Snippets that try to get out of the python tool's OS sandbox.

Each attack is real (it would work in a plain subprocess, and most of them did work against the
old audit-hook sandbox); the test checks the host side too — the listener saw no connection,
the file outside was not written, no process outlived the call — and that the tool, i.e. the
agent process running it, keeps working afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agentsim.testing import journal, only_run_dir, run_scenario
from agentsim.tools import ToolError, ToolTimeout
from agentsim.tools.python import SandboxLimits, SandboxUnavailable, isolation, run_sandboxed

if TYPE_CHECKING:
    from conftest import Listener

try:
    isolation()
    NO_OS_SANDBOX = ""
except SandboxUnavailable as e:
    NO_OS_SANDBOX = f"the OS cannot isolate a snippet here (the tool refuses instead): {e}"
pytestmark = pytest.mark.skipif(bool(NO_OS_SANDBOX), reason=NO_OS_SANDBOX)

LIMITS = SandboxLimits(wall_s=20, cpu_s=10)
X86_64 = platform.machine() == "x86_64"


def attempt(code: str, limits: SandboxLimits = LIMITS) -> str:
    """Run an attack; return what it printed, or the error text when the tool raised."""
    try:
        return run_sandboxed(textwrap.dedent(code), limits)
    except (ToolError, ToolTimeout) as e:
        return f"[tool raised {type(e).__name__}] {e}"


def results(code: str, limits: SandboxLimits = LIMITS) -> dict[str, str]:
    """Run ``TRY`` + an attack that prints one JSON object of {attempt: outcome}."""
    out = attempt(TRY + textwrap.dedent(code), limits)
    try:
        found: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"attack printed no result: {out}") from None
    return found


# a prelude for attacks: try(name, fn) records "ok: <value>" or the exception's type and text
TRY = """
import json, os, sys
out = {}
def attempt(name, fn):
    try:
        out[name] = "ok: " + repr(fn())[:200]
    except BaseException as e:
        out[name] = type(e).__name__ + ": " + str(e)[:200]
"""


def still_works() -> None:
    assert run_sandboxed("print(6 * 7)") == "42\n"


# ---- the escapes of the audit-hook sandbox ---------------------------------------------------
def test_posixsubprocess_fork_exec_is_refused_by_the_kernel() -> None:
    got = results(
        """
        import _posixsubprocess, subprocess
        attempt("popen", lambda: subprocess.run([sys.executable, "-c", "print(1)"]))
        attempt("system", lambda: os.system("true"))
        attempt("posix_spawn", lambda: os.posix_spawn(sys.executable, [sys.executable], {}))
        attempt("fork", os.fork)
        print(json.dumps(out))
        """
    )
    for name in ("popen", "fork", "posix_spawn"):
        assert got[name].startswith("PermissionError: [Errno 1]"), got
    assert not got["system"].startswith("ok: 0"), got
    still_works()


def test_an_execd_child_without_any_hook_is_still_inside(
    tcp_listener: Listener, secret: Path, tmp_path: Path
) -> None:
    # With subprocesses allowed, fork_exec works: the child is a fresh interpreter that never
    # ran the sandbox's Python code, and it is just as confined.
    outside = tmp_path / "from-child.txt"
    child = textwrap.dedent(
        f"""
        import json, os, socket
        out = {{}}
        for name, fn in [
            ("connect", lambda: socket.create_connection(("127.0.0.1", {tcp_listener.address[1]}), 1)),
            ("secret", lambda: open({str(secret)!r}).read()),
            ("write", lambda: open({str(outside)!r}, "w").write("x")),
            ("etc", lambda: open("/etc/shadow").read()),
        ]:
            try:
                out[name] = "ok: " + repr(fn())
            except OSError as e:
                out[name] = type(e).__name__
        print(json.dumps(out))
        """
    )
    loose = SandboxLimits(wall_s=20, cpu_s=10, subprocesses=True, tasks=8)
    out = attempt(
        f"""
        import subprocess, sys
        done = subprocess.run([sys.executable, "-c", {child!r}], capture_output=True, text=True)
        print(done.stdout.strip() or done.stderr)
        """,
        loose,
    )
    got = json.loads(out)
    assert got["connect"] == "ConnectionRefusedError", got
    assert got["secret"] == got["write"] == got["etc"] == "FileNotFoundError", got
    assert tcp_listener.accepted == 0 and not outside.exists()


def test_dir_fd_through_a_symlink_reaches_only_the_sandbox(secret: Path) -> None:
    got = results(
        f"""
        os.symlink("/", "up")
        top = os.open("up", os.O_RDONLY | os.O_DIRECTORY)
        rel = {str(secret).lstrip("/")!r}
        attempt("secret", lambda: os.read(os.open(rel, os.O_RDONLY, dir_fd=top), 100))
        attempt("dotdot", lambda: os.read(os.open("../../../../" + rel, os.O_RDONLY), 100))
        attempt("shadow", lambda: os.open("etc/shadow", os.O_RDONLY, dir_fd=top))
        attempt("proc1root", lambda: os.listdir("/proc/1/root/"))
        attempt("selfroot", lambda: os.read(os.open("/proc/self/root/" + rel, os.O_RDONLY), 99))
        print(json.dumps(out))
        """
    )
    assert got["secret"].startswith("FileNotFoundError"), got
    assert got["dotdot"].startswith("FileNotFoundError"), got
    assert got["shadow"].startswith("FileNotFoundError"), got
    assert got["proc1root"].startswith("PermissionError"), got
    assert got["selfroot"].startswith("FileNotFoundError"), got
    assert secret.read_text() not in json.dumps(got)


def test_patching_the_path_helpers_changes_nothing(secret: Path) -> None:
    got = results(
        f"""
        import posixpath
        posixpath.realpath = os.path.realpath = lambda p, **k: "/tmp/ok"
        posixpath.abspath = os.path.abspath = lambda p: "/tmp/ok"
        posixpath.normpath = lambda p: "/tmp/ok"
        attempt("secret", lambda: open({str(secret)!r}).read())
        attempt("write", lambda: open("/usr/pwned", "w"))
        print(json.dumps(out))
        """
    )
    assert got["secret"].startswith("FileNotFoundError"), got
    assert got["write"].startswith(("OSError: [Errno 30]", "PermissionError")), got


def test_listdir_and_stat_anywhere_see_only_the_sandbox(secret: Path) -> None:
    home = Path.home()
    host_home = sorted(p.name for p in home.iterdir()) if home.is_dir() else []
    got = results(
        f"""
        attempt("root", lambda: sorted(os.listdir("/")))
        attempt("etc", lambda: sorted(os.listdir("/etc")))
        attempt("tmp", lambda: sorted(os.listdir(os.getcwd())))
        attempt("home", lambda: os.listdir("/home"))
        attempt("run", lambda: os.listdir("/run"))
        attempt("sys", lambda: os.listdir("/sys"))
        attempt("homedir", lambda: sorted(os.listdir({str(home)!r})))
        attempt("stat", lambda: os.stat({str(secret)!r}))
        attempt("secretdir", lambda: os.listdir({str(secret.parent)!r}))
        attempt("pids", lambda: sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
        print(json.dumps(out))
        """
    )
    top = set(json.loads(got["root"][4:].replace("'", '"')))
    # the Python installation's path may start anywhere (here under /root and /work)
    python_tops = {Path(p).parts[1] for p in (sys.prefix, sys.base_prefix)}
    assert top <= {"usr", "lib", "lib64", "lib32", "libx32", "etc", "tmp", "proc", "dev",
                   "sandbox"} | python_tops, top  # fmt: skip
    assert "home" not in top or "home" in python_tops, top
    assert got["etc"] == "ok: ['group', 'passwd']", got
    assert got["tmp"] == "ok: []", got
    for name in ("run", "sys", "stat", "secretdir", *(["home"] if "home" not in top else [])):
        assert got[name].startswith("FileNotFoundError"), (name, got)
    if not got["homedir"].startswith("FileNotFoundError"):
        # only the way down to a Python installation may exist there, nothing of the host's
        seen = json.loads(got["homedir"][4:].replace("'", '"'))
        assert set(seen) < set(host_home) or not host_home, (seen, host_home)
        assert not {".bashrc", ".ssh", ".cache", ".profile"} & set(seen), seen
    pids = json.loads(got["pids"][4:])
    assert max(pids) < 10 and os.getpid() not in pids, pids


def test_agentsim_package_is_masked_where_the_python_installation_holds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A non-editable install puts agentsim (and its task data, answer keys included) in
    # site-packages, which the sandbox binds; stand in with a package that is there.
    import msgspec

    from agentsim.tools.python import layout

    package = Path(msgspec.__file__).resolve().parent
    monkeypatch.setattr(layout, "_PACKAGE_DIR", package)
    layout.layout.cache_clear()
    try:
        got = results(
            f"""
            attempt("list", lambda: os.listdir({str(package)!r}))
            attempt("read", lambda: open({str(package / "__init__.py")!r}).read())
            attempt("write", lambda: open({str(package / "x.py")!r}, "w"))
            print(json.dumps(out))
            """
        )
    finally:
        monkeypatch.undo()
        layout.layout.cache_clear()
    assert got["list"] == "ok: []", got
    assert got["read"].startswith("FileNotFoundError"), got
    assert not got["write"].startswith("ok"), got
    siblings = attempt(f"import os; print(os.listdir({str(package.parent)!r}))")
    assert "'msgspec'" in siblings, siblings  # only the package itself is hidden


# ---- network ---------------------------------------------------------------------------------
def test_network_connect_to_a_real_loopback_listener_fails(
    tcp_listener: Listener, abstract_listener: Listener
) -> None:
    port = tcp_listener.address[1]
    got = results(
        f"""
        import socket
        attempt("tcp", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2))
        attempt("tcp6", lambda: socket.create_connection(("::1", {port}), timeout=2))
        attempt("abstract", lambda: socket.socket(socket.AF_UNIX).connect({abstract_listener.address!r}))
        attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("8.8.8.8", 53)))
        attempt("interfaces", lambda: sorted(n for _, n in socket.if_nameindex()))
        attempt("raw", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
        print(json.dumps(out))
        """
    )
    assert got["tcp"].startswith("ConnectionRefusedError"), got
    assert not got["tcp6"].startswith("ok"), got
    assert got["abstract"].startswith("ConnectionRefusedError"), got
    assert got["udp"].startswith("OSError: [Errno 101] Network is unreachable"), got
    assert got["interfaces"] == "ok: ['lo']", got
    assert got["raw"].startswith("PermissionError"), got
    time.sleep(0.3)  # let the listener thread see a connection if one had arrived
    assert tcp_listener.accepted == 0 and abstract_listener.accepted == 0
    still_works()


# ---- files -----------------------------------------------------------------------------------
def test_reading_etc_and_root_finds_nothing_of_the_host() -> None:
    host_passwd = Path("/etc/passwd").read_text()
    got = results(
        """
        attempt("passwd", lambda: open("/etc/passwd").read())
        for f in ("/etc/shadow", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf",
                  "/root/.bashrc", "/root/.ssh/id_rsa", "/root/.cache", "/etc/ssh"):
            attempt(f, lambda f=f: open(f).read())
        attempt("rootdir", lambda: os.listdir("/root"))
        print(json.dumps(out))
        """
    )
    assert "root:x:0:0" in host_passwd and "root:x:0:0" not in got["passwd"], got
    assert got["passwd"].startswith("ok: 'sandbox:x:"), got
    for f in ("/etc/shadow", "/etc/hostname", "/etc/hosts", "/root/.bashrc", "/root/.ssh/id_rsa"):
        assert got[f].startswith("FileNotFoundError"), (f, got)
    host_root = set(os.listdir("/root")) if os.access("/root", os.R_OK) else set()
    if got["rootdir"].startswith("ok"):
        seen = set(json.loads(got["rootdir"][4:].replace("'", '"')))
        assert seen <= {".pyenv", ".local", ".conda", "miniconda3"}, seen  # a Python's prefix
        assert not (host_root - seen) & {".bashrc", ".ssh", ".cache"} & seen


def test_writing_outside_its_directory_fails_and_leaves_the_host_untouched(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    pth = Path(sys.prefix).resolve() / "lib" / "pwned.pth"
    stdlib_file = Path(os.__file__).resolve()
    before = stdlib_file.stat().st_mtime
    got = results(
        f"""
        import sysconfig
        attempt("host", lambda: open({str(target)!r}, "w").write("x"))
        attempt("etc", lambda: open("/etc/passwd", "a").write("x"))
        attempt("root", lambda: open("/pwned", "w"))
        attempt("usr", lambda: open("/usr/lib/pwned", "w"))
        attempt("pth", lambda: open(os.path.join(sysconfig.get_paths()["purelib"], "pwned.pth"), "w"))
        attempt("prefix", lambda: open({str(pth)!r}, "w"))
        attempt("utime", lambda: os.utime({str(stdlib_file)!r}))
        attempt("chmod", lambda: os.chmod({str(stdlib_file)!r}, 0o777))
        attempt("rename", lambda: os.rename({str(stdlib_file)!r}, "/tmp/os.py"))
        attempt("dev", lambda: open("/dev/pwned", "w"))
        attempt("shm", lambda: open("/dev/shm/pwned", "w"))
        attempt("link", lambda: os.link("/etc/passwd", "p"))
        print(json.dumps(out))
        """
    )
    for name, outcome in got.items():
        assert not outcome.startswith("ok"), (name, got)
    assert got["host"].startswith("FileNotFoundError"), got
    assert not target.exists() and not pth.exists()
    assert not Path(sys.prefix, "lib", "pwned.pth").exists()
    assert stdlib_file.stat().st_mtime == before
    assert not Path("/dev/shm/pwned").exists()


def test_symlink_tricks_lead_nowhere(secret: Path) -> None:
    got = results(
        f"""
        os.symlink({str(secret)!r}, "s1")
        os.symlink("/proc/1/root/etc/shadow", "s2")
        os.symlink("/proc/1/cwd", "s3")
        attempt("s1", lambda: open("s1").read())
        attempt("s2", lambda: open("s2").read())
        attempt("s3", lambda: os.listdir("s3"))
        attempt("fd", lambda: sorted(os.listdir("/proc/1/fd")))
        print(json.dumps(out))
        """
    )
    assert got["s1"].startswith("FileNotFoundError"), got
    assert got["s2"].startswith("PermissionError"), got
    assert got["s3"].startswith("PermissionError"), got
    assert got["fd"].startswith("PermissionError"), got


def test_disk_fill_stops_at_the_size_limit() -> None:
    limits = SandboxLimits(wall_s=20, cpu_s=10, disk_bytes=8 << 20, file_bytes=3 << 20)
    got = results(
        """
        import json, os
        written, err, files = 0, None, 0
        chunk = b"x" * (1 << 20)
        while err is None:
            files += 1
            with open(f"fill{files}", "wb", buffering=0) as f:
                while True:
                    try:
                        written += f.write(chunk)
                    except OSError as e:
                        if e.errno == 28:  # ENOSPC: the directory is full
                            err = e.strerror
                        break  # EFBIG: this file is at the per-file limit, start another
        print(json.dumps({"written": written, "err": err, "files": files}))
        """,
        limits,
    )
    assert got["err"] == "No space left on device", got
    assert 7 << 20 <= int(got["written"]) <= 8 << 20, got
    assert int(got["files"]) >= 3, got  # no single file grew past 3 MiB
    still_works()


def test_inode_bomb_stops_at_the_file_limit() -> None:
    got = results(
        """
        import json, os
        n = 0
        try:
            while True:
                os.mkdir(f"d{n}") if n % 2 else open(f"f{n}", "w").close()
                n += 1
        except OSError as e:
            print(json.dumps({"made": n, "err": e.strerror}))
        """,
        SandboxLimits(wall_s=20, cpu_s=10, disk_files=500),
    )
    assert got["err"] == "No space left on device", got
    assert 450 <= int(got["made"]) < 500, got


# ---- processes -------------------------------------------------------------------------------
def test_fork_bomb_is_refused() -> None:
    out = attempt(
        """
        import os
        n = 0
        while True:
            try:
                os.fork()
                n += 1
            except OSError as e:
                print(n, e.errno)
                break
        """
    )
    assert out == "0 1\n"  # EPERM at the first fork


def test_fork_bomb_with_subprocesses_allowed_hits_the_process_cap(
    host_pids_with: Callable[[str], list[int]],
) -> None:
    marker = f"agentsim-bomb-{os.getpid()}-{time.monotonic_ns()}"
    limits = SandboxLimits(wall_s=3, cpu_s=10, subprocesses=True, tasks=8)
    out = attempt(
        f"""
        import os, sys, time
        made, refused = 0, 0
        for _ in range(200):
            try:
                pid = os.fork()
            except OSError:
                refused += 1
                continue
            if pid == 0:
                # every child forks on too, and sleeps under a name the host can find
                try:
                    os.fork()
                except OSError:
                    pass
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", {marker!r}])
            made += 1
        print(made, refused, flush=True)
        time.sleep(60)
        """,
        limits,
    )
    assert out.startswith("[tool raised ToolTimeout]"), out
    made, refused = map(int, out.splitlines()[-1].split())
    assert made <= 7 and refused >= 193, out  # the cap held: 8 tasks, grandchildren included
    assert _gone(host_pids_with, marker), host_pids_with(marker)  # the wall limit killed all


def _gone(find: Callable[[str], list[int]], marker: str) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not find(marker):
            return True
        time.sleep(0.05)
    return False


def test_process_cap_counts_what_the_sandbox_has_made() -> None:
    out = attempt(
        """
        import os, time
        made = 0
        for _ in range(100):
            try:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                made += 1
            except OSError as e:
                print(made, e.errno)
                break
        """,
        SandboxLimits(wall_s=20, cpu_s=10, subprocesses=True, tasks=8),
    )
    made, errno = map(int, out.split())
    assert made == 7 and errno == 11  # 8 tasks: the snippet and 7 children; then EAGAIN


def test_thread_bomb_hits_the_task_cap() -> None:
    out = attempt(
        """
        import threading, time
        stop = threading.Event()
        n = 0
        try:
            while True:
                threading.Thread(target=stop.wait, daemon=True).start()
                n += 1
        except RuntimeError as e:
            print(n, e)
        stop.set()
        """,
        SandboxLimits(wall_s=20, cpu_s=10, tasks=6),
    )
    assert out == "5 can't start new thread\n"  # the main thread and 5 more


def test_wall_limit_kills_every_process_of_the_sandbox(
    host_pids_with: Callable[[str], list[int]],
) -> None:
    marker = f"agentsim-sleeper-{os.getpid()}-{time.monotonic_ns()}"
    limits = SandboxLimits(wall_s=2, cpu_s=10, subprocesses=True, tasks=8)
    out = attempt(
        f"""
        import os, sys
        for _ in range(3):
            if os.fork() == 0:
                os.setsid()  # leave the process group: killing the group alone would miss it
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", {marker!r}])
        print("started", flush=True)
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", {marker!r}])
        """,
        limits,
    )
    assert out.startswith("[tool raised ToolTimeout] snippet ran past the 2 s"), out
    assert _gone(host_pids_with, marker), host_pids_with(marker)


# ---- the agent: its /proc, its signals, its memory, its environment --------------------------
def test_agent_is_invisible_unsignalable_and_untraceable(monkeypatch: pytest.MonkeyPatch) -> None:
    token = f"agent-secret-{time.monotonic_ns()}"
    monkeypatch.setenv("AGENTSIM_API_KEY", token)
    me = os.getpid()
    got = results(
        f"""
        import ctypes, signal
        libc = ctypes.CDLL(None, use_errno=True)
        def ptrace(pid):
            if libc.ptrace(16, pid, 0, 0) != 0:  # PTRACE_ATTACH
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        def scan():
            seen = []
            for p in os.listdir("/proc"):
                if p.isdigit():
                    for what in ("environ", "cmdline"):
                        try:
                            seen.append(open(f"/proc/{{p}}/{{what}}", "rb").read().decode("latin1"))
                        except OSError:
                            pass
            return seen
        attempt("env", lambda: dict(os.environ))
        attempt("scan", scan)
        attempt("ppid", os.getppid)
        attempt("kill_agent", lambda: os.kill({me}, signal.SIGKILL))
        attempt("kill_parent", lambda: os.kill(os.getppid(), signal.SIGKILL))
        attempt("kill_init", lambda: os.kill(1, signal.SIGTERM))
        attempt("ptrace_agent", lambda: ptrace({me}))
        attempt("ptrace_init", lambda: ptrace(1))
        attempt("environ_init", lambda: open("/proc/1/environ").read())
        attempt("mem_init", lambda: open("/proc/1/mem", "rb").read(1))
        attempt("kill_all", lambda: os.kill(-1, signal.SIGKILL))
        print(json.dumps(out))
        """
    )
    assert token not in json.dumps(got), "the agent's environment leaked"
    assert "pytest" not in got["scan"], got["scan"]
    assert got["ppid"] == "ok: 1", got
    assert got["kill_agent"].startswith("ProcessLookupError"), got
    assert got["kill_parent"].startswith("PermissionError"), got
    assert got["kill_init"].startswith("PermissionError"), got
    assert got["ptrace_agent"].startswith("PermissionError"), got
    assert got["ptrace_init"].startswith("PermissionError"), got
    assert got["environ_init"].startswith("PermissionError"), got
    assert got["mem_init"].startswith("PermissionError"), got
    assert got["kill_all"].startswith(("ok", "ProcessLookupError")), got  # only itself to hit
    still_works()


def test_snippet_cannot_raise_its_limits_back() -> None:
    got = results(
        """
        import resource
        inf = resource.RLIM_INFINITY
        for name in ("RLIMIT_NPROC", "RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE"):
            attempt(name, lambda name=name: resource.setrlimit(getattr(resource, name), (inf, inf)))
        attempt("after", lambda: bytearray(900 << 20))
        print(json.dumps(out))
        """,
        SandboxLimits(wall_s=20, cpu_s=10, memory_bytes=512 << 20),
    )
    for name in ("RLIMIT_NPROC", "RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE"):
        assert got[name] == "ValueError: not allowed to raise maximum limit", (name, got)
    assert got["after"].startswith("MemoryError"), got


def test_no_privilege_to_unshare_mount_chroot_or_become_root() -> None:
    got = results(
        """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        def call(fn, *args):
            if fn(*args) != 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
        attempt("unshare_user", lambda: call(libc.unshare, 0x10000000))
        attempt("unshare_mount", lambda: call(libc.unshare, 0x00020000))
        attempt("mount", lambda: call(libc.mount, b"tmpfs", b"/usr", b"tmpfs", 0, None))
        attempt("remount", lambda: call(libc.mount, None, b"/", None, 32 | 1 << 5, None))
        attempt("umount", lambda: call(libc.umount2, b"/usr/lib64", 2))
        attempt("chroot", lambda: os.chroot("/tmp"))
        attempt("setuid", lambda: os.setuid(0))
        attempt("caps", lambda: [l for l in open("/proc/self/status") if l.startswith("Cap")])
        attempt("nnp", lambda: [l for l in open("/proc/self/status") if "NoNewPrivs" in l])
        print(json.dumps(out))
        """
    )
    for name in ("unshare_user", "unshare_mount", "mount", "remount", "umount", "chroot", "setuid"):
        assert got[name].startswith(("OSError: [Errno 1]", "PermissionError")), (name, got)
    assert "CapEff:\\t0000000000000000" in got["caps"], got
    assert "CapBnd:\\t0000000000000000" in got["caps"], got
    assert "CapPrm:\\t0000000000000000" in got["caps"], got
    assert "NoNewPrivs:\\t1" in got["nnp"], got


@pytest.mark.skipif(not X86_64, reason="raw syscall numbers below are x86_64's")
def test_raw_syscalls_from_native_code_are_filtered() -> None:
    got = results(
        """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        def sys_(nr, *args):
            r = libc.syscall(nr, *args)
            if r < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
            if r == 0:
                os._exit(0)  # a child that got through: leave at once
            return r
        attempt("fork", lambda: sys_(57))
        attempt("vfork_like_clone", lambda: sys_(56, 0x4111, 0, 0, 0, 0))  # CLONE_VM|VFORK|SIGCHLD
        attempt("clone3", lambda: sys_(435, 0, 0))
        attempt("clone_newuser", lambda: sys_(56, 0x10010000 | 0x100 | 0x800 | 0x400, 0, 0, 0, 0))
        attempt("io_uring", lambda: sys_(425, 8, 0))
        attempt("bpf", lambda: sys_(321, 0, 0, 0))
        attempt("perf", lambda: sys_(298, 0, 0, -1, -1, 0))
        attempt("keyctl", lambda: sys_(250, 0, 0))
        print(json.dumps(out), flush=True)
        attempt("x32_getpid", lambda: sys_(0x40000000 | 39))
        print("survived the x32 call")
        """
    )
    for name in ("fork", "vfork_like_clone", "clone_newuser", "io_uring", "bpf", "perf", "keyctl"):
        assert got[name].startswith("PermissionError: [Errno 1]"), (name, got)
    assert got["clone3"].startswith("OSError: [Errno 38] Function not implemented"), got
    # the x32 ABI kills the process before it can answer
    out = attempt("import ctypes\nctypes.CDLL(None).syscall(0x40000000 | 39)\nprint('alive')")
    assert out.startswith("[tool raised ToolError] snippet killed by SIGSYS"), out


def test_threads_still_work_under_the_filter() -> None:
    out = attempt(
        """
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(4) as pool:
            print(sum(pool.map(lambda x: x * x, range(100))))
        """
    )
    assert out == "328350\n"


def test_huge_argv_and_environment_for_exec_fail_inside() -> None:
    got = results(
        """
        big = "x" * 200_000
        attempt("argv", lambda: os.execv(sys.executable, [sys.executable, big]))
        attempt("many", lambda: os.execv(sys.executable, [sys.executable] + ["y" * 100_000] * 40))
        attempt("env", lambda: os.execve(sys.executable, [sys.executable], {"A": big}))
        print(json.dumps(out))
        """
    )
    for name in ("argv", "many", "env"):
        assert got[name].startswith("OSError: [Errno 7] Argument list too long"), (name, got)
    still_works()


def test_huge_snippet_is_refused_before_anything_runs() -> None:
    with pytest.raises(ToolError, match=r"over the 1048576-byte limit"):
        run_sandboxed("#" * (2 << 20))


# ---- native code: a .so written into the dir -------------------------------------------------
EVIL_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <unistd.h>

int attack(int port, const char *secret, int agent, const char *outside) {
    int won = 0;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0) won |= 1;
    if (open(secret, O_RDONLY) >= 0) won |= 2;
    if (open(outside, O_WRONLY | O_CREAT, 0644) >= 0) won |= 4;
    if (kill(agent, 0) == 0) won |= 8;
    if (ptrace(PTRACE_ATTACH, agent, 0, 0) == 0) won |= 16;
    if (unshare(CLONE_NEWUSER) == 0) won |= 32;
    pid_t child = fork();
    if (child == 0) _exit(0);
    if (child > 0) won |= 64;
    if (setuid(0) == 0) won |= 128;
    if (kill(1, SIGKILL) == 0) won |= 256;
    return won;
}
"""


@pytest.fixture
def evil_so(tmp_path: Path) -> bytes:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        # bytes of a real shared library stand in: the noexec check still applies
        return Path(ctypes_library()).read_bytes()
    src = tmp_path / "evil.c"
    src.write_text(EVIL_C)
    out = tmp_path / "evil.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(out), str(src)], check=True)
    return out.read_bytes()


def ctypes_library() -> str:
    import _ctypes

    return str(_ctypes.__file__)


def test_loading_a_written_so_is_refused_and_native_code_is_contained(
    evil_so: bytes, tcp_listener: Listener, secret: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "native-was-here"
    blob = base64.b64encode(evil_so).decode()
    got = results(
        f"""
        import base64, ctypes
        data = base64.b64decode({blob!r})
        open("evil.so", "wb").write(data)
        attempt("dir", lambda: ctypes.CDLL(os.path.abspath("evil.so")))
        fd = os.memfd_create("evil")
        os.write(fd, data)
        lib = None
        def load():
            global lib
            lib = ctypes.CDLL(f"/proc/self/fd/{{fd}}")
            return "loaded"
        attempt("memfd", load)
        if lib is not None and hasattr(lib, "attack"):
            attempt("attack", lambda: lib.attack({tcp_listener.address[1]},
                    {str(secret)!r}.encode(), {os.getpid()}, {str(outside)!r}.encode()))
        print(json.dumps(out))
        """
    )
    assert "failed to map segment" in got["dir"] or "Operation not permitted" in got["dir"], got
    if "attack" in got:  # compiled: its code ran, and every escape it tried failed
        assert got["attack"] == "ok: 0", got
    assert tcp_listener.accepted == 0 and not outside.exists()
    still_works()


def test_descriptors_of_the_setup_are_closed() -> None:
    out = attempt("import os; print(sorted(os.listdir('/proc/self/fd')))")
    assert out == "['0', '1', '2', '3']\n"  # stdio and the listing's own descriptor


def test_killing_the_agent_mid_call_leaves_no_sandbox_behind(
    host_pids_with: Callable[[str], list[int]], tmp_path: Path
) -> None:
    marker = f"agentsim-orphan-{os.getpid()}-{time.monotonic_ns()}"
    agent = tmp_path / "agent.py"
    agent.write_text(
        "from agentsim.tools.python import SandboxLimits, run_sandboxed\n"
        "code = 'import os, sys\\n"
        f'os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", "{marker}"])\'\n'
        "run_sandboxed(code, SandboxLimits(wall_s=60))\n"
    )
    proc = subprocess.Popen([sys.executable, str(agent)])
    try:
        assert _appears(host_pids_with, marker), "the snippet never started"
    finally:
        proc.kill()
        proc.wait()
    assert _gone(host_pids_with, marker), host_pids_with(marker)


def _appears(find: Callable[[str], list[int]], marker: str) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if find(marker):
            return True
        time.sleep(0.05)
    return False


# ---- a real agent process calling the tool through the bus ----------------------------------
AGENT_ATTACK = """
import glob, json, os, signal, socket
found = {"env": sorted(os.environ), "leak": [], "signals": {}, "sockets": []}
for p in os.listdir("/proc"):
    if p.isdigit():
        for what in ("environ", "cmdline"):
            try:
                data = open(f"/proc/{p}/{what}", "rb").read()
            except OSError:
                continue
            if b"ESCAPE_TOKEN" in data or b"agentsim" in data:
                found["leak"].append(f"{p}/{what}")
for pid in (os.getppid(), 1, -1):
    try:
        os.kill(pid, signal.SIGKILL)
        found["signals"][str(pid)] = "sent"
    except OSError as e:
        found["signals"][str(pid)] = type(e).__name__
for path in glob.glob("/tmp/**", recursive=True) + glob.glob("/run/**", recursive=True):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        found["sockets"].append(path)
    except OSError:
        pass
print(json.dumps(found))
"""


def react_scenario(tmp_path: Path, code: str, sandbox: str = "") -> Path:
    call = json.dumps({"tool": "python", "arguments": {"code": code}})
    final = json.dumps({"final_answer": "{gold}"})
    f = tmp_path / "react.toml"
    f.write_text(
        f'[run]\nname = "sandbox"\n{sandbox}\n[tasks]\nsuite = "gsm8k"\nlimit = 1\n'
        '[agents.solver]\nengine = "scripted"\ntools = ["python"]\n[agents.solver.options]\n'
        f'table = "gsm8k"\nscript = [{json.dumps(call)}, {json.dumps(final)}]\n'
        '[protocol]\nkind = "react"\n'
    )
    return f


def tool_results(run: Path) -> list[str]:
    return [
        r["body"]["content"]
        for r in journal(run)
        if r["event"] == "envelope" and r["kind"] == "tool_result"
    ]


def test_a_real_agent_runs_an_attack_through_the_bus_and_carries_on(tmp_path: Path) -> None:
    token = f"ESCAPE_TOKEN-{time.monotonic_ns()}"
    scenario = react_scenario(tmp_path, AGENT_ATTACK)
    env = {**os.environ, "AGENTSIM_ESCAPE_TOKEN": token}
    p = subprocess.run(
        [sys.executable, "-m", "agentsim", str(scenario), "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    run = only_run_dir(tmp_path / "runs")
    [content] = tool_results(run)
    found = json.loads(content)
    assert token not in content and "AGENTSIM_ESCAPE_TOKEN" not in found["env"]
    assert found["leak"] == [] and found["sockets"] == [], found
    assert found["signals"]["1"] == "PermissionError", found  # ppid and init: bwrap's init
    recs = journal(run)
    flow = [
        (r["kind"], r["src"])
        for r in recs
        if r["event"] == "envelope" and r.get("task_id") == "gsm8k-0"
    ]
    assert flow == [
        ("ask", "runner"),
        ("reply", "solver"),
        ("tool_call", "runner"),
        ("tool_result", "solver"),
        ("ask", "runner"),
        ("reply", "solver"),
    ], flow  # the agent answered after its tool call: alive and still talking
    results = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    assert [r["correct"] for r in results] == [True]
    sandbox = json.loads((run / "env.json").read_text())["python_sandbox"]
    assert sandbox["mode"] == "os" and sandbox["isolation"].startswith("bubblewrap"), sandbox


def test_weak_opt_in_is_named_in_env_json_and_used_by_the_agent(tmp_path: Path) -> None:
    code = "import socket\nsocket.socket()\nprint('made a socket')"
    scenario = react_scenario(tmp_path, code, sandbox='python_sandbox = "weak"')
    p = run_scenario(scenario, tmp_path / "runs")
    assert p.returncode == 0, p.stderr
    run = only_run_dir(tmp_path / "runs")
    sandbox = json.loads((run / "env.json").read_text())["python_sandbox"]
    assert sandbox["mode"] == "weak" and "NOT OS isolation" in sandbox["isolation"]
    [content] = tool_results(run)
    assert "sandbox: network access is not allowed" in content  # the audit hook answered
    (tmp_path / "os").mkdir()
    q = run_scenario(react_scenario(tmp_path / "os", code), tmp_path / "os" / "runs")
    assert q.returncode == 0, q.stderr
    assert tool_results(only_run_dir(tmp_path / "os" / "runs")) == ["made a socket\n"]


# ---- the same sandbox when the agent is not root ---------------------------------------------
NON_ROOT_AGENT = r"""
import json, sys
sys.path[:0] = [{src!r}, {site!r}]
from agentsim.tools.python import SandboxLimits, isolation, run_sandboxed

def run(code, **kw):
    try:
        return run_sandboxed(code, SandboxLimits(wall_s=20, cpu_s=10, **kw))
    except Exception as e:
        return f"{{type(e).__name__}}: {{e}}"

print(json.dumps({{
    "as_root": isolation().as_root,
    "whoami": run("import os\ncaps = {{l.split()[1] for l in open('/proc/self/status') if l.startswith('Cap')}}\nprint(os.getuid(), caps)"),
    "fork": run("import os\ntry:\n  os.fork()\nexcept OSError as e:\n  print(e.errno)"),
    "forks": run("import os, time\nn = 0\ntry:\n  while True:\n    if os.fork() == 0:\n      time.sleep(20); os._exit(0)\n    n += 1\nexcept OSError as e:\n  print(n, e.errno)", subprocesses=True, tasks=8),
    "threads": run("import threading\nev = threading.Event(); n = 0\ntry:\n  while True:\n    threading.Thread(target=ev.wait, daemon=True).start(); n += 1\nexcept RuntimeError:\n  print(n)\nev.set()", tasks=6),
    "connect": run("import socket\ntry:\n  socket.create_connection(('127.0.0.1', {port}), 2)\nexcept OSError as e:\n  print(type(e).__name__)"),
    "writes": run("import os\nfor p in ('/x', '/usr/x', '/etc/passwd', '/dev/shm/x', {outside!r}):\n  try:\n    open(p, 'a').close(); print('wrote', p)\n  except OSError as e:\n    print(e.errno)"),
    "disk": run("try:\n  open('f', 'wb').write(b'x' * (4 << 20))\nexcept OSError as e:\n  print(e.errno)", disk_bytes=2 << 20),
}}))
"""


@pytest.mark.skipif(
    os.geteuid() != 0, reason="the agent is not root here: every test above ran in this mode"
)
def test_non_root_agent_gets_the_same_sandbox(tcp_listener: Listener, tmp_path: Path) -> None:
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    setpriv = shutil.which("setpriv")
    if system_python is None or setpriv is None:
        pytest.skip("needs /usr/bin/python3 and setpriv to act as an unprivileged agent")
    version = subprocess.run(
        [system_python, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if version != str(sys.version_info[:2]):
        pytest.skip(
            f"the system Python is {version}, the compiled deps are for {sys.version_info[:2]}"
        )
    import msgspec

    site = str(Path(msgspec.__file__).resolve().parents[1])
    src = str(Path(__file__).resolve().parents[2])
    outside = tmp_path / "nobody-was-here"
    code = NON_ROOT_AGENT.format(
        src=src, site=site, port=tcp_listener.address[1], outside=str(outside)
    )
    done = subprocess.run(
        [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", system_python, "-I", "-c", code],
        capture_output=True, text=True, timeout=120, cwd="/",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["as_root"] is False
    assert got["whoami"] == "0 {'0000000000000000'}\n", got  # its namespace's uid 0, no caps
    assert got["fork"] == "1\n", got
    assert got["forks"] == "7 11\n", got  # 8 tasks: the snippet and 7 children, then EAGAIN
    assert got["threads"] == "5\n", got
    assert got["connect"] == "ConnectionRefusedError\n", got
    assert got["writes"].split() in (["30", "30", "13", "30", "2"], ["30"] * 4 + ["2"]), got
    assert got["disk"] == "28\n", got
    assert tcp_listener.accepted == 0 and not outside.exists()
