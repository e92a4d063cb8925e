"""Tools agents can call: typed functions → OpenAI schemas, validation, running, text parsing.

Built-in tools: ``calculator`` (exact arithmetic), ``python`` (sandboxed snippet) and
``search`` (offline BM25 over the CIA World Factbook). Load them, or a user's function, with
``load_tools(["calculator", "path/to/file.py:function", "pkg.mod:function"])``.
Layer: may import the bottom modules (chat, failures); never agent, protocols, run, report
or cli.
"""

from agentsim.tools.base import (
    BUILTIN_TOOLS,
    Tool,
    ToolError,
    ToolLoadError,
    ToolOutcome,
    ToolProblemKind,
    ToolTimeout,
    load_tool,
    load_tools,
    run_tool_call,
    tool_schemas,
)
from agentsim.tools.textcalls import ParsedTurn, format_instructions, parse_tool_calls, turn_schema

__all__ = [
    "BUILTIN_TOOLS",
    "ParsedTurn",
    "Tool",
    "ToolError",
    "ToolLoadError",
    "ToolOutcome",
    "ToolProblemKind",
    "ToolTimeout",
    "format_instructions",
    "load_tool",
    "load_tools",
    "parse_tool_calls",
    "run_tool_call",
    "tool_schemas",
    "turn_schema",
]
