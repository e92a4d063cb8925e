"""``pipeline``: planner → solver → verifier, three different agents.

The planner writes a short plan (it does not solve); the solver answers with the plan in
view; the verifier replies ``APPROVE`` or ``REJECT: <reason>``. On a reject the solver sees
the reason and tries again, up to ``rounds`` attempts. Agents: ``options.planner``,
``options.solver``, ``options.verifier``, else the protocol agents in that order.

Options: ``accept_unverified`` (default false: without an approval the task has no final
answer; true keeps the last candidate as final); ``prompt``.

Recorded: ``incorrect_verification`` (the verifier approves an answer the scorer marks
wrong), ``premature_termination`` (the pipeline ends without an approved answer — the
detail says when a correct answer was rejected), ``no_final_answer`` (a solver reply with
no answer, or a verifier reply with no verdict, which counts as a reject).
"""

from __future__ import annotations

import enum
import re
from typing import ClassVar

from agentsim.chat import ChatMessage
from agentsim.protocols.base import BaseProtocol, Outcome, TaskDriver
from agentsim.protocols.common import role_agents, user_prompt
from agentsim.scenario import Scenario
from agentsim.tasks.base import Task

ROLES = ["planner", "solver", "verifier"]
_VERDICT = re.compile(r"\b(APPROVE[DS]?|REJECT(?:ED|S)?)\b", re.I)
PLAN = (
    "{question}\n\nWrite a short numbered plan (at most 5 steps) for solving this problem. "
    "Do not solve it."
)
SOLVE = "{question}\n\nPlan:\n{plan}\n\n{instruction}"
VERIFY = (
    "Problem:\n{question}\n\nProposed solution:\n{solution}\n\nProposed answer: {answer}\n\n"
    "Check the solution. Reply with APPROVE if the answer is correct, or with "
    "REJECT: <reason> if it is not."
)


def parse_verdict(text: str) -> tuple[str, str]:
    """``("approve"|"reject", reason)`` from the first verdict word, or ``("", text)``."""
    m = _VERDICT.search(text)
    if m is None:
        return "", text.strip()
    verdict = "approve" if m.group(1).upper().startswith("APPROVE") else "reject"
    return verdict, text[m.end() :].strip(" \t\n:.-") or text.strip()


class Pipeline(BaseProtocol):
    """Plan once, then solve → verify until an approval or ``rounds`` attempts."""

    name = "pipeline"
    termination = (
        "the verifier approves, a solver/verifier ask fails, or `rounds` attempts are spent"
    )
    final_answer = (
        "the solver answer the verifier approved (the last candidate with accept_unverified)"
    )

    class Phase(enum.Enum):
        START = "start"
        PLAN = "plan"
        SOLVE = "solve"
        VERIFY = "verify"
        DONE = "done"

    TRANSITIONS: ClassVar = {
        Phase.START: {Phase.PLAN},
        Phase.PLAN: {Phase.SOLVE},
        Phase.SOLVE: {Phase.SOLVE, Phase.VERIFY, Phase.DONE},
        Phase.VERIFY: {Phase.SOLVE, Phase.DONE},
    }

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        self.roles = role_agents(self.spec.options, self.agents, ROLES)
        self.accept_unverified = bool(self.spec.options.get("accept_unverified", False))

    async def run_task(self, task: Task, driver: TaskDriver) -> Outcome:
        planner, solver, verifier = (self.roles[r] for r in ROLES)
        question = user_prompt(task, str(self.spec.options.get("prompt", "{question}")))
        instruction = user_prompt(task, "{instruction}")
        phases = self.phases(driver)
        phases.to(self.Phase.PLAN, agent=planner)
        planned = await driver.ask(
            planner, self.base_messages(driver, planner, PLAN.format(question=question))
        )
        plan = planned.text.strip() or "(no plan)"
        convo = self.base_messages(
            driver, solver, SOLVE.format(question=question, plan=plan, instruction=instruction)
        )
        candidate = ""
        rejected_correct: list[str] = []
        evidence: list[str] = []
        attempts, stop = 0, "rounds"
        for r in range(self.spec.rounds):
            attempts = r + 1
            phases.to(self.Phase.SOLVE, round=r, agent=solver)
            res = await driver.ask(solver, convo, round=r)
            if not res.ok:
                stop = f"solver: {res.failure}"
                break
            convo.append(ChatMessage(role="assistant", content=res.text))
            score = driver.score(res.text)
            if not score.extracted:
                driver.fail(
                    "no_final_answer",
                    agents=[solver],
                    round=r,
                    evidence=[res.msg_id],
                    detail="solver reply holds no answer",
                )
                convo.append(
                    ChatMessage(role="user", content=f"Your reply holds no answer. {instruction}")
                )
                continue
            candidate = res.text
            phases.to(self.Phase.VERIFY, round=r, agent=verifier, answer=score.extracted)
            prompt = VERIFY.format(question=question, solution=res.text, answer=score.extracted)
            checked = await driver.ask(
                verifier, self.base_messages(driver, verifier, prompt), round=r
            )
            if not checked.ok:
                stop = f"verifier: {checked.failure}"
                break
            evidence += [res.msg_id, checked.msg_id]
            verdict, reason = parse_verdict(checked.text)
            if verdict == "approve":
                if not score.correct:
                    driver.fail(
                        "incorrect_verification",
                        agents=[verifier, solver],
                        round=r,
                        evidence=[checked.msg_id, res.msg_id],
                        detail=f"verifier approved wrong answer {score.extracted!r}",
                    )
                phases.to(self.Phase.DONE, verdict="approve", round=r)
                return Outcome(answer=candidate, rounds=attempts, by=solver, extra={"plan": plan})
            if not verdict:
                driver.fail(
                    "no_final_answer",
                    agents=[verifier],
                    round=r,
                    evidence=[checked.msg_id],
                    detail="verifier reply holds neither APPROVE nor REJECT; taken as a reject",
                )
            if score.correct:
                rejected_correct.append(score.extracted)
            convo.append(
                ChatMessage(
                    role="user",
                    content=(
                        f"A verifier rejected your answer: {reason[:500]}\n\nTry again. {instruction}"
                    ),
                )
            )
        why = f"no approved answer after {attempts} attempt(s) ({stop})"
        if rejected_correct:
            why += f"; the verifier rejected correct answer {rejected_correct[0]!r}"
        driver.fail(
            "premature_termination",
            agents=[solver, verifier],
            round=attempts - 1,
            evidence=evidence,
            detail=why,
        )
        phases.to(self.Phase.DONE, verdict="none", reason=stop)
        final = self.accept_unverified and bool(candidate)
        return Outcome(
            answer=candidate, final=final, rounds=attempts, by=solver, extra={"plan": plan}
        )
