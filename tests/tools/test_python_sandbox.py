"""The python tool's sandbox: what it allows and what it refuses."""

from __future__ import annotations

import json
import os
import re
import socket
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentsim.chat import FunctionCall, ToolCall
from agentsim.tools import Tool, ToolError, ToolTimeout, load_tools, run_tool_call
from agentsim.tools.python import SandboxLimits, network_namespace_available, run_sandboxed

FAST = SandboxLimits(wall_s=5, cpu_s=5)


def run(code: str, limits: SandboxLimits = FAST) -> str:
    return run_sandboxed(textwrap.dedent(code), limits)


def test_prints_come_back() -> None:
    assert run("print(sum(range(10)))") == "45\n"


def test_stdlib_imports_work() -> None:
    out = run(
        """
        import json, math, fractions, statistics, datetime, collections, re, decimal
        print(json.dumps({"pi": round(math.pi, 3), "mean": statistics.mean([1, 2, 3])}))
        """
    )
    assert json.loads(out) == {"pi": 3.142, "mean": 2}


def test_files_inside_its_own_directory_work() -> None:
    out = run(
        """
        import os
        with open("notes.txt", "w") as f:
            f.write("kept")
        os.mkdir("sub")
        print(open("notes.txt").read(), sorted(os.listdir(".")))
        """
    )
    assert out.startswith("kept [")
    assert "'notes.txt'" in out


def test_working_directory_is_fresh_and_removed(tmp_path: Path) -> None:
    first = run("import os; print(os.getcwd())").strip()
    second = run("import os; print(os.getcwd())").strip()
    assert first != second
    assert not os.path.exists(first)


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTSIM_SECRET_TOKEN", "hunter2")
    out = run("import os; print(sorted(os.environ))")
    assert "AGENTSIM_SECRET_TOKEN" not in out
    assert "hunter2" not in run("import os; print(os.environ)")


@pytest.fixture
def listener() -> Iterator[int]:
    """A local TCP server that records whether anything connected."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    accepted: list[bool] = []

    def accept() -> None:
        try:
            conn, _ = server.accept()
            accepted.append(True)
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    yield server.getsockname()[1]
    thread.join()
    server.close()
    assert not accepted, "the sandboxed snippet reached the local server"


def test_network_connection_is_refused(listener: int) -> None:
    with pytest.raises(ToolError, match="sandbox: network access is not allowed"):
        run(f"import socket; socket.create_connection(('127.0.0.1', {listener}), timeout=1)")


def test_raw_socket_creation_is_refused() -> None:
    with pytest.raises(ToolError, match="sandbox: network access is not allowed"):
        run("import socket; socket.socket()")


def test_network_namespace_probe_returns_a_bool() -> None:
    assert network_namespace_available() in (True, False)


def test_writing_outside_its_directory_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    with pytest.raises(ToolError, match=re.escape(f"sandbox: writing {target} is not allowed")):
        run(f"open({str(target)!r}, 'w').write('x')")
    assert not target.exists()


def test_etc_passwd_cannot_be_written_or_read() -> None:
    with pytest.raises(ToolError, match="writing /etc/passwd is not allowed"):
        # opened and closed without writing, so a broken sandbox cannot damage the host
        run("open('/etc/passwd', 'a').close()")
    with pytest.raises(ToolError, match="reading /etc/passwd is not allowed"):
        run("print(open('/etc/passwd').read())")


def test_reading_a_file_outside_its_directory_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    with pytest.raises(ToolError, match=r"reading .*secret\.txt is not allowed") as info:
        run(f"print(open({str(secret)!r}).read())")
    assert "s3cret" not in str(info.value)


def test_deleting_outside_its_directory_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "keep.txt"
    victim.write_text("x")
    with pytest.raises(ToolError, match=r"os\.remove outside the sandbox is not allowed"):
        run(f"import os; os.remove({str(victim)!r})")
    assert victim.exists()


@pytest.mark.parametrize(
    "code",
    [
        "import subprocess; subprocess.run(['cat', '/etc/passwd'])",
        "import os; os.system('cat /etc/passwd')",
        "import ctypes; ctypes.CDLL(None).system(b'id')",
    ],
)
def test_escaping_through_processes_or_ctypes_is_refused(code: str) -> None:
    with pytest.raises(ToolError, match=r"sandbox: .* is not allowed"):
        run(code)


def test_infinite_loop_is_stopped() -> None:
    with pytest.raises(ToolTimeout, match="ran past the 1 s time limit"):
        run("while True: pass", SandboxLimits(wall_s=1, cpu_s=5))


def test_cpu_limit_stops_a_busy_loop() -> None:
    with pytest.raises(ToolTimeout, match="more than 1 s of CPU time"):
        run("while True: pass", SandboxLimits(wall_s=10, cpu_s=1))


def test_memory_bomb_is_stopped() -> None:
    with pytest.raises(ToolError, match="MemoryError"):
        run("x = bytearray(8 * 1024 ** 3)", SandboxLimits(memory_bytes=512 << 20))
    with pytest.raises(ToolError, match="MemoryError"):
        run("x = [0] * (10 ** 9)", SandboxLimits(memory_bytes=512 << 20))


def test_output_is_truncated() -> None:
    out = run("print('a' * 10000)", SandboxLimits(output_chars=100))
    assert out.startswith("a" * 100)
    assert "more characters truncated" in out
    assert len(out) < 200


def test_snippet_error_is_reported_with_traceback() -> None:
    with pytest.raises(ToolError, match=r"exited with status 1(.|\n)*ValueError: boom"):
        run("raise ValueError('boom')")


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


def test_builtin_python_tool_runs() -> None:
    tools = load_tools(["python"])
    good = ToolCall(
        id="c1", function=FunctionCall(name="python", arguments='{"code": "print(6*7)"}')
    )
    assert run_tool_call(good, tools).output == "42\n"


@pytest.mark.parametrize(
    "code",
    [
        "import __main__; __main__.read_roots = ('/',); __main__._read_roots = ('/',)\n"
        "print(open('/etc/passwd').read())",
        "import gc; gc.get_objects()",
        "import sys; sys.settrace(lambda *a: None)",
    ],
)
def test_snippet_cannot_reach_the_hook_state(code: str) -> None:
    with pytest.raises(ToolError, match=r"sandbox: .* is not allowed"):
        run(code)
