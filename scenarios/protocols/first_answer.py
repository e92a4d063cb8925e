"""A researcher's own protocol: ask the agents in turn until one gives a parseable answer.

Loaded by a scenario with ``kind = "protocols/first_answer.py:FirstAnswer"`` (the path is
relative to the scenario file). It uses only the driver API that the built-in protocols use.
"""

from __future__ import annotations

import enum
from typing import ClassVar

from agentsim.protocols.base import BaseProtocol, Outcome, TaskDriver
from agentsim.protocols.common import user_prompt
from agentsim.tasks.base import Task


class FirstAnswer(BaseProtocol):
    """Each agent in scenario order gets one try; the first answer the scorer can read wins."""

    name = "first_answer"
    termination = "the first reply with an answer, or after every agent had one try"
    final_answer = "the first reply the task's scorer extracts an answer from"

    class Phase(enum.Enum):
        START = "start"
        ASK = "ask"
        DONE = "done"

    TRANSITIONS: ClassVar = {
        Phase.START: {Phase.ASK},
        Phase.ASK: {Phase.ASK, Phase.DONE},
    }

    async def run_task(self, task: Task, driver: TaskDriver) -> Outcome:
        prompt = user_prompt(task, str(self.spec.options.get("prompt", "")))
        phases = self.phases(driver)
        for turn, agent in enumerate(driver.agents):
            phases.to(self.Phase.ASK, agent=agent, round=turn)
            res = await driver.ask(agent, self.base_messages(driver, agent, prompt), round=turn)
            if not res.ok:
                continue
            if driver.score(res.text).extracted:
                phases.to(self.Phase.DONE, by=agent)
                return Outcome(answer=res.text, rounds=turn + 1, by=agent)
            driver.fail(
                "no_final_answer",
                agents=[agent],
                round=turn,
                evidence=[res.msg_id],
                detail="reply holds no answer; asking the next agent",
            )
        phases.to(self.Phase.DONE, by="")
        return Outcome(answer="", final=False, rounds=len(driver.agents))
