"""planner → solver → verifier: approvals, rejections and retries, verification failures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agentsim.protocols.pipeline import Pipeline, parse_verdict
from agentsim.testing import scenario_from_toml


def scenario(solver: str, verifier: str, *, limit: int = 1, extra: str = "") -> str:
    return (
        f'[tasks]\nsuite = "gsm8k"\nlimit = {limit}\n'
        '[agents.plan]\nengine = "scripted"\noptions = { reply = "1. Read.\\n2. Add." }\n'
        f'[agents.solve]\nengine = "scripted"\noptions = {{ table = "gsm8k", {solver} }}\n'
        f'[agents.check]\nengine = "scripted"\noptions = {{ {verifier} }}\n'
        '[protocol]\nkind = "pipeline"\nagents = ["plan", "solve", "check"]\nrounds = 3\n' + extra
    )


def test_approved_correct_answer_ends_the_pipeline_with_no_failures(
    sim: Callable[..., Any],
) -> None:
    run = sim(scenario('reply = "Final Answer: {gold}"', 'reply = "APPROVE"', limit=3))
    assert run.summary["accuracy"] == 1.0 and run.kinds() == {}
    assert run.phases("pipeline") == ["plan", "solve", "verify", "done"]
    solver_prompt = run.asks("solve")[0]["body"]["messages"][-1]["content"]
    assert "1. Read.\n2. Add." in solver_prompt  # the plan reached the solver
    verify_prompt = run.asks("check")[0]["body"]["messages"][-1]["content"]
    assert "Proposed answer: 18" in verify_prompt


def test_rejected_answer_is_retried_with_the_reason_until_approved(
    sim: Callable[..., Any],
) -> None:
    run = sim(
        scenario(
            "script = ['Final Answer: 7', 'Final Answer: {gold}']",
            "rules = [{ match = 'Proposed answer: 7\\b', reply = 'REJECT: 7 ignores the second step' }], "
            'reply = "Looks right. APPROVE"',
        )
    )
    assert run.summary["accuracy"] == 1.0 and run.kinds() == {}
    assert run.phases("pipeline") == ["plan", "solve", "verify", "solve", "verify", "done"]
    retry = run.asks("solve")[1]["body"]["messages"][-1]["content"]
    assert "rejected your answer: 7 ignores the second step" in retry
    assert run.results[0]["rounds"] == 2


def test_verifier_that_approves_a_wrong_answer_is_incorrect_verification(
    sim: Callable[..., Any],
) -> None:
    run = sim(scenario('reply = "Final Answer: 7"', 'reply = "APPROVE"', limit=2))
    found = run.failures("incorrect_verification")
    assert len(found) == 2 and found[0]["agents"] == ["check", "solve"]
    assert "'7'" in found[0]["detail"] and len(found[0]["evidence"]) == 2
    assert run.summary["accuracy"] == 0.0 and run.summary["completion_rate"] == 1.0


def test_verifier_that_rejects_a_correct_answer_to_the_end_is_premature_termination(
    sim: Callable[..., Any],
) -> None:
    run = sim(scenario('reply = "Final Answer: {gold}"', 'reply = "REJECT: no"'))
    [found] = run.failures("premature_termination")
    assert "after 3 attempt(s)" in found["detail"]
    assert "rejected correct answer '18'" in found["detail"]
    assert run.phases("pipeline") == ["plan"] + ["solve", "verify"] * 3 + ["done"]
    assert run.summary["completion_rate"] == 0.0 and run.summary["accuracy"] == 0.0
    assert "incorrect_verification" not in run.kinds()


def test_unverified_answer_can_be_kept_as_final(sim: Callable[..., Any]) -> None:
    toml = scenario(
        'reply = "Final Answer: {gold}"',
        'reply = "I cannot tell."',
        extra="rounds = 1\noptions = { accept_unverified = true }\n",
    ).replace("rounds = 3\n", "")
    run = sim(toml)
    assert run.kinds() == {"no_final_answer": 1, "premature_termination": 1}
    assert run.summary["accuracy"] == 1.0


def test_solver_reply_without_an_answer_skips_verification(sim: Callable[..., Any]) -> None:
    run = sim(scenario("script = ['Hmm.', 'Final Answer: {gold}']", 'reply = "APPROVE"'))
    assert run.phases("pipeline") == ["plan", "solve", "solve", "verify", "done"]
    [nfa] = run.failures("no_final_answer")
    assert nfa["agents"] == ["solve"]
    assert run.summary["accuracy"] == 1.0


def test_verdict_parsing() -> None:
    assert parse_verdict("APPROVE") == ("approve", "APPROVE")
    assert parse_verdict("I reject this: the sum is off.") == ("reject", "this: the sum is off")
    assert parse_verdict("Approved.")[0] == "approve"
    assert parse_verdict("maybe") == ("", "maybe")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ('{ verifier = "ghost" }', "protocol.options.verifier must name one of"),
        ('{ solver = "plan", verifier = "plan" }', "'plan' already holds another role"),
    ],
)
def test_bad_pipeline_roles_name_the_option(options: str, message: str) -> None:
    toml = scenario('reply = "x"', 'reply = "y"', extra=f"options = {options}\n")
    with pytest.raises(ValueError, match=message):
        Pipeline(scenario_from_toml(toml))


def test_pipeline_with_real_agent_processes(cli: Callable[[str], Any]) -> None:
    run = cli(
        "[run]\nheartbeat_s = 0.2\n"
        + scenario(
            "script = ['Final Answer: 7', 'Final Answer: {gold}']",
            "rules = [{ match = 'Proposed answer: 7\\b', reply = 'REJECT: wrong' }], reply = 'APPROVE'",
            limit=3,
            extra="deadline_s = 20\n",
        )
    )
    assert run.summary["tasks_done"] == 3 and run.summary["accuracy"] == 1.0
    assert run.phases("pipeline", "gsm8k-1") == [
        "plan",
        "solve",
        "verify",
        "solve",
        "verify",
        "done",
    ]
    assert sorted(r["agent"] for r in run.recs if r["event"] == "agent_ready") == [
        "check",
        "plan",
        "solve",
    ]
