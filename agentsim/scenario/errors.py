"""One-line scenario errors: the field path, the rule, the value and ``file:line``.

``ScenarioError`` is what every scenario mistake becomes, e.g.
``agents.critic.max_tokens must be >= 1, got -5 (scenarios/debate.toml:14)``. The helpers here
turn a msgspec validation message or a ``"field rule"`` message from a sub-parser into that
line. Like the schema, this module imports nothing of the runtime.
"""

from __future__ import annotations

import re
from typing import Any


class ScenarioError(ValueError):
    """A mistake in a scenario file; ``str()`` is the one line the user sees."""


_PATH_RE = re.compile(r" - at `\$(.*)`$")


def split_path(p: str) -> list[str]:
    """``.agents.a.tools[0]`` (msgspec's path notation) → ``["agents", "a", "tools", "0"]``."""
    parts: list[str] = []
    for m in re.finditer(r"\.([^.\[]+)|\[(\d+)\]|\[\"?([^\]\"]+)\"?\]", p):
        parts.append(m.group(1) or m.group(2) or m.group(3))
    return parts


def lookup(raw: Any, parts: list[str]) -> tuple[bool, Any]:
    """The value at ``parts`` in the parsed TOML (found, value)."""
    cur = raw
    for part in parts:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return False, None
    return True, cur


def explain(
    message: str, raw: dict[str, Any], text: str, where: str, prefix: list[str] | None = None
) -> str:
    """A msgspec ``ValidationError`` message as the one line the user sees."""
    m = _PATH_RE.search(message)
    parts = [*(prefix or []), *(split_path(m.group(1)) if m else [])]
    rule = message[: m.start()] if m else message
    unknown = re.match(r"Object contains unknown field `([^`]+)`", rule)
    if unknown:
        parts = [*parts, unknown.group(1)]
        field = ".".join(parts)
        return f"{field} is not a known key ({where_line(text, parts, where)})"
    missing = re.match(r"Object missing required field `([^`]+)`", rule)
    if missing:
        field = ".".join([*parts, missing.group(1)])
        return f"{field} is required ({where_line(text, parts, where)})"
    found, value = lookup(raw, parts)
    field = ".".join(parts) or "scenario"
    rule = _reword(rule)
    got = f", got {show(value)}" if found else ""
    return f"{field} {rule}{got} ({where_line(text, parts, where)})"


def placed(error: ValueError, raw: dict[str, Any], text: str, where: str) -> ScenarioError:
    """A ``"field rule"`` message from a sub-parser, with the value and file:line added."""
    field, _, rule = str(error).partition(" ")
    parts = split_path("." + field)
    found, value = lookup(raw, parts)
    got = f", got {show(value)}" if found and "got" not in rule else ""
    return ScenarioError(f"{field} {rule}{got} ({where_line(text, parts, where)})")


def _reword(rule: str) -> str:
    """msgspec's ``Expected `int` >= 1`` → ``must be an int >= 1``."""
    rule = re.sub(r", got `[^`]+`$", "", rule)
    m = re.match(r"Expected `([^`]+)`(.*)$", rule)
    if m:
        typ, rest = m.group(1), m.group(2).strip()
        if rest:
            if "length" in rest or "matching" in rest:
                return f"must be a {typ} {rest}"
            return f"must be {rest}" if typ in ("int", "float") else f"must be a {typ} {rest}"
        return f"must be of type {typ}"
    return rule[0].lower() + rule[1:] if rule else "is invalid"


def show(value: Any) -> str:
    """A TOML value as the error line shows it."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, str):
        return repr(value)
    return str(value).lower() if isinstance(value, bool) else repr(value)


def where_line(text: str, parts: list[str], where: str) -> str:
    """``file:line`` of the key named by ``parts`` (best effort, falls back to the file)."""
    line = _find_line(text, parts)
    return f"{where}:{line}" if line else where


def _find_line(text: str, parts: list[str]) -> int:
    keys = [p for p in parts if not p.isdigit()]
    if not keys:
        return 0
    table: list[str] = []
    best = 0
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s.startswith("["):
            header = s.strip("[]").strip()
            table = [h.strip().strip("\"'") for h in header.split(".")]
            if table == keys:
                return n
            if keys[: len(table)] == table and not best:
                best = n
            continue
        m = re.match(r"^([A-Za-z0-9_.\"'-]+)\s*=", s)
        if not m:
            continue
        key = [k.strip().strip("\"'") for k in m.group(1).split(".")]
        full = table + key
        if full == keys[: len(full)] and len(full) >= 1:
            if full == keys:
                return n
            best = n
    return best
