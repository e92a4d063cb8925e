"""Helpers shared by the built-in protocols."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from agentsim.protocols.base import AskResult, TaskDriver
from agentsim.tasks.base import Task

DEFAULT_INSTRUCTION = "Solve the problem. End your reply with 'Final Answer: ' followed by the answer."


def user_prompt(task: Task, template: str = "") -> str:
    """The first user message for a task: the protocol's template or the question + instruction."""
    instruction = str(task.meta.get("instruction", DEFAULT_INSTRUCTION))
    if template:
        return template.replace("{question}", task.question).replace("{instruction}", instruction)
    return f"{task.question}\n\n{instruction}"


def extracted_answers(driver: TaskDriver, results: Mapping[str, AskResult]) -> dict[str, str]:
    """Each agent's extracted answer (agents whose ask failed or who gave none are left out)."""
    out: dict[str, str] = {}
    for agent, res in results.items():
        if res.ok:
            got = driver.score(res.text).extracted
            if got:
                out[agent] = got
    return out


def majority(answers: Mapping[str, str], order: list[str]) -> tuple[str, int]:
    """Most common answer and its count; ties go to the answer given first in ``order``."""
    if not answers:
        return "", 0
    counts = Counter(answers.values())
    best = max(counts.values())
    for agent in order:
        if agent in answers and counts[answers[agent]] == best:
            return answers[agent], best
    return "", 0
