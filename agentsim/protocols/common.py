"""Helpers shared by the built-in protocols."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from agentsim.protocols.base import AskResult, TaskDriver
from agentsim.tasks.base import Task

DEFAULT_INSTRUCTION = (
    "Solve the problem. End your reply with 'Final Answer: ' followed by the answer."
)


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


def role_agents(
    options: Mapping[str, object], agents: list[str], roles: list[str]
) -> dict[str, str]:
    """Map each role to an agent: ``options[role]`` when given, else the agents in order.

    Raises:
        ValueError: a named agent is not a protocol agent, too few agents, or one agent holds
            two roles (the message names the option and the value).
    """
    out: dict[str, str] = {}
    rest = [a for a in agents if a not in {str(options[r]) for r in roles if r in options}]
    for role in roles:
        if role in options:
            name = str(options[role])
            if name not in agents:
                raise ValueError(f"protocol.options.{role} must name one of {agents}, got {name!r}")
        elif rest:
            name = rest.pop(0)
        else:
            raise ValueError(
                f"protocol needs {len(roles)} agents ({', '.join(roles)}), got {agents}"
            )
        if name in out.values():
            raise ValueError(f"protocol.options.{role}: {name!r} already holds another role")
        out[role] = name
    return out


def int_option(options: Mapping[str, object], key: str, default: int, minimum: int = 1) -> int:
    """An integer ``protocol.options`` entry, checked against ``minimum``."""
    value = options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"protocol.options.{key} must be an int >= {minimum}, got {value!r}")
    return value
