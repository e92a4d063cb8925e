"""``debate``: N agents, R rounds; from round 2 on each sees the others' previous answers.

Each answer travels to the other agents as a real ``Peer`` message through the broker (so a
partition or a drop between two debaters changes what they see). The final answer is the
majority of the last round. Recorded: ``conformity_flip`` (an agent that was right switches
to a wrong answer a peer gave), ``no_consensus`` (no strict majority at the end).
"""

from __future__ import annotations

import enum
from typing import ClassVar

from agentsim.protocols.base import AskResult, BaseProtocol, Outcome, TaskDriver
from agentsim.protocols.common import extracted_answers, majority, user_prompt
from agentsim.tasks.base import Task


class Debate(BaseProtocol):
    name = "debate"
    termination = "after `rounds` rounds, or earlier when every agent agrees (early_stop)"
    final_answer = "majority of the last round's extracted answers"

    class Phase(enum.Enum):
        START = "start"
        PROPOSE = "propose"
        DEBATE = "debate"
        TALLY = "tally"
        DONE = "done"

    TRANSITIONS: ClassVar = {
        Phase.START: {Phase.PROPOSE},
        Phase.PROPOSE: {Phase.DEBATE, Phase.TALLY},
        Phase.DEBATE: {Phase.DEBATE, Phase.TALLY},
        Phase.TALLY: {Phase.DONE},
    }

    async def run_task(self, task: Task, driver: TaskDriver) -> Outcome:
        agents = driver.agents
        rounds = self.spec.rounds
        early_stop = bool(self.spec.options.get("early_stop", False))
        template = str(self.spec.options.get("peer_template", ""))
        prompt = user_prompt(task, str(self.spec.options.get("prompt", "")))
        history: list[dict[str, str]] = []
        phases = self.phases(driver)
        phases.to(self.Phase.PROPOSE, round=0)
        convo = {a: self.base_messages(driver, a, prompt) for a in agents}
        results = await driver.ask_all(convo, round=0, share=rounds > 1)
        answers = self._collect(driver, results, history)
        r = 1
        while r < rounds:
            if early_stop and len(set(answers.values())) == 1 and len(answers) == len(agents):
                break
            phases.to(self.Phase.DEBATE, round=r)
            from agentsim.chat import ChatMessage

            for a in agents:
                if results.get(a) is not None and results[a].ok:
                    convo[a] = [*convo[a], ChatMessage(role="assistant", content=results[a].text)]
            results = await driver.ask_all(
                convo, round=r, share=r < rounds - 1, peer_inbox=True, peer_template=template
            )
            answers = self._collect(driver, results, history)
            self._detect_flips(driver, history, results, r)
            r += 1
        phases.to(self.Phase.TALLY, round=r - 1)
        winner, count = majority(answers, agents)
        phases.to(self.Phase.DONE, winner=winner)
        if not winner:
            return Outcome(answer="", final=False, rounds=r, extra={"history": history})
        if count * 2 <= len(answers):
            driver.fail(
                "no_consensus",
                agents=sorted(answers),
                round=r - 1,
                evidence=[results[a].msg_id for a in sorted(answers) if a in results],
                detail=f"top answer {winner!r} has {count} of {len(answers)} votes after {r} rounds",
            )
        return Outcome(answer=f"Final Answer: {winner}", rounds=r, extra={"history": history})

    def _collect(
        self, driver: TaskDriver, results: dict[str, AskResult], history: list[dict[str, str]]
    ) -> dict[str, str]:
        answers = extracted_answers(driver, results)
        for agent, res in results.items():
            if res.ok and agent not in answers:
                driver.fail(
                    "no_final_answer",
                    agents=[agent],
                    evidence=[res.msg_id],
                    detail="reply holds no answer",
                )
        history.append(answers)
        return answers

    def _detect_flips(
        self,
        driver: TaskDriver,
        history: list[dict[str, str]],
        results: dict[str, AskResult],
        r: int,
    ) -> None:
        before, now = history[-2], history[-1]
        for agent, new in now.items():
            old = before.get(agent)
            if old is None or old == new:
                continue
            peers = {a: v for a, v in before.items() if a != agent}
            if new not in peers.values():
                continue
            if (
                driver.score(f"Final Answer: {old}").correct
                and not driver.score(f"Final Answer: {new}").correct
            ):
                driver.fail(
                    "conformity_flip",
                    agents=[agent, *sorted(a for a, v in peers.items() if v == new)],
                    round=r,
                    evidence=[results[agent].msg_id, *results[agent].peers_seen],
                    detail=f"{agent} switched from correct {old} to peer answer {new}",
                )
