"""``react``: one agent with tools — think → act (a JSON tool call) → observe, until a final answer.

The tool-call and final-answer format is stated up front in the system prompt. Tool calls run
in the agent's own process (its sandbox and limits). Recorded: ``tool_call_malformed`` and
the other tool kinds, ``step_repetition`` (the same call twice in a row), ``no_final_answer``
(a turn with neither a call nor an answer), ``unaware_of_termination`` (step budget spent).

For function-calling suites (BFCL) the task brings its own function schemas: the agent gets
one turn and its calls are the answer (scored by AST match, never executed).

``prompt_style = "seed"`` switches to the seed study's XML protocol (``protocols/styles.py``),
capped at five turns. Under ``constrained = true`` each turn is decoded under a grammar built
from each tool's own parameter schema (``protocols/turns.py``). Worked examples in
``task.meta["examples"]`` are shown as earlier turns.
"""

from __future__ import annotations

import enum
import json
from typing import Any, ClassVar

from agentsim.chat import ChatMessage
from agentsim.protocols.base import BaseProtocol, Outcome, TaskDriver
from agentsim.protocols.common import user_prompt
from agentsim.protocols.styles import (
    SEED_NUDGE,
    SEED_TURNS,
    example_messages,
    observation,
    parse_seed_turn,
    seed_instructions,
)
from agentsim.protocols.turns import seed_grammar, turn_schema
from agentsim.tasks.base import Task
from agentsim.tools import format_instructions, parse_tool_calls

NUDGE = 'Reply with one tool call as a JSON object, or with your answer as {"final_answer": "..."}.'


