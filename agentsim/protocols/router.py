"""``router``: the routing multi-agent system — a supervisor routes each task to specialists.

The supervisor (``options.supervisor``, default the first protocol agent; it gets no tools)
reads the task and replies with a route, ``{"route": "math", "task": "..."}`` or a line
``ROUTE: math``. The named specialist (any other protocol agent) runs a ``react`` loop with
its own tools; its answer goes back to the supervisor, which gives ``Final Answer: ...`` or
routes again.

Options: ``supervisor``; ``must_route`` (default true: a final answer before any delegation
is a ``role_violation`` and is refused); ``max_delegations`` (default 3); ``loop_limit``
(default 2: how often one identical delegation may be sent); ``expected`` (task category →
specialist, e.g. ``{gsm8k = "math"}``); ``specialist_steps`` (default ``max_steps``);
``prompt`` (user template with ``{question}``/``{instruction}``). With ``prompt_style =
"seed"`` the supervisor writes ``<think>`` + a route inside ``<action>`` or a
``<final_answer>`` (five turns at most) and the specialists use the seed ReAct format. Worked
examples show the supervisor routing to the ``expected`` specialist. A supervisor with
``constrained = true`` is decoded under ``route_schema()``: a route to a real specialist, or
a final answer.

Recorded: ``misrouting`` (a route to a name that is no specialist, or not to the expected
one), ``delegation_loop`` (an identical delegation, or a ping-pong between specialists with
the same request, sent more than ``loop_limit`` times — the task stops), ``role_violation``,
``no_final_answer`` (a supervisor turn with neither a route nor an answer),
``unaware_of_termination`` (``max_steps`` supervisor turns spent), ``no_delegation`` (the
task ended without an answer and the supervisor never delegated).
"""

from __future__ import annotations

import ast
import enum
import json
import re
from collections import Counter
from typing import Any, ClassVar

import msgspec

from agentsim.chat import ChatMessage
from agentsim.protocols.base import AskResult, BaseProtocol, Outcome, TaskDriver
from agentsim.protocols.common import int_option, user_prompt
from agentsim.protocols.react import ReAct
from agentsim.protocols.styles import SEED_TURNS, final_in, route_examples
from agentsim.protocols.turns import seed_grammar_for
from agentsim.scenario import Scenario
from agentsim.tasks.base import Task
from agentsim.tools import parse_tool_calls

_ROUTE_LINE = re.compile(r"^[ \t>*_#]*route[ \t*_]*:[ \t*_\"']*([A-Za-z][\w-]*)", re.I | re.M)
_TASK_LINE = re.compile(r"^[ \t>*_#]*task[ \t*_]*:[ \t*_]*(.+)$", re.I | re.M)
_FLAT_OBJECT = re.compile(r"\{[^{}]*\}", re.S)
NUDGE = 'Reply with a route, {"route": "<specialist>", "task": "<request>"}, or with "Final Answer: <answer>".'
SEED_ROUTE_NUDGE = (
    'Reply with <think>...</think> then <action>{"route": "<specialist>", "task": "<request>"}</action> '
    "or <final_answer>your answer</final_answer>."
)


def parse_route(text: str) -> tuple[str, str] | None:
    """``(specialist, request)`` from a JSON route object or a ``ROUTE:`` line, else None."""
    for match in _FLAT_OBJECT.finditer(text):
        obj = _loads(match.group(0))
        if isinstance(obj, dict) and isinstance(obj.get("route"), str):
            request = obj.get("task", obj.get("request", ""))
            return obj["route"].strip(), str(request).strip()
    line = _ROUTE_LINE.search(text)
    if line is None:
        return None
    task = _TASK_LINE.search(text, line.end())
    return line.group(1), task.group(1).strip() if task else ""


def _loads(snippet: str) -> object:
    try:
        return json.loads(snippet)
    except ValueError:
        pass
    try:
        return ast.literal_eval(snippet)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def final_answer_of(text: str) -> str:
    """The explicit final answer in a turn (``Final Answer: x``, ``{"final_answer": x}``, ``#### x``)."""
    return parse_tool_calls(text).final_answer or ""


