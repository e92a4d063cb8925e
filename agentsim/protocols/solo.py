"""``solo``: the base paradigm — one agent, direct prompting, no tools.

Worked examples in ``task.meta["examples"]`` (``[tasks] examples = N``) come first, as
question → ``Final Answer: ...`` turns.
"""

from __future__ import annotations

import enum
from typing import ClassVar

from agentsim.protocols.base import BaseProtocol, Outcome, TaskDriver
from agentsim.protocols.common import user_prompt
from agentsim.protocols.styles import example_messages
from agentsim.tasks.base import Task


class Solo(BaseProtocol):
    name = "solo"
    termination = "after the agent's single reply"
    final_answer = "the agent's reply"

    class Phase(enum.Enum):
        START = "start"
        ASK = "ask"
        DONE = "done"

    ALLOWED: ClassVar = {"start": frozenset({"ask"}), "ask": frozenset({"done"})}

    async def run_task(self, task: Task, driver: TaskDriver) -> Outcome:
        agent = driver.agents[0]
        phase: enum.Enum = self.enter(driver, self.Phase.START, self.Phase.ASK, agent=agent)
        prompt = user_prompt(task, str(self.spec.options.get("prompt", "")))
        messages = self.base_messages(driver, agent, prompt)
        shots = example_messages(task.meta.get("examples", []), mode="solo")
        messages[-1:-1] = shots  # worked examples (if any) go before the question
        res = await driver.ask(agent, messages)
        self.enter(driver, phase, self.Phase.DONE)
        if not res.ok:
            return Outcome(answer="", final=False, by=agent)
        if not driver.score(res.text).extracted:
            driver.fail(
                "no_final_answer",
                agents=[agent],
                evidence=[res.msg_id],
                detail="reply holds no answer",
            )
            return Outcome(answer=res.text, final=False, by=agent)
        return Outcome(answer=res.text, by=agent)
