"""``vote``: N agents answer independently; the majority answer wins (self-consistency)."""

from __future__ import annotations

import enum
import random
from typing import ClassVar

from agentsim.protocols.base import BaseProtocol, Outcome, TaskDriver
from agentsim.protocols.common import extracted_answers, int_option, majority, user_prompt
from agentsim.scenario import Scenario
from agentsim.tasks.base import Task


class Vote(BaseProtocol):
    """``options.panel = K``: each task asks K agents of the pool, drawn per task from
    ``run.seed`` and the task id (scenario order kept), instead of every agent."""

    name = "vote"
    termination = "after one round of independent answers"
    final_answer = "the most common extracted answer; ties go to the earliest agent"

    class Phase(enum.Enum):
        START = "start"
        ASK = "ask"
        TALLY = "tally"
        DONE = "done"

    TRANSITIONS: ClassVar = {
        Phase.START: {Phase.ASK},
        Phase.ASK: {Phase.TALLY},
        Phase.TALLY: {Phase.DONE},
    }

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        pool = len(self.agents)
        self.panel = int_option(self.spec.options, "panel", pool)
        if self.panel > pool:
            raise ValueError(
                f"protocol.options.panel must be <= the {pool} agents of the protocol, "
                f"got {self.panel}"
            )

    def voters(self, task: Task, agents: list[str]) -> list[str]:
        """The task's panel: every agent, or ``panel`` of them drawn from the seed."""
        if self.panel >= len(agents):
            return agents
        rng = random.Random(f"{self.scenario.run.seed}:{task.id}")
        chosen = set(rng.sample(agents, self.panel))
        return [a for a in agents if a in chosen]

    async def run_task(self, task: Task, driver: TaskDriver) -> Outcome:
        agents = self.voters(task, driver.agents)
        phases = self.phases(driver)
        phases.to(self.Phase.ASK, agents=agents)
        prompt = user_prompt(task, str(self.spec.options.get("prompt", "")))
        results = await driver.ask_all({a: self.base_messages(driver, a, prompt) for a in agents})
        phases.to(self.Phase.TALLY)
        answers = extracted_answers(driver, results)
        for agent, res in results.items():
            if res.ok and agent not in answers:
                driver.fail(
                    "no_final_answer",
                    agents=[agent],
                    evidence=[res.msg_id],
                    detail="reply holds no answer",
                )
        winner, count = majority(answers, agents)
        phases.to(self.Phase.DONE, answers=answers, winner=winner)
        if not winner:
            return Outcome(answer="", final=False, extra={"answers": answers})
        if count * 2 <= len(answers):
            driver.fail(
                "no_consensus",
                agents=sorted(answers),
                evidence=[results[a].msg_id for a in sorted(answers)],
                detail=f"top answer {winner!r} has {count} of {len(answers)} votes",
            )
        counted = [results[a].msg_id for a in answers]
        return Outcome(
            answer=f"Final Answer: {winner}",
            extra={"answers": answers, "votes": count, "counted": counted},
        )
