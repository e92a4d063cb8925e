"""A vote that also accepts late answers — in a correct and a planted-bug version."""

from __future__ import annotations

from agentsim.protocols.base import Outcome, TaskDriver
from agentsim.protocols.common import majority, user_prompt
from agentsim.protocols.vote import Vote
from agentsim.tasks.base import Task


class LateVote(Vote):
    """Counts on-time answers, then late ones for asks that have none yet."""

    name = "late_vote"
    dedupe = True

    async def run_task(self, task: Task, driver: TaskDriver) -> Outcome:
        prompt = user_prompt(task)
        results = await driver.ask_all(
            {a: self.base_messages(driver, a, prompt) for a in driver.agents}
        )
        ballots = [(r.msg_id, r.agent, r.text) for r in results.values() if r.ok]
        counted_ids = {m for m, _, _ in ballots}
        for late in driver.late_replies():
            if self.dedupe and late.msg_id in counted_ids:
                continue
            ballots.append((late.msg_id, late.agent, late.text))
            counted_ids.add(late.msg_id)
        answers = {
            f"{agent}#{i}": driver.score(text).extracted
            for i, (_, agent, text) in enumerate(ballots)
        }
        answers = {k: v for k, v in answers.items() if v}
        winner, count = majority(answers, list(answers))
        return Outcome(
            answer=f"Final Answer: {winner}" if winner else "",
            final=bool(winner),
            extra={"counted": [m for m, _, _ in ballots], "votes": count},
        )


class BuggyLateVote(LateVote):
    """The planted bug: a duplicated reply of an already counted ask is counted again."""

    name = "buggy_late_vote"
    dedupe = False
