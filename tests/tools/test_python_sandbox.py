"""The python tool: what a snippet can do, the limits, the refusal, and the weak opt-in.

The attacks on the OS sandbox live in ``test_python_escapes.py``.
"""

from __future__ import annotations

import json
import os
import re
import stat
import textwrap
import time
from pathlib import Path

import pytest

from agentsim.chat import FunctionCall, ToolCall
from agentsim.tools import Tool, ToolError, ToolTimeout, load_tool, load_tools, run_tool_call
from agentsim.tools.python import (
    SandboxLimits,
    SandboxUnavailable,
    isolation,
    network_namespace_available,
    python_sandbox_env,
    run_sandboxed,
    sandbox_report,
    tool_spec,
)
from agentsim.tools.python.seccomp import build_filter

try:
    isolation()
    NO_OS_SANDBOX = ""
except SandboxUnavailable as e:
    NO_OS_SANDBOX = f"the OS cannot isolate a snippet here: {e}"
needs_os = pytest.mark.skipif(bool(NO_OS_SANDBOX), reason=NO_OS_SANDBOX)

FAST = SandboxLimits(wall_s=10, cpu_s=5)


def run(code: str, limits: SandboxLimits = FAST) -> str:
    return run_sandboxed(textwrap.dedent(code), limits)


def weak(code: str, limits: SandboxLimits = FAST) -> str:
    return run_sandboxed(textwrap.dedent(code), limits, mode="weak")


# ---- what a snippet can do -------------------------------------------------------------------
@needs_os
def test_prints_come_back() -> None:
    assert run("print(sum(range(10)))") == "45\n"


@needs_os
def test_stdlib_imports_and_threads_work() -> None:
    out = run(
        """
        import json, math, fractions, statistics, datetime, collections, re, decimal, sqlite3
        import ssl, ctypes, lzma, bz2, zlib, zoneinfo, threading, pwd, os
        box = []
        t = threading.Thread(target=lambda: box.append(math.factorial(20)))
        t.start(); t.join()
        db = sqlite3.connect(":memory:")
        total = db.execute("select 2 + 3").fetchone()[0]
        print(json.dumps({"mean": statistics.mean([1, 2, 3]), "thread": box[0], "sql": total,
                          "tz": str(zoneinfo.ZoneInfo("Europe/Paris")),
                          "user": pwd.getpwuid(os.getuid()).pw_name}))
        """
    )
    assert json.loads(out) == {
        "mean": 2,
        "thread": 2432902008176640000,
        "sql": 5,
        "tz": "Europe/Paris",
        "user": "sandbox",
    }


@needs_os
def test_files_inside_its_own_directory_work_and_vanish() -> None:
    code = """
        import os, tempfile
        home = os.getcwd() == os.environ["HOME"] == tempfile.gettempdir()
        print(home, os.getcwd() != "/tmp", sorted(os.listdir(".")))
        with open("notes.txt", "w") as f:
            f.write("kept")
        os.mkdir("sub")
        print(open("notes.txt").read(), sorted(os.listdir(".")))
        """
    first = run(code).splitlines()
    # its own dir, not the host's /tmp (which a Python under /tmp, e.g. in CI, would need)
    assert first == ["True True []", "kept ['notes.txt', 'sub']"]
    assert run(code).splitlines() == first  # the next call starts from an empty directory


@needs_os
def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTSIM_SECRET_TOKEN", "hunter2")
    out = run("import os; print(sorted(os.environ))")
    assert "AGENTSIM_SECRET_TOKEN" not in out
    assert "hunter2" not in run("import os; print(os.environ)")


@needs_os
def test_traceback_starts_at_the_snippet() -> None:
    with pytest.raises(ToolError) as info:
        run("x = 1\nraise ValueError('boom')")
    text = str(info.value)
    assert text.startswith("snippet exited with status 1")
    assert 'File "<snippet>", line 2' in text and "raise ValueError('boom')" in text
    assert "inside.py" not in text and "ValueError: boom" in text


@needs_os
def test_syntax_error_is_reported() -> None:
    with pytest.raises(ToolError, match=r"SyntaxError"):
        run("def (:")


# ---- limits ----------------------------------------------------------------------------------
@needs_os
def test_infinite_loop_is_stopped_at_the_wall_limit() -> None:
    with pytest.raises(ToolTimeout, match="ran past the 1 s time limit"):
        run("while True: pass", SandboxLimits(wall_s=1, cpu_s=5))


@needs_os
def test_cpu_limit_stops_a_busy_loop() -> None:
    with pytest.raises(ToolTimeout, match="more than 1 s of CPU time"):
        run("while True: pass", SandboxLimits(wall_s=10, cpu_s=1))


@needs_os
def test_memory_bomb_is_stopped() -> None:
    with pytest.raises(ToolError, match="MemoryError"):
        run("x = bytearray(8 * 1024 ** 3)", SandboxLimits(memory_bytes=512 << 20))
    with pytest.raises(ToolError, match="MemoryError"):
        run("x = [0] * (10 ** 9)", SandboxLimits(memory_bytes=512 << 20))


@needs_os
def test_output_is_truncated_for_the_model() -> None:
    out = run("print('a' * 10000)", SandboxLimits(output_chars=100))
    assert out.startswith("a" * 100)
    assert "more characters truncated" in out
    assert len(out) < 200


