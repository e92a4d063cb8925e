"""``manager``: a manager splits a task into subtasks for workers, then aggregates the results.

The manager (``options.manager``, default the first protocol agent) replies with a numbered
list (``1. ...``) or a JSON list of subtasks (strings, or objects with ``task``; also
``{"subtasks": [...]}``). Subtasks go round-robin to the workers (``options.workers``,
default the other protocol agents) that are alive, one wave of parallel asks per
``len(workers)`` subtasks. The manager then sees every result and gives the final answer.

Options: ``max_subtasks`` (default twice the workers; extra subtasks are dropped and the
``work`` phase says how many); ``must_delegate`` (default true: a manager that gives no
subtasks has no final answer; false accepts its direct answer); ``prompt``.

Recorded: ``no_delegation`` (the manager gave no subtasks), ``no_final_answer`` (its
aggregate holds no answer). ``ignored_peer_input`` is not recorded: worker results are
partial, so "the manager ignored them" has no test that holds across task suites.
"""

from __future__ import annotations

import enum
import json
import re
from typing import ClassVar

from agentsim.chat import ChatMessage
from agentsim.protocols.base import AskResult, BaseProtocol, Outcome, TaskDriver
from agentsim.protocols.common import int_option, user_prompt
from agentsim.scenario import Scenario
from agentsim.tasks.base import Task

_NUMBERED = re.compile(r"^[ \t>*_]*(?:step[ \t]*)?\d{1,2}[.):][ \t]+(.+?)[ \t]*$", re.I | re.M)
SPLIT = (
    "{question}\n\nYou manage {n} worker(s). Do not solve the problem yourself: split it into "
    "at most {n} independent subtasks and reply with a numbered list, one subtask per line:\n"
    "1. <subtask>\n2. <subtask>"
)
WORK = "Overall problem:\n{question}\n\nYour subtask: {subtask}\n\nSolve only your subtask and state its result."
AGGREGATE = "Results from your workers:\n{results}\n\nCombine them. {instruction}"


def parse_subtasks(text: str) -> list[str]:
    """Subtasks from a JSON list (strings or ``{"task": ...}``) or a numbered list, else ``[]``."""
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        try:
            items = json.loads(text[start : end + 1])
        except ValueError:
            items = None
        if isinstance(items, list):
            found = [_item_text(x) for x in items]
            if all(found) and found:
                return found
    obj_start = text.find("{")
    if obj_start >= 0:
        try:
            obj = json.loads(text[obj_start : text.rfind("}") + 1])
        except ValueError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("subtasks"), list):
            return [t for t in (_item_text(x) for x in obj["subtasks"]) if t]
    return [m.group(1) for m in _NUMBERED.finditer(text)]


def _item_text(item: object) -> str:
    if isinstance(item, str):
        return item.strip()
    if isinstance(item, dict):
        value = item.get("task", item.get("subtask", item.get("description", "")))
        return str(value).strip()
    return ""


class Manager(BaseProtocol):
    """Split → parallel work waves → aggregate."""

    name = "manager"
    termination = "after the aggregate turn (or right after the split when it gives no subtasks)"
    final_answer = "the manager's aggregate reply (its direct reply when must_delegate is false)"

    class Phase(enum.Enum):
        START = "start"
        SPLIT = "split"
        WORK = "work"
        AGGREGATE = "aggregate"
        DONE = "done"

    TRANSITIONS: ClassVar = {
        Phase.START: {Phase.SPLIT},
        Phase.SPLIT: {Phase.WORK, Phase.DONE},
        Phase.WORK: {Phase.WORK, Phase.AGGREGATE},
        Phase.AGGREGATE: {Phase.DONE},
    }

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        o = self.spec.options
        self.manager = str(o.get("manager", self.agents[0]))
        if self.manager not in self.agents:
            raise ValueError(
                f"protocol.options.manager must name one of {self.agents}, got {self.manager!r}"
            )
        workers = o.get("workers")
        self.workers = (
            [str(w) for w in workers]
            if isinstance(workers, list)
            else [a for a in self.agents if a != self.manager]
        )
        bad = [w for w in self.workers if w not in self.agents or w == self.manager]
        if bad or not self.workers:
            raise ValueError(
                f"protocol.options.workers must name protocol agents other than the manager, got {bad or self.workers}"
            )
        self.max_subtasks = int_option(o, "max_subtasks", 2 * len(self.workers))
        self.must_delegate = bool(o.get("must_delegate", True))

    async def run_task(self, task: Task, driver: TaskDriver) -> Outcome:
        boss = self.manager
        question = user_prompt(task, str(self.spec.options.get("prompt", "{question}")))
        instruction = user_prompt(task, "{instruction}")
        phases = self.phases(driver)
        phases.to(self.Phase.SPLIT, agent=boss)
        convo = self.base_messages(
            driver, boss, SPLIT.format(question=question, n=len(self.workers))
        )
        split = await driver.ask(boss, convo, round=0)
        if not split.ok:
            phases.to(self.Phase.DONE, reason=split.failure)
            return Outcome(answer="", final=False, by=boss)
        subtasks = parse_subtasks(split.text)
        if not subtasks:
            driver.fail(
                "no_delegation",
                agents=[boss],
                evidence=[split.msg_id],
                detail="manager reply holds no subtask list",
            )
            phases.to(self.Phase.DONE, reason="no_subtasks")
            direct = not self.must_delegate and bool(driver.score(split.text).extracted)
            return Outcome(answer=split.text, final=direct, by=boss)
        kept = subtasks[: self.max_subtasks]
        alive = [w for w in self.workers if driver.alive(w)] or self.workers
        results: list[tuple[str, str, AskResult]] = []
        for wave, start in enumerate(range(0, len(kept), len(alive))):
            batch = dict(zip(alive, kept[start : start + len(alive)], strict=False))
            phases.to(
                self.Phase.WORK,
                round=wave,
                assigned=batch,
                dropped=len(subtasks) - len(kept),
            )
            asks = {
                w: self.base_messages(driver, w, WORK.format(question=question, subtask=s))
                for w, s in batch.items()
            }
            got = await driver.ask_all(asks, round=wave + 1)
            results += [(w, s, got[w]) for w, s in batch.items()]
        lines = [
            f"- {w} (subtask {i}: {s}): {r.text.strip() if r.ok else f'no result ({r.failure})'}"
            for i, (w, s, r) in enumerate(results, start=1)
        ]
        convo += [
            ChatMessage(role="assistant", content=split.text),
            ChatMessage(
                role="user",
                content=AGGREGATE.format(results="\n".join(lines), instruction=instruction),
            ),
        ]
        rounds = 2 + (len(kept) + len(alive) - 1) // len(alive)
        phases.to(self.Phase.AGGREGATE, agent=boss)
        final = await driver.ask(boss, convo, round=rounds - 1)
        phases.to(self.Phase.DONE, subtasks=len(kept))
        if not final.ok:
            return Outcome(answer="", final=False, rounds=rounds, by=boss)
        if not driver.score(final.text).extracted:
            driver.fail(
                "no_final_answer",
                agents=[boss],
                round=rounds - 1,
                evidence=[final.msg_id],
                detail="manager's aggregate holds no answer",
            )
            return Outcome(answer=final.text, final=False, rounds=rounds, by=boss)
        return Outcome(answer=final.text, rounds=rounds, by=boss, extra={"subtasks": kept})
