"""The checks of one ``[agents.X]`` table that consult the runtime: engine, model, options,
tools — everything an agent would otherwise fail on at start-up ("never became ready")."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from agentsim.engines import ENGINE_NAMES
from agentsim.engines.options import OptionsError, check_options
from agentsim.scenario.errors import ScenarioError, lookup, show, where_line
from agentsim.scenario.schema import AgentSpec

MODEL_FILE_ENGINES = ("mlc", "llamacpp")
"""Engines whose ``model`` is a model agentsim knows by name or a local ``.gguf`` file."""

MAX_THREADS = 4096
MAX_TEMPERATURE = 100.0
MAX_PENALTY = 100.0


def exists(*candidates: Path) -> bool:
    """Whether any candidate path exists; a name the OS refuses (too long, NUL) is just
    missing, never an ``OSError`` out of ``validate``."""
    for p in candidates:
        try:
            if p.exists():
                return True
        except (OSError, ValueError):
            continue
    return False


def known_models() -> list[str]:
    """The model names the ``mlc`` / ``llamacpp`` engines can fetch (``agentsim models``)."""
    from agentsim.engines.mlc.models import MODELS  # imported only for model agents

    return list(MODELS)


#: engines whose Python package is an optional extra: (module, how to install it)
_ENGINE_PACKAGES = {
    "llamacpp": ("llama_cpp", 'llama-cpp-python (pip install "agentsim[llamacpp]")'),
    "mlc-llm": ("mlc_llm", "the official mlc_llm package (see https://llm.mlc.ai)"),
}


def check_agent(
    name: str, spec: AgentSpec, raw: dict[str, Any], text: str, where: str, base: Path
) -> None:
    """Raise ``ScenarioError`` for the first problem of agent ``name``."""

    def fail(parts: list[str], rule: str, value: Any) -> None:
        field = ".".join(["agents", name, *parts])
        line = where_line(text, ["agents", name, *parts], where)
        raise ScenarioError(f"{field} {rule}, got {show(value)} ({line})")

    if spec.engine not in ENGINE_NAMES:
        fail(["engine"], f"must be one of {', '.join(ENGINE_NAMES)}", spec.engine)
    package, install = _ENGINE_PACKAGES.get(spec.engine, ("", ""))
    if package and not spec.remote and importlib.util.find_spec(package) is None:
        fail(["engine"], f"needs {install}, which is not installed", spec.engine)
    if spec.engine in MODEL_FILE_ENGINES and not spec.remote:
        model = spec.model
        if model.endswith(".gguf"):
            if not exists(base / model, Path(model).expanduser()):
                fail(["model"], "must name an existing .gguf file", model)
        elif model not in (known := known_models()):
            fail(
                ["model"],
                f"must be a known model ({', '.join(known)}; see `agentsim models list`) "
                "or a .gguf file",
                model,
            )
    if spec.threads > MAX_THREADS:
        fail(["threads"], f"must be <= {MAX_THREADS}", spec.threads)
    sampling = spec.sampling
    if not sampling.temperature <= MAX_TEMPERATURE:
        fail(["sampling", "temperature"], f"must be <= {MAX_TEMPERATURE:g}", sampling.temperature)
    if not sampling.repetition_penalty <= MAX_PENALTY:
        fail(
            ["sampling", "repetition_penalty"],
            f"must be <= {MAX_PENALTY:g}",
            sampling.repetition_penalty,
        )
    try:
        check_options(spec.engine, spec.options)
    except OptionsError as e:
        parts = ["agents", name, "options", *e.path]
        found, value = lookup(raw, parts)
        got = f", got {show(value)}" if found and e.shows_value else ""
        line = where_line(text, parts, where)
        raise ScenarioError(f"{'.'.join(parts)} {e.rule}{got} ({line})") from None
    if spec.engine == "scripted":
        table = spec.options.get("table")
        if isinstance(table, str) and table:
            problem = _table_problem(table)
            if problem:
                fail(["options", "table"], problem, table)
    for i, tool in enumerate(spec.tools):
        if spec.tools.index(tool) != i:
            fail(["tools", str(i)], "must not repeat a tool", tool)
        problem = _tool_problem(tool)
        if problem:
            fail(["tools", str(i)], problem, tool)


def _table_problem(table: str) -> str:
    """Why a scripted ``table`` cannot be loaded ("" when it can). Like the engine, a path
    is taken from the working directory the run starts in."""
    from agentsim.engines.base import EngineUnavailable
    from agentsim.engines.scripted import load_table

    try:
        load_table(table)
    except EngineUnavailable as e:
        reason = str(e).split(": ", 1)[-1]
        return f"must be a task suite the scripted engine can load ({reason[:200]})"
    return ""


def _tool_problem(spec: str) -> str:
    """Why ``spec`` names no loadable tool ("" when it does)."""
    from agentsim.tools import BUILTIN_TOOLS, ToolLoadError, load_tool

    if spec in BUILTIN_TOOLS:
        return ""
    if ":" not in spec:
        return (
            f"must be a built-in tool ({', '.join(sorted(BUILTIN_TOOLS))}), module:function "
            "or path/to/file.py:function"
        )
    try:
        load_tool(spec)
    except ToolLoadError as e:
        return f"must name a loadable tool ({str(e).removeprefix(f'tool {spec!r}: ')})"
    return ""


__all__ = ["MAX_THREADS", "check_agent", "exists", "known_models"]