@needs_os
def test_snippet_over_the_size_limit_is_refused_unrun(tmp_path: Path) -> None:
    code = "print(1)\n" + "#" * 2000
    with pytest.raises(ToolError, match=r"snippet is 2009 bytes, over the 1000-byte limit"):
        run(code, SandboxLimits(code_bytes=1000))
    assert run("x = 1\n" + "#" * 900_000 + "\nprint(x)") == "1\n"  # big but allowed


@needs_os
def test_through_run_tool_call_timeout_and_error_kinds() -> None:
    def quick_python(code: str) -> str:
        """Python with a 1 s limit."""
        return run_sandboxed(code, SandboxLimits(wall_s=1, cpu_s=5))

    tools = {"python": Tool.from_function(quick_python, name="python")}
    loop = ToolCall(
        id="c1", function=FunctionCall(name="python", arguments='{"code": "while True: pass"}')
    )
    assert run_tool_call(loop, tools).problem == "tool_timeout"
    bad = ToolCall(id="c2", function=FunctionCall(name="python", arguments='{"code": "1/0"}'))
    outcome = run_tool_call(bad, tools)
    assert outcome.problem == "tool_error"
    assert "ZeroDivisionError" in outcome.detail


@needs_os
def test_builtin_python_tool_runs() -> None:
    tools = load_tools(["python"])
    good = ToolCall(
        id="c1", function=FunctionCall(name="python", arguments='{"code": "print(6*7)"}')
    )
    assert run_tool_call(good, tools).output == "42\n"


# ---- the host cannot isolate: the tool refuses -----------------------------------------------
@pytest.mark.usefixtures("fresh_probe")
def test_without_bubblewrap_the_tool_refuses_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    marker = tmp_path / "ran.txt"
    with pytest.raises(ToolError) as info:
        run_sandboxed(f"open({str(marker)!r}, 'w').write('unprotected')")
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("python sandbox unavailable: bubblewrap (bwrap) is not installed")
    assert 'run.python_sandbox = "weak"' in text
    assert not marker.exists()
    assert sandbox_report("os")["isolation"].startswith("unavailable (bubblewrap")


@pytest.mark.usefixtures("fresh_probe")
def test_when_bwrap_cannot_build_namespaces_the_tool_refuses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = --version ] && { echo "bubblewrap 0.8.0"; exit 0; }\n'
        "echo 'bwrap: No permissions to creating new namespace, likely because the kernel "
        "does not allow non-privileged user namespaces.' >&2\nexit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(ToolError) as info:
        run_sandboxed("print('should not run')")
    text = str(info.value)
    assert "\n" not in text
    assert "bwrap cannot build the sandbox here: bwrap: No permissions to creating new" in text
    tools = load_tools(["python"])
    call = ToolCall(id="c", function=FunctionCall(name="python", arguments='{"code": "1"}'))
    outcome = run_tool_call(call, tools)
    assert outcome.problem == "tool_error" and "refusing" in outcome.detail


# ---- seccomp program -------------------------------------------------------------------------
@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_seccomp_filter_assembles_for_each_machine(machine: str) -> None:
    strict = build_filter(allow_processes=False, machine=machine)
    loose = build_filter(allow_processes=True, machine=machine)
    assert len(strict) % 8 == 0 and len(loose) % 8 == 0
    assert strict != loose
    with pytest.raises(ValueError, match="no syscall table for sparc"):
        build_filter(allow_processes=False, machine="sparc")


# ---- the weak opt-in -------------------------------------------------------------------------
def test_weak_tool_keeps_the_name_the_model_knows() -> None:
    tool = load_tool(tool_spec("python", "weak"))
    assert tool.name == "python"
    assert tool_spec("python", "os") == "python"
    assert tool_spec("calculator", "weak") == "calculator"
    assert load_tool("python").parameters == tool.parameters


def test_env_entry_names_the_weak_mode() -> None:
    entry = python_sandbox_env(["calculator", "python"], "weak")
    assert entry is not None and entry["mode"] == "weak"
    assert "NOT OS isolation" in entry["isolation"]
    assert python_sandbox_env(["calculator"], "weak") is None
    os_entry = python_sandbox_env(["python"], "os")
    assert os_entry is not None and os_entry["mode"] == "os"


def test_weak_mode_runs_with_its_audit_hook(tmp_path: Path) -> None:
    assert weak("print(sum(range(10)))") == "45\n"
    with pytest.raises(ToolError, match="sandbox: network access is not allowed"):
        weak("import socket; socket.socket()")
    target = tmp_path / "escaped.txt"
    with pytest.raises(ToolError, match=re.escape(f"sandbox: writing {target} is not allowed")):
        weak(f"open({str(target)!r}, 'w').write('x')")
    assert not target.exists()
    with pytest.raises(ToolTimeout, match="ran past the 1 s time limit"):
        weak("while True: pass", SandboxLimits(wall_s=1, cpu_s=5))
    assert network_namespace_available() in (True, False)


@pytest.mark.parametrize("mode", ["os", "weak"])
def test_output_flood_is_stopped_while_it_streams(mode: str) -> None:
    if mode == "os" and NO_OS_SANDBOX:
        pytest.skip(NO_OS_SANDBOX)
    start = time.monotonic()
    with pytest.raises(ToolError, match=r"snippet stopped: it wrote more than 65536 bytes") as e:
        run_sandboxed("while True: print('x' * 1000)", FAST, mode=mode)  # type: ignore[arg-type]
    assert time.monotonic() - start < 5  # stopped at the cap, not at the 10 s wall limit
    assert len(str(e.value)) < FAST.output_chars + 200
