"""Tools: typed Python functions, their OpenAI schemas, argument validation and the registry.

A tool is a plain function with type hints and a Google-style docstring. Its JSON Schema is
derived with msgspec from a Struct generated out of the signature, and the same Struct
validates the arguments a model sends before the function runs, so a bad call is reported as
``invalid_tool_arguments`` naming the field and the rule instead of crashing the tool.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import msgspec

from agentsim.chat import ChatMessage, ToolCall
from agentsim.failures import ToolFailureKind

ToolProblemKind = ToolFailureKind  # the taxonomy's tool kinds (agentsim.failures)

BUILTIN_TOOLS: dict[str, str] = {
    "calculator": "agentsim.tools.calculator:calculator",
    "python": "agentsim.tools.python:python",
    "search": "agentsim.tools.search:search",
}

_DETAIL_MAX = 500


class ToolError(Exception):
    """Raised by a tool for a failure the model should see (recorded as ``tool_error``)."""


class ToolTimeout(Exception):
    """Raised when a tool runs past its time limit (recorded as ``tool_timeout``)."""


class ToolLoadError(ValueError):
    """A tool spec cannot be loaded or a function cannot be made into a tool."""


class ToolOutcome(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What running one tool call gave: an ``output`` or a ``problem`` with a short ``detail``."""

    call_id: str
    name: str
    output: str | None = None
    problem: ToolProblemKind | None = None
    detail: str = ""
    elapsed_s: float = 0.0

    def __post_init__(self) -> None:
        if (self.output is None) == (self.problem is None):
            raise ValueError(
                f"ToolOutcome needs exactly one of output and problem, got "
                f"output={self.output!r} problem={self.problem!r}"
            )

    @property
    def ok(self) -> bool:
        return self.problem is None

    def content(self) -> str:
        """The text the model sees: the output, or the problem stated plainly."""
        if self.output is not None:
            return self.output
        return f"Error ({self.problem}): {self.detail}"

    def as_message(self) -> ChatMessage:
        """The ``tool`` chat message answering the call."""
        return ChatMessage(
            role="tool", content=self.content(), name=self.name, tool_call_id=self.call_id
        )


@dataclass(frozen=True)
class Tool:
    """A callable tool: the function, its argument Struct and its JSON Schema parameters."""

    name: str
    description: str
    fn: Callable[..., object]
    args_type: type[msgspec.Struct]
    parameters: dict[str, Any] = field(repr=False)
    timeout_s: float | None = None

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., object],
        *,
        name: str | None = None,
        timeout_s: float | None = None,
    ) -> Tool:
        """Build a tool from a typed function with a Google-style docstring.

        Raises:
            ToolLoadError: a parameter lacks a type hint, or is ``*args``/``**kwargs``.
        """
        tool_name = name or fn.__name__
        summary, arg_docs = parse_docstring(inspect.getdoc(fn) or "")
        try:
            hints = get_type_hints(fn, include_extras=True)
        except Exception as e:
            raise ToolLoadError(f"tool {tool_name}: cannot resolve type hints: {e}") from e
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        for pname, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ToolLoadError(
                    f"tool {tool_name}: parameter {pname} must not be *args or **kwargs"
                )
            if pname not in hints:
                raise ToolLoadError(f"tool {tool_name}: parameter {pname} needs a type hint")
            if param.default is inspect.Parameter.empty:
                fields.append((pname, hints[pname]))
            else:
                fields.append((pname, hints[pname], param.default))
        args_type = msgspec.defstruct(
            f"{tool_name}_args", fields, kw_only=True, forbid_unknown_fields=True
        )
        parameters = _parameters_schema(args_type, arg_docs)
        return cls(
            name=tool_name,
            description=summary or tool_name,
            fn=fn,
            args_type=args_type,
            parameters=parameters,
            timeout_s=timeout_s,
        )

    def schema(self) -> dict[str, Any]:
        """The OpenAI tool schema (``{"type": "function", "function": {...}}``)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Check arguments against the signature; returns them with defaults filled in.

        Raises:
            msgspec.ValidationError: naming the field and the rule broken.
        """
        args = msgspec.convert(dict(arguments), self.args_type, strict=True)
        return {f: getattr(args, f) for f in self.args_type.__struct_fields__}

    def __call__(self, **kwargs: Any) -> str:
        """Validate, run and render the result as text."""
        result = self.fn(**self.validate(kwargs))
        return result if isinstance(result, str) else json.dumps(result, default=str)


def _parameters_schema(args_type: type[msgspec.Struct], arg_docs: dict[str, str]) -> dict[str, Any]:
    schema = msgspec.json.schema(args_type)
    defs: dict[str, Any] = dict(schema.get("$defs", {}))
    ref: str = schema["$ref"]
    params: dict[str, Any] = dict(defs.pop(ref.rsplit("/", 1)[-1]))
    params.pop("title", None)
    params.setdefault("properties", {})
    params.setdefault("required", [])
    for pname, doc in arg_docs.items():
        prop = params["properties"].get(pname)
        if prop is not None and "description" not in prop:
            prop["description"] = doc
    if defs:
        params["$defs"] = defs
    return params


