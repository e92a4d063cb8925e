"""First code run inside the OS sandbox: finish locking it down, then run the snippet.

This file reaches ``python -I -B`` inside bubblewrap as an inherited descriptor; it imports
nothing but the standard library. bubblewrap has already built the namespaces and the read-only file
system; it starts this interpreter as root *of the sandbox's own user namespace* holding only
the capabilities needed for the steps below, in this order:

1. mount the private writable directory: a tmpfs with a byte and an inode limit (bubblewrap
   has no option for the inode limit), ``noexec``, owned by the sandbox user;
2. lower the resource limits (hard = soft but for CPU, whose hard limit is the SIGKILL one
   second after the SIGXCPU; the snippet cannot raise a hard limit back, since raising a
   hard limit needs ``CAP_SYS_RESOURCE`` in the host's namespace, which nothing here has);
   ``RLIMIT_NPROC`` is counted per user *per user namespace*, so it caps this sandbox alone;
3. empty the capability bounding set, then drop to the unprivileged sandbox user (an id
   mapped to an unused host id when the agent runs as root) or — when only one id is mapped
   and the snippet stays uid 0 of its namespace — lock the securebits so that root gains
   nothing from exec; clear every remaining capability set;
4. verify no capability is left, install the seccomp filter, take the snippet from stdin and
   close every other inherited descriptor;
5. run the snippet; its traceback starts at the snippet, not here.
"""

import ctypes
import os
import resource
import sys

_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_PR_CAPBSET_DROP, _PR_SET_SECUREBITS, _PR_SET_SECCOMP = 24, 28, 22
_SECCOMP_MODE_FILTER = 2
_SECUREBITS_ALL_LOCKED = 0xFF  # NOROOT, NO_SETUID_FIXUP, KEEP_CAPS, NO_CAP_AMBIENT_RAISE + locks
_CAP_VERSION_3 = 0x20080522


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def _fail(step: str, err: int = 0) -> None:
    detail = f": {os.strerror(err)}" if err else ""
    sys.stderr.write(f"sandbox setup failed at {step}{detail}\n")
    sys.stderr.flush()
    os._exit(70)


def _empty_bounding_set(libc: ctypes.CDLL) -> None:
    # no exec can ever grant a capability outside the bounding set: empty it
    cap = 0
    while libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    if ctypes.get_errno() != 22:  # EINVAL: past the last capability
        _fail("emptying the bounding set", ctypes.get_errno())


def _clear_caps(libc: ctypes.CDLL) -> None:
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    if libc.capset(header, data) != 0:
        _fail("capset", ctypes.get_errno())


def _caps_left() -> bool:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key.startswith("Cap") and int(value, 16):
                return True
    return False


def _setup(args: list[str]) -> bytes:
    # args: workdir, tmpfs options, sandbox uid (-1: stay uid 0), seccomp hex, NAME=soft[:hard]
    workdir, tmpfs, uid, program_hex, *limits = args
    libc = ctypes.CDLL(None, use_errno=True)
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    if libc.mount(b"tmpfs", workdir.encode(), b"tmpfs", flags, tmpfs.encode()) != 0:
        _fail("mounting the writable directory", ctypes.get_errno())
    for item in limits:
        name, _, value = item.partition("=")
        soft, _, hard = value.partition(":")
        resource.setrlimit(getattr(resource, name), (int(soft), int(hard or soft)))
    user = int(uid)
    if user < 0 and libc.prctl(_PR_SET_SECUREBITS, _SECUREBITS_ALL_LOCKED, 0, 0, 0) != 0:
        # uid 0 of the sandbox's namespace stays uid 0: root gets no capabilities from exec
        _fail("securebits", ctypes.get_errno())
    _empty_bounding_set(libc)
    if user >= 0:
        os.setgroups([])
        os.setresgid(user, user, user)
        os.setresuid(user, user, user)  # leaving uid 0 clears every capability
    _clear_caps(libc)
    if _caps_left():
        _fail("dropping capabilities")
    os.chdir(workdir)
    program = bytes.fromhex(program_hex)
    if program:
        prog = _SockFprog(len(program) // 8, program)
        if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
            _fail("seccomp", ctypes.get_errno())
    with os.fdopen(0, "rb", closefd=False) as fh:
        source = fh.read()
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])  # bubblewrap's inputs
    return source


def _main() -> None:
    source = _setup(sys.argv[1:])
    sys.argv = ["<snippet>"]
    try:
        code = compile(source, "<snippet>", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    except SystemExit:
        raise
    except BaseException as e:
        import linecache
        import traceback

        text = source.decode("utf-8", "replace")
        linecache.cache["<snippet>"] = (len(text), None, text.splitlines(True), "<snippet>")
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        traceback.print_exception(type(e), e, tb)
        sys.exit(1)


if __name__ == "__main__":
    _main()
