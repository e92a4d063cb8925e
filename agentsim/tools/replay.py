"""Tool results recorded in a journal, handed back instead of running the tools again.

A replay must not re-run tools: a ``python`` snippet may read the clock or the disk, a search
index may have changed. ``RecordedTools`` pairs each ``tool_result`` an agent sent in the
recorded run with the ``tool_call`` it answered, and gives the same result back for the same
call (tool name and arguments), in recorded order when a call repeats.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from agentsim.journal import read_journal


class RecordedResult(NamedTuple):
    content: str
    error: str
    elapsed_s: float


class RecordedTools:
    """The tool results agent ``agent`` gave in the run whose journal is ``path``."""

    def __init__(self, path: Path, agent: str) -> None:
        calls: dict[str, tuple[str, str]] = {}
        self._results: dict[tuple[str, str], deque[RecordedResult]] = defaultdict(deque)
        self.count = 0
        for rec in read_journal(path):
            if rec.get("event") != "envelope":
                continue
            body = rec.get("body") or {}
            if rec.get("kind") == "tool_call" and rec.get("dst") == agent:
                calls[str(rec.get("msg_id"))] = (str(body.get("name")), str(body.get("arguments")))
            elif rec.get("kind") == "tool_result" and rec.get("src") == agent:
                call = calls.get(str(body.get("in_reply_to")))
                if call is None:
                    continue
                self._results[call].append(
                    RecordedResult(
                        str(body.get("content", "")),
                        str(body.get("error", "")),
                        float(body.get("elapsed_s", 0.0)),
                    )
                )
                self.count += 1

    def take(self, name: str, arguments: str) -> RecordedResult | None:
        """The next recorded result of this call (None: the recorded run never made it)."""
        queue = self._results.get((name, arguments))
        return queue.popleft() if queue else None


class ToolReplay:
    """How an agent on the ``replay`` engine answers tool calls: with the recorded result;
    with a ``tool_error`` naming the divergence when there is none (an exact replay), or by
    running the tool (a fork, whose engine has a ``fallback``). ``pace``: take as long as the
    recorded tool did."""

    def __init__(self, recorded: RecordedTools, *, fallback: bool, pace: bool) -> None:
        self.recorded = recorded
        self.fallback = fallback
        self.pace = pace

    @classmethod
    def for_engine(cls, engine: str, options: Mapping[str, Any]) -> ToolReplay | None:
        """The tool replay an engine config asks for (None: tools run as usual)."""
        if engine != "replay" or options.get("tools", "replay") != "replay":
            return None
        recorded = RecordedTools(Path(str(options["journal"])), str(options["agent"]))
        return cls(
            recorded,
            fallback=options.get("fallback") is not None,
            pace=bool(options.get("pace", True)),
        )

    def answer(self, name: str, arguments: str) -> RecordedResult | None:
        """The result to send back, or None when the tool should run."""
        found = self.recorded.take(name, arguments)
        if found is not None or self.fallback:
            return found
        return RecordedResult(
            f"replay: no recorded result for {name}({arguments[:120]}) (the run diverged)",
            "tool_error",
            0.0,
        )