_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|Notes?)\s*:\s*$"
)


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its summary paragraph and ``Args:`` descriptions."""
    lines = doc.strip().splitlines()
    summary_lines: list[str] = []
    i = 0
    while i < len(lines) and lines[i].strip() and not _SECTION.match(lines[i].strip()):
        summary_lines.append(lines[i].strip())
        i += 1
    args: dict[str, str] = {}
    section = ""
    current: str | None = None
    arg_indent = -1
    for line in lines[i:]:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        heading = _SECTION.match(stripped)
        if heading and indent == 0:
            section, current, arg_indent = heading.group(1), None, -1
            continue
        if section not in ("Args", "Arguments", "Parameters") or not stripped:
            continue
        match = _ARG_LINE.match(stripped)
        if match and (arg_indent < 0 or indent <= arg_indent):
            arg_indent = indent
            current = match.group(1).lstrip("*")
            args[current] = match.group(2).strip()
        elif current is not None:
            args[current] = f"{args[current]} {stripped}".strip()
    return " ".join(summary_lines), args


def load_tool(spec: str) -> Tool:
    """Load one tool: a built-in name, ``path/to/file.py:function`` or ``pkg.mod:function``.

    Raises:
        ToolLoadError: the spec names nothing loadable, with the spec and the reason.
    """
    target = BUILTIN_TOOLS.get(spec, spec)
    if ":" not in target:
        raise ToolLoadError(
            f"tool {spec!r}: not a built-in tool ({', '.join(sorted(BUILTIN_TOOLS))}) "
            "and not of the form module:function or path/to/file.py:function"
        )
    where, _, attr = target.rpartition(":")
    module = _load_module(spec, where)
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ToolLoadError(f"tool {spec!r}: {where} has no function {attr!r}")
    existing = getattr(fn, "__agentsim_tool__", None)
    if isinstance(existing, Tool):
        return existing
    return Tool.from_function(fn)


def _load_module(spec: str, where: str) -> Any:
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise ToolLoadError(f"tool {spec!r}: file {path} does not exist")
        mod_name = f"agentsim_user_tools.{path.stem}_{abs(hash(str(path))):x}"
        if mod_name in sys.modules:
            return sys.modules[mod_name]
        file_spec = importlib.util.spec_from_file_location(mod_name, path)
        if file_spec is None or file_spec.loader is None:
            raise ToolLoadError(f"tool {spec!r}: cannot import {path}")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[mod_name] = module
        try:
            file_spec.loader.exec_module(module)
        except Exception as e:
            del sys.modules[mod_name]
            raise ToolLoadError(f"tool {spec!r}: importing {path} failed: {e!r}") from e
        return module
    try:
        return importlib.import_module(where)
    except Exception as e:
        raise ToolLoadError(f"tool {spec!r}: importing module {where} failed: {e!r}") from e


def load_tools(specs: Iterable[str]) -> dict[str, Tool]:
    """Load several tools into a name → Tool mapping (the shape ``run_tool_call`` takes).

    Raises:
        ToolLoadError: a spec fails to load, or two specs give the same tool name.
    """
    tools: dict[str, Tool] = {}
    for spec in specs:
        tool = load_tool(spec)
        if tool.name in tools:
            raise ToolLoadError(f"tool {spec!r}: a tool named {tool.name!r} is already loaded")
        tools[tool.name] = tool
    return tools


def tool_schemas(tools: Mapping[str, Tool] | Iterable[Tool]) -> list[dict[str, Any]]:
    """The OpenAI tool schemas for a ``ChatRequest.tools``."""
    items = tools.values() if isinstance(tools, Mapping) else tools
    return [t.schema() for t in items]


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 3] + "..."


def run_tool_call(call: ToolCall, tools: Mapping[str, Tool]) -> ToolOutcome:
    """Run one tool call and return its output or a typed problem; never raises for the call.

    Blocking; from trio use ``trio.to_thread.run_sync(run_tool_call, call, tools)``.
    """
    start = time.monotonic()
    name = call.function.name

    def problem(kind: ToolProblemKind, detail: str) -> ToolOutcome:
        return ToolOutcome(
            call_id=call.id,
            name=name,
            problem=kind,
            detail=_short(detail),
            elapsed_s=time.monotonic() - start,
        )

    try:
        raw = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError as e:
        return problem(
            "tool_call_malformed",
            f"arguments of {name} are not valid JSON ({e.msg} at char {e.pos}): "
            f"{call.function.arguments[:120]!r}",
        )
    if not isinstance(raw, dict):
        return problem(
            "tool_call_malformed",
            f"arguments of {name} must be a JSON object, got {type(raw).__name__}",
        )
    tool = tools.get(name)
    if tool is None:
        known = ", ".join(sorted(tools)) or "none"
        return problem("unknown_tool", f"no tool named {name!r} (tools: {known})")
    try:
        kwargs = tool.validate(raw)
    except msgspec.ValidationError as e:
        return problem("invalid_tool_arguments", f"{name}: {e}")
    try:
        output = _call_with_timeout(tool, kwargs)
    except ToolTimeout as e:
        return problem("tool_timeout", f"{name}: {e}")
    except ToolError as e:
        return problem("tool_error", f"{name}: {e}")
    except Exception as e:
        return problem("tool_error", f"{name} raised {type(e).__name__}: {e}")
    return ToolOutcome(
        call_id=call.id, name=name, output=output, elapsed_s=time.monotonic() - start
    )


def _call_with_timeout(tool: Tool, kwargs: dict[str, Any]) -> str:
    def render(result: object) -> str:
        return result if isinstance(result, str) else json.dumps(result, default=str)

    if tool.timeout_s is None:
        return render(tool.fn(**kwargs))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = tool.fn(**kwargs)
        except BaseException as e:
            box["error"] = e

    # A Python thread cannot be killed: on timeout it is abandoned (daemon) and the call is
    # recorded as timed out. Tools that can hang for real (python) enforce their own limit.
    thread = threading.Thread(target=target, name=f"tool-{tool.name}", daemon=True)
    thread.start()
    thread.join(tool.timeout_s)
    if thread.is_alive():
        raise ToolTimeout(f"no result within {tool.timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return render(box["result"])
