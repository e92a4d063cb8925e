"""The seed-study suite: seven task types, offline, licensed, answers computed.

``study`` holds every type, interleaved round-robin (``limit = 14`` gives two of each);
``study_<type>`` holds one type. Types and their sources:

| type | what | source, licence |
|---|---|---|
| sentiment | headline → positive/negative/neutral | generated (synth.py) |
| ner | sentence → company/person/country | generated; countries from the Factbook |
| arithmetic | multi-digit word problems | generated |
| program | questions a short program answers | generated |
| summarization | report → one sentence (ROUGE-L) | generated |
| factbook_qa | capital, internet code, area, population | World Factbook, public domain |
| financial_qa | Economy figures: look-up, difference, ratio, growth, comparison | World Factbook |

No package registry carries a labelled financial sentiment / NER / summarization corpus
with a clear licence that installs offline (the sentiment packages on PyPI ship lexicons,
not labelled sentences), so those types are generated; the Factbook is real data.

``examples`` worked examples per task are drawn from the held-apart ``examples`` split (other
seeds, other countries) of the task's own type, the same ones for every paradigm, and are put
in ``task.meta["examples"]`` for the protocol to render in its own format.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable

import msgspec

from agentsim.chat import FunctionCall, ToolCall
from agentsim.tasks.base import Task
from agentsim.tasks.factbook import factbook_tasks, financial_tasks
from agentsim.tasks.synth import (
    arithmetic_tasks,
    ner_tasks,
    program_tasks,
    sentiment_tasks,
    summarization_tasks,
)
from agentsim.tools import Tool, load_tools, run_tool_call

Generator = Callable[..., list[Task]]
TYPES: dict[str, Generator] = {
    "sentiment": sentiment_tasks,
    "ner": ner_tasks,
    "arithmetic": arithmetic_tasks,
    "program": program_tasks,
    "summarization": summarization_tasks,
    "factbook_qa": factbook_tasks,
    "financial_qa": financial_tasks,
}
PER_TYPE = 100
SUITES = ("study", *(f"study_{t}" for t in TYPES))
EXAMPLE_POOL = 20


def _types(suite: str) -> list[str]:
    if suite == "study":
        return list(TYPES)
    kind = suite.removeprefix("study_")
    if kind not in TYPES:
        raise ValueError(f"unknown study suite {suite!r} (one of {', '.join(SUITES)})")
    return [kind]


def example_of(task: Task) -> dict[str, object]:
    """A task as a worked example: question, instruction, tool steps with outputs, the answer.

    Each step's ``output`` is what the real tool returns for it (calculator and search run
    here); a ``python`` step carries the printed output its generator computed, since running
    the sandbox while loading a suite would cost a process per example.
    """
    steps = []
    for step in task.meta.get("steps", []):
        out = dict(step)
        if "output" not in out:
            call = ToolCall(
                id="call_0",
                function=FunctionCall(
                    name=str(step["tool"]), arguments=json.dumps(step["arguments"])
                ),
            )
            result = run_tool_call(call, _example_tools())
            out["output"] = result.content()
        steps.append(out)
    return {
        "question": task.question,
        "instruction": task.meta.get("instruction", ""),
        "steps": steps,
        "answer": task.answer,
    }


@functools.cache
def _example_tools() -> dict[str, Tool]:
    return load_tools(["calculator", "search"])


def load_study(suite: str, *, examples: int = 0, seed: int = 0) -> list[Task]:
    """The suite's test tasks, round-robin over its types, with ``examples`` worked examples each.

    The test tasks are fixed (generator seed 17); ``seed`` only chooses which held-apart
    examples a run shows, so two paradigms run with one seed see the same examples.
    """
    per_type = {kind: TYPES[kind](PER_TYPE, split="test") for kind in _types(suite)}
    shots: dict[str, list[dict[str, object]]] = {}
    if examples:
        for kind in per_type:
            pool = TYPES[kind](EXAMPLE_POOL, split="examples")
            test_questions = {t.question for t in per_type[kind]}
            pool = [t for t in pool if t.question not in test_questions]
            picked = random.Random(f"{kind}/{seed}").sample(pool, min(examples, len(pool)))
            shots[kind] = [example_of(t) for t in picked]
    out: list[Task] = []
    for i in range(PER_TYPE):
        for kind, tasks in per_type.items():
            task = tasks[i]
            if examples:
                task = msgspec.structs.replace(task, meta={**task.meta, "examples": shots[kind]})
            out.append(task)
    return out