class ReAct(BaseProtocol):
    name = "react"
    termination = "a final answer, or max_steps turns"
    final_answer = "the final_answer of the agent's last turn"

    class Phase(enum.Enum):
        START = "start"
        THINK = "think"
        ACT = "act"
        OBSERVE = "observe"
        DONE = "done"

    ALLOWED: ClassVar = {
        "start": frozenset({"think"}),
        "think": frozenset({"act", "think", "done"}),
        "act": frozenset({"observe"}),
        "observe": frozenset({"think", "done"}),
    }

    async def run_task(self, task: Task, driver: TaskDriver) -> Outcome:
        agent = str(self.spec.options.get("agent", driver.agents[0]))
        if "functions" in task.meta:
            return await self.function_call(task, driver, agent)
        return await self.loop(task, driver, agent)

    def _system(self, driver: TaskDriver, agent: str, tools: list[dict[str, Any]]) -> str:
        base = driver.system_prompt(agent)
        if self.spec.prompt_style == "seed":
            return f"{base}\n\n{seed_instructions(tools, max_turns=self.max_turns)}".strip()
        instructions = format_instructions(tools) if tools else NUDGE
        return f"{base}\n\n{instructions}".strip()

    @property
    def max_turns(self) -> int:
        """``max_steps``, capped at the seed protocol's five turns in its style."""
        if self.spec.prompt_style == "seed":
            return min(self.spec.max_steps, SEED_TURNS)
        return self.spec.max_steps

    def _schema(self, tools: list[dict[str, Any]]) -> dict[str, Any]:
        if self.spec.prompt_style == "seed":
            return seed_grammar(tools)
        return turn_schema(tools)

    async def loop(
        self, task: Task, driver: TaskDriver, agent: str, *, prompt: str = ""
    ) -> Outcome:
        tools = driver.tool_schemas(agent)
        seed = self.spec.prompt_style == "seed"
        spec = driver.scenario.agents[agent]
        # the seed style's Lark grammar is an llguidance form only the mlc engine compiles
        constrained = spec.constrained and (not seed or spec.engine == "mlc")
        schema = self._schema(tools) if constrained and (tools or seed) else None
        nudge = SEED_NUDGE if seed else NUDGE
        question = prompt or user_prompt(task, str(self.spec.options.get("prompt", "{question}")))
        shots = example_messages(
            task.meta.get("examples", []),
            style=self.spec.prompt_style,
            tools=driver.scenario.agents[agent].tools,
            mode="react",
        )
        messages = [
            ChatMessage(role="system", content=self._system(driver, agent, tools)),
            *shots,
            ChatMessage(role="user", content=question),
        ]
        phase: enum.Enum = self.Phase.START
        last_calls: list[tuple[str, str]] = []
        text = ""
        max_turns = self.max_turns
        for step in range(max_turns):
            phase = self.enter(driver, phase, self.Phase.THINK, step=step)
            res = await driver.ask(
                agent, messages, round=step, tools=tools or None, response_schema=schema
            )
            if not res.ok:
                self.enter(driver, phase, self.Phase.DONE, reason=res.failure)
                return Outcome(answer=text, final=False, rounds=step + 1, by=agent)
            text = res.text
            turn = parse_seed_turn(text) if seed else parse_tool_calls(text)
            messages.append(ChatMessage(role="assistant", content=text))
            if turn.tool_calls:
                calls = [(c.function.name, c.function.arguments) for c in turn.tool_calls]
                if calls == last_calls:
                    driver.fail(
                        "step_repetition",
                        agents=[agent],
                        round=step,
                        evidence=[res.msg_id],
                        detail=f"repeated {calls[0][0]}({calls[0][1][:80]})",
                    )
                last_calls = calls
                phase = self.enter(driver, phase, self.Phase.ACT, calls=[n for n, _ in calls])
                for call in turn.tool_calls:
                    result = await driver.call_tool(agent, call, round=step)
                    if seed:
                        content = result.as_message().content or ""
                        messages.append(observation(content, call.function.name, call.id, "seed"))
                    else:
                        messages.append(result.as_message())
                phase = self.enter(driver, phase, self.Phase.OBSERVE)
                continue
            if turn.final_answer is not None:
                self.enter(driver, phase, self.Phase.DONE, step=step)
                return Outcome(
                    answer=f"Final Answer: {turn.final_answer}", rounds=step + 1, by=agent
                )
            if turn.problem:
                cut = res.completion is not None and res.completion.finish_reason == "length"
                driver.fail(
                    "tool_call_malformed",
                    agents=[agent],
                    round=step,
                    evidence=[res.msg_id],
                    detail=("cut by max_tokens: " if cut else "") + turn.detail[:300],
                )
                messages.append(
                    ChatMessage(role="user", content=f"That tool call could not be parsed. {nudge}")
                )
            else:
                driver.fail(
                    "no_final_answer",
                    agents=[agent],
                    round=step,
                    evidence=[res.msg_id],
                    detail="turn has neither a tool call nor a final answer",
                )
                messages.append(ChatMessage(role="user", content=nudge))
        driver.fail(
            "unaware_of_termination",
            agents=[agent],
            round=max_turns,
            detail=f"no final answer within {max_turns} turns",
        )
        self.enter(driver, phase, self.Phase.DONE, reason="max_steps")
        return Outcome(answer=text, final=False, rounds=max_turns, by=agent)

    async def function_call(self, task: Task, driver: TaskDriver, agent: str) -> Outcome:
        tools: list[dict[str, Any]] = list(task.meta["functions"])
        messages = [
            ChatMessage(role="system", content=self._system(driver, agent, tools)),
            ChatMessage(role="user", content=task.question),
        ]
        constrained = driver.scenario.agents[agent].constrained
        phase: enum.Enum = self.enter(driver, self.Phase.START, self.Phase.THINK, step=0)
        res = await driver.ask(
            agent,
            messages,
            tools=tools,
            response_schema=turn_schema(tools) if constrained else None,
        )
        self.enter(driver, phase, self.Phase.DONE)
        if not res.ok:
            return Outcome(answer="", final=False, by=agent)
        turn = parse_tool_calls(res.text)
        if turn.problem:
            driver.fail(
                "tool_call_malformed",
                agents=[agent],
                evidence=[res.msg_id],
                detail=turn.detail[:300],
            )
        calls = [
            {"name": c.function.name, "arguments": c.function.arguments} for c in turn.tool_calls
        ]
        return Outcome(answer=res.text, by=agent, extra={"calls": json.dumps(calls)})
