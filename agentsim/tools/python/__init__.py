"""The ``python`` tool: run a model's snippet isolated by the operating system.

A snippet runs in a bubblewrap sandbox built per call (``osbox.py``): its own user, pid,
network, IPC, UTS and mount namespaces, a read-only minimal root, a private size-limited
working dir, kernel resource limits, a process/thread cap and a seccomp filter (``inside.py``,
``seccomp.py``); output is capped while it streams and the whole sandbox is killed at the wall
limit (``stream.py``). Where the host cannot build that sandbox the tool refuses with one line
rather than run the snippet unprotected. A scenario may opt in to the older audit-hook sandbox
(``weak.py``) with ``run.python_sandbox = "weak"``; the run's ``env.json`` then says so.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from typing import Literal

from agentsim.tools.base import Tool, ToolError, ToolTimeout
from agentsim.tools.python import osbox, weak
from agentsim.tools.python.layout import SandboxUnavailable
from agentsim.tools.python.limits import DEFAULT_LIMITS, SandboxLimits
from agentsim.tools.python.osbox import Isolation, isolation
from agentsim.tools.python.stream import Finished
from agentsim.tools.python.weak import network_namespace_available

__all__ = [
    "DEFAULT_LIMITS",
    "WEAK_TOOL_SPEC",
    "Isolation",
    "SandboxLimits",
    "SandboxMode",
    "SandboxUnavailable",
    "isolation",
    "network_namespace_available",
    "python",
    "python_sandbox_env",
    "python_weak",
    "run_sandboxed",
    "sandbox_report",
    "tool_spec",
]

SandboxMode = Literal["os", "weak"]
WEAK_TOOL_SPEC = "agentsim.tools.python:python_weak"
_SETUP_FAILED = 70  # inside.py's exit status when it cannot lock the sandbox down


def _refusal(reason: str) -> str:
    return (
        f"python sandbox unavailable: {reason}; refusing to run the snippet without OS "
        'isolation (a scenario may opt in to the weaker one with run.python_sandbox = "weak")'
    )


def run_sandboxed(
    code: str, limits: SandboxLimits = DEFAULT_LIMITS, *, mode: SandboxMode = "os"
) -> str:
    """Run ``code`` in the sandbox and return its stdout (and stderr, if any).

    Raises:
        ToolTimeout: the snippet ran past ``limits.wall_s`` or ``limits.cpu_s``.
        ToolError: the snippet failed, was stopped, or the sandbox cannot be built here.
    """
    size = len(code.encode("utf-8", "surrogatepass"))
    if size > limits.code_bytes:
        raise ToolError(f"snippet is {size} bytes, over the {limits.code_bytes}-byte limit")
    try:
        if mode == "weak":
            done = weak.launch(code, limits)
        else:
            done = osbox.launch(isolation(), code, limits)
    except SandboxUnavailable as e:
        raise ToolError(_refusal(str(e))) from e
    except OSError as e:
        raise ToolError(f"sandbox failed to start: {e}") from e
    return _render(done, limits, bwrap_status=mode == "os")


def _text(data: bytes, limit: int) -> str:
    text = data.decode("utf-8", "replace")
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [{len(text) - limit} more characters truncated]"


def _render(done: Finished, limits: SandboxLimits, *, bwrap_status: bool) -> str:
    stdout = _text(done.stdout, limits.output_chars)
    stderr = _text(done.stderr, limits.output_chars)
    if done.flooded:
        raise ToolError(
            f"snippet stopped: it wrote more than {limits.output_bytes} bytes of output\n"
            + _text(done.stdout + done.stderr, limits.output_chars)
        )
    if done.timed_out:
        so_far = f"; its output so far:\n{stdout}{stderr}" if (stdout + stderr).strip() else ""
        raise ToolTimeout(f"snippet ran past the {limits.wall_s:g} s time limit{so_far}")
    status = done.returncode if done.returncode is not None else -signal.SIGKILL
    if status == 0:
        return stdout + (f"\n[stderr]\n{stderr}" if stderr.strip() else "")
    # bubblewrap reports a child killed by signal N as exit status 128 + N
    signum = -status if status < 0 else status - 128 if bwrap_status and status > 128 else 0
    if signum:
        name = signal.Signals(signum).name if signum in signal.valid_signals() else str(signum)
        if signum == signal.SIGXCPU:
            raise ToolTimeout(f"snippet used more than {limits.cpu_s} s of CPU time")
        raise ToolError(f"snippet killed by {name}\n{stdout}{stderr}".strip())
    if bwrap_status and status == _SETUP_FAILED and "sandbox setup failed" in stderr:
        raise ToolError(_refusal(stderr.strip().splitlines()[-1]))
    raise ToolError(f"snippet exited with status {status}\n{stdout}{stderr}".strip())


def sandbox_report(mode: SandboxMode) -> dict[str, str]:
    """What a run's ``env.json`` records about the python tool's isolation on this host."""
    if mode == "weak":
        return {"mode": "weak", "isolation": weak.DESCRIPTION}
    try:
        return {"mode": "os", "isolation": isolation().describe()}
    except SandboxUnavailable as e:
        return {"mode": "os", "isolation": f"unavailable ({e}); python tool calls are refused"}


def python_sandbox_env(specs: Iterable[str], mode: SandboxMode) -> dict[str, str] | None:
    """The ``env.json`` entry for a run whose agents load ``specs`` (None: no python tool)."""
    loaded = {tool_spec(s, mode) for s in specs}
    if WEAK_TOOL_SPEC in loaded:
        return sandbox_report("weak")
    if "python" in loaded or "agentsim.tools.python:python" in loaded:
        return sandbox_report("os")
    return None


def tool_spec(spec: str, mode: SandboxMode) -> str:
    """The tool spec an agent loads for ``spec`` under ``mode`` (only ``python`` changes)."""
    return WEAK_TOOL_SPEC if spec == "python" and mode == "weak" else spec


def python(code: str) -> str:
    """Run a Python 3 snippet in an isolated sandbox and return what it prints.

    The snippet has no network and no subprocesses, can write files only in its working
    directory (a private, size-limited folder that is deleted afterwards), and is stopped
    after 10 seconds. Print the values you want to see.

    Args:
        code: The Python source code to run.
    """
    return run_sandboxed(code)


def python_weak(code: str) -> str:
    """Run a Python 3 snippet in a sandbox and return what it prints.

    The snippet has no network, can only write files in its own temporary directory, and is
    stopped after 10 seconds. Print the values you want to see.

    Args:
        code: The Python source code to run.
    """
    return run_sandboxed(code, mode="weak")


# Loaded under the name the model knows; only the scenario's opt-in selects it.
python_weak.__agentsim_tool__ = Tool.from_function(python_weak, name="python")  # type: ignore[attr-defined]