class Router(BaseProtocol):
    """Supervisor → specialist (ReAct) → supervisor, until a final answer."""

    name = "router"
    termination = (
        "the supervisor's final answer (after a delegation when must_route), a delegation loop, "
        "a failed supervisor ask, or max_steps supervisor turns"
    )
    final_answer = "the supervisor's 'Final Answer: ...'; a specialist's answer alone is not final"

    class Phase(enum.Enum):
        START = "start"
        SUPERVISE = "supervise"
        DELEGATE = "delegate"
        DONE = "done"

    ALLOWED: ClassVar = {
        "start": frozenset({"supervise"}),
        "supervise": frozenset({"supervise", "delegate", "done"}),
        "delegate": frozenset({"supervise", "done"}),
    }

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        o = self.spec.options
        self.supervisor = str(o.get("supervisor", self.agents[0]))
        if self.supervisor not in self.agents:
            raise ValueError(
                f"protocol.options.supervisor must name one of {self.agents}, got {self.supervisor!r}"
            )
        self.specialists = [a for a in self.agents if a != self.supervisor]
        if not self.specialists:
            raise ValueError(
                f"router needs a supervisor and at least one specialist, got {self.agents}"
            )
        self.must_route = bool(o.get("must_route", True))
        self.max_delegations = int_option(o, "max_delegations", 3)
        self.loop_limit = int_option(o, "loop_limit", 2)
        self.expected = {str(k): str(v) for k, v in dict(o.get("expected", {})).items()}
        for category, name in self.expected.items():
            if name not in self.specialists:
                raise ValueError(
                    f"protocol.options.expected.{category} must name a specialist {self.specialists}, got {name!r}"
                )
        steps = int_option(o, "specialist_steps", self.spec.max_steps)
        inner = msgspec.structs.replace(self.spec, kind="react", max_steps=steps, options={})
        self.react = ReAct(msgspec.structs.replace(scenario, protocol=inner))

    @property
    def seed(self) -> bool:
        return self.spec.prompt_style == "seed"

    @property
    def max_turns(self) -> int:
        """Supervisor turns: ``max_steps``, capped at five in the seed style."""
        return min(self.spec.max_steps, SEED_TURNS) if self.seed else self.spec.max_steps

    def _answer_hint(self) -> str:
        return "<final_answer>your answer</final_answer>" if self.seed else "Final Answer: <answer>"

    def route_schema(self) -> dict[str, Any]:
        """JSON Schema of one supervisor turn (a route or a final answer), for constrained decoding.

        In the seed style it is a Lark grammar: ``<think>`` then a route in ``<action>`` or a
        ``<final_answer>``.
        """
        route = {
            "type": "object",
            "properties": {"route": {"enum": self.specialists}, "task": {"type": "string"}},
            "required": ["route", "task"],
            "additionalProperties": False,
        }
        final = {
            "type": "object",
            "properties": {"final_answer": {"type": "string"}},
            "required": ["final_answer"],
            "additionalProperties": False,
        }
        if self.seed:
            return seed_grammar_for([route])
        return {"anyOf": [route, final]}

    def instructions(self, driver: TaskDriver) -> str:
        """The supervisor's system prompt: its own text plus the specialists and the formats."""
        own = driver.system_prompt(self.supervisor)
        lines = [own, ""] if own else []
        lines.append("You are the supervisor. Route the problem to one of these specialists:")
        for name in self.specialists:
            spec = driver.scenario.agents[name]
            tools = f" (tools: {', '.join(spec.tools)})" if spec.tools else ""
            lines.append(f"- {name}: {spec.role or 'specialist'}{tools}")
        if self.seed:
            lines += [
                "",
                "Answer in this format, one step per turn: <think>your reasoning</think>, then",
                'either <action>{"route": "<specialist>", "task": "<what the specialist should do>"}</action>',
                "and wait for the specialist's answer, or <final_answer>your answer</final_answer>.",
                'Rules: the action is one strict JSON object with exactly the keys "route" and "task"; '
                f"you have at most {self.max_turns} turns.",
            ]
        else:
            lines += [
                "",
                "To route, reply with exactly one JSON object:",
                '{"route": "<specialist>", "task": "<what the specialist should do>"}',
                "You will then receive the specialist's answer.",
                "When you know the answer, reply with: Final Answer: <answer>",
            ]
        if not self.must_route:
            lines.append("You may answer directly when no specialist is needed.")
        return "\n".join(lines)

    async def run_task(self, task: Task, driver: TaskDriver) -> Outcome:
        sup = self.supervisor
        expected = self.expected.get(task.category)
        shots = (
            route_examples(task.meta.get("examples", []), expected, style=self.spec.prompt_style)
            if expected
            else []
        )
        messages = [
            ChatMessage(role="system", content=self.instructions(driver)),
            *shots,
            ChatMessage(
                role="user", content=user_prompt(task, str(self.spec.options.get("prompt", "")))
            ),
        ]
        phase: enum.Enum = self.Phase.START
        sent: Counter[tuple[str, str]] = Counter()
        asked_by: dict[tuple[str, str], list[str]] = {}
        delegations: list[dict[str, Any]] = []
        last = ""
        stop = ""
        sup_spec = driver.scenario.agents[sup]
        # the seed style's Lark grammar is an llguidance form only the mlc engine compiles
        use = sup_spec.constrained and (not self.seed or sup_spec.engine == "mlc")
        schema = self.route_schema() if use else None
        step = 0
        nudge = SEED_ROUTE_NUDGE if self.seed else NUDGE
        for step in range(self.max_turns):
            phase = self.enter(driver, phase, self.Phase.SUPERVISE, step=step)
            res = await driver.ask(sup, messages, round=step, response_schema=schema)
            if not res.ok:
                stop = res.failure or "ask_failed"
                break
            last = res.text
            messages.append(ChatMessage(role="assistant", content=res.text))
            route = parse_route(res.text)
            if route is not None:
                target, request = route
                reply = self._check_route(task, driver, res, step, target)
                if reply:
                    messages.append(ChatMessage(role="user", content=reply))
                    continue
                key = (target, " ".join(request.lower().split()))
                sent[key] += 1
                asked_by.setdefault(key, []).append(res.msg_id)
                if sent[key] > self.loop_limit:
                    driver.fail(
                        "delegation_loop",
                        agents=[sup, target],
                        round=step,
                        evidence=asked_by[key],
                        detail=f"same delegation to {target} sent {sent[key]} times (loop_limit={self.loop_limit})",
                    )
                    stop = "delegation_loop"
                    break
                if len(delegations) >= self.max_delegations:
                    messages.append(
                        ChatMessage(
                            role="user",
                            content=(
                                f"No delegations left (max_delegations={self.max_delegations}). "
                                f"Reply with: {self._answer_hint()}"
                            ),
                        )
                    )
                    continue
                phase = self.enter(
                    driver, phase, self.Phase.DELEGATE, to=target, delegation=len(delegations) + 1
                )
                report = await self._delegate(task, driver, target, request, delegations)
                messages.append(ChatMessage(role="user", content=report))
                continue
            answer = final_in(res.text, self.spec.prompt_style) or ""
            if answer and self.must_route and not delegations:
                driver.fail(
                    "role_violation",
                    agents=[sup],
                    round=step,
                    evidence=[res.msg_id],
                    detail="supervisor answered itself before routing (must_route)",
                )
                messages.append(
                    ChatMessage(
                        role="user",
                        content=(
                            "You must not solve the problem yourself. Route it to a specialist first. "
                            + nudge
                        ),
                    )
                )
                continue
            if answer:
                self.enter(driver, phase, self.Phase.DONE, by=sup, delegations=len(delegations))
                return Outcome(
                    answer=f"Final Answer: {answer}",
                    rounds=step + 1,
                    by=sup,
                    extra={"delegations": delegations},
                )
            driver.fail(
                "no_final_answer",
                agents=[sup],
                round=step,
                evidence=[res.msg_id],
                detail="supervisor turn has neither a route nor a final answer",
            )
            messages.append(ChatMessage(role="user", content=nudge))
        else:
            stop = "max_steps"
            driver.fail(
                "unaware_of_termination",
                agents=[sup],
                round=self.max_turns,
                detail=f"no final answer within {self.max_turns} supervisor turns",
            )
        if not delegations:
            driver.fail(
                "no_delegation",
                agents=[sup],
                round=step,
                detail=f"supervisor never routed to a specialist ({', '.join(self.specialists)})",
            )
        self.enter(driver, phase, self.Phase.DONE, reason=stop, delegations=len(delegations))
        answer = delegations[-1]["answer"] if delegations else last
        return Outcome(
            answer=answer, final=False, rounds=step + 1, by=sup, extra={"delegations": delegations}
        )

    def _check_route(
        self, task: Task, driver: TaskDriver, res: AskResult, step: int, target: str
    ) -> str:
        """Record a misroute; returns the supervisor's correction when the route cannot be followed."""
        if target not in self.specialists:
            driver.fail(
                "misrouting",
                agents=[self.supervisor],
                round=step,
                evidence=[res.msg_id],
                detail=f"route to {target!r}, which is not a specialist ({', '.join(self.specialists)})",
            )
            nudge = SEED_ROUTE_NUDGE if self.seed else NUDGE
            return f"{target!r} is not a specialist. Choose one of: {', '.join(self.specialists)}. {nudge}"
        expected = self.expected.get(task.category)
        if expected and target != expected:
            driver.fail(
                "misrouting",
                agents=[self.supervisor, target],
                round=step,
                evidence=[res.msg_id],
                detail=f"{task.category} task routed to {target}, expected {expected}",
            )
        return ""

    async def _delegate(
        self,
        task: Task,
        driver: TaskDriver,
        target: str,
        request: str,
        delegations: list[dict[str, Any]],
    ) -> str:
        """Run ``target``'s ReAct loop on the task; returns the report for the supervisor."""
        prompt = (
            task.question if not request else f"{task.question}\n\nThe supervisor asks: {request}"
        )
        out = await self.react.loop(task, driver, target, prompt=prompt)
        answer = final_answer_of(out.answer) if out.final else ""
        delegations.append(
            {"to": target, "request": request, "answer": out.answer, "final": out.final}
        )
        if answer:
            return (
                f"Specialist {target} answered: {answer}\n\n"
                f"If this solves the problem, reply with: {self._answer_hint()}. Otherwise route again."
            )
        return f"Specialist {target} gave no final answer. Route again or reply with: {self._answer_hint()}."
