"""The game environment as a protocol: one task per round, state kept across tasks.

Each round runs the phases MATCH → (MEDIATE) → (TALK × exchanges) → (CONTRACT) → ACT →
SETTLE → DONE. Cheap talk travels between partners as real ``Peer`` messages (each talk reply
is shared with the partners and read from their inbox in the next ask). Every ask carries a
``response_schema`` and a ``STATE: {...}`` line that scripted strategies read.

The ``settle`` phase event holds the whole round (moves, payoffs, transfers, welfare,
optimum, cooperation, promises, contracts, mediator advice), so ``game_summary`` can rebuild
every game metric from the journal alone. Recorded failures: ``invalid_action`` (the default
move is played), ``promise_broken``, ``contract_breach_attempt``, ``mediator_ignored``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec
import trio

from agentsim.chat import ChatMessage
from agentsim.engines.strategies import STATE_PREFIX
from agentsim.environments.games import (
    Move,
    Rules,
    first_json_object,
    loose_fields,
    rules_for,
    schedule,
)
from agentsim.environments.observe import Observer, talk_example
from agentsim.environments.spec import EnvironmentSpec, kind_of, parse_environment, players_of
from agentsim.protocols.base import AskResult, BaseProtocol, Outcome, TaskDriver
from agentsim.scenario import Scenario
from agentsim.tasks.base import Score, Task

PEER_TEMPLATE = "Your partners said:\n{peers}"
COOPERATIVE = "full cooperation"


class _Ask(msgspec.Struct, frozen=True, kw_only=True):
    messages: list[ChatMessage]
    schema: dict[str, Any]
    share_with: list[str] = msgspec.field(default_factory=list)


class GameEnvironment(BaseProtocol):
    """A repeated game over the scenario's agents (see ``agentsim.environments.spec``)."""

    termination = "after `environment.rounds` rounds (one task per round)"
    final_answer = "the round's moves and payoffs as JSON; correct = everyone cooperated"

    class Phase(enum.Enum):
        START = "start"
        MATCH = "match"
        MEDIATE = "mediate"
        TALK = "talk"
        CONTRACT = "contract"
        ACT = "act"
        SETTLE = "settle"
        DONE = "done"

    ALLOWED: ClassVar = {
        "start": frozenset({"match"}),
        "match": frozenset({"mediate", "talk", "contract", "act"}),
        "mediate": frozenset({"talk", "contract", "act"}),
        "talk": frozenset({"talk", "contract", "act"}),
        "contract": frozenset({"act"}),
        "act": frozenset({"settle"}),
        "settle": frozenset({"done"}),
    }

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        self.env: EnvironmentSpec = parse_environment(scenario.environment, list(scenario.agents))
        self.rules: Rules = rules_for(self.env)
        self.players = players_of(self.env, list(scenario.agents))
        self.mediator = self.env.mediator.agent if self.env.mediator else ""
        self.schedule = schedule(
            self.players,
            size=self.rules.group_size,
            matching=self.env.matching,
            groups=self.env.groups,
            rounds=self.env.rounds,
            seed=scenario.run.seed,
        )
        self.past: list[dict[str, Any]] = []  # settled rounds, in order
        self.obs = Observer(self.env, self.rules, self.players, self.schedule, self.past)

    # ----- one round ------------------------------------------------------------------------
    async def run_task(self, task: Task, driver: TaskDriver) -> Outcome:
        r = int(task.meta["round"])
        groups = self.schedule[r - 1]
        partners = {p: [q for q in g if q != p] for g in groups for p in g}
        fields: dict[str, Any] = {"round": r, "groups": groups}
        fields["sitting_out"] = [p for p in self.players if p not in partners]
        if r == 1:
            fields["config"] = self.obs.config()
        phase: enum.Enum = self.enter(driver, self.Phase.START, self.Phase.MATCH, **fields)
        waves = 0
        advice: dict[str, Move] = {}
        advice_msg = ""
        if self.mediator:
            phase = self.enter(driver, phase, self.Phase.MEDIATE, round=r, mediator=self.mediator)
            advice, advice_msg = await self._mediate(driver, r, groups)
            waves += 1
        inbox = False
        intents: dict[str, tuple[Move, str]] = {}
        talk = self.env.communication
        for k in range(talk.exchanges if talk.kind == "cheap_talk" else 0):
            phase = self.enter(driver, phase, self.Phase.TALK, round=r, exchange=k + 1)
            intents = await self._talk(driver, r, k, partners, advice, intents, inbox)
            inbox = True
            waves += 1
        signed: dict[str, bool] = {}
        if self.env.contracts is not None:
            phase = self.enter(driver, phase, self.Phase.CONTRACT, round=r)
            signed = await self._contract(driver, r, partners, advice, inbox)
            inbox = False
            waves += 1
        phase = self.enter(driver, phase, self.Phase.ACT, round=r)
        moves, msg_ids, invalid, defaulted = await self._act(
            driver, r, partners, advice, signed, inbox
        )
        record = self._settle(
            driver, r, groups, moves, msg_ids, intents, signed, advice, advice_msg
        )
        record.update(invalid=invalid, defaulted=defaulted, sitting_out=fields["sitting_out"])
        phase = self.enter(driver, phase, self.Phase.SETTLE, **record)
        self.past.append(record)
        self.enter(driver, phase, self.Phase.DONE, round=r)
        answer = {k: record[k] for k in ("round", "moves", "payoffs", "welfare", "cooperation")}
        return Outcome(answer=json.dumps(answer, sort_keys=True), rounds=waves + 1, extra=record)

    # ----- phases ---------------------------------------------------------------------------
    async def _mediate(
        self, driver: TaskDriver, r: int, groups: list[list[str]]
    ) -> tuple[dict[str, Move], str]:
        m = self.mediator
        active = [p for g in groups for p in g]
        state = self.obs.state(m, "mediate", r, [])
        state["players"] = active
        state["groups"] = groups
        per_player = self.rules.schema()["properties"]
        value_schema = next(iter(per_player.values()))
        schema = {
            "type": "object",
            "properties": {
                "proposals": {
                    "type": "object",
                    "properties": dict.fromkeys(active, value_schema),
                    "required": active,
                    "additionalProperties": False,
                }
            },
            "required": ["proposals"],
            "additionalProperties": False,
        }
        text = (
            f"You are the mediator of round {r} of {self.env.rounds}. Propose a move for every "
            f"player; they may follow or ignore you.\nPlayers: {', '.join(active)}.\n"
            f"{self.rules.describe(groups[0][0], groups[0])}\n"
            'Reply with JSON only: {"proposals": {"<player>": <move>, ...}}.'
        )
        res = (await self._ask_each(driver, r, {m: self._ask(m, text, state, schema)}, False))[m]
        obj = first_json_object(res.text) if res.ok else None
        raw = obj.get("proposals") if obj else None
        key = next(iter(per_player))
        advice: dict[str, Move] = {}
        if isinstance(raw, dict):
            for p in active:
                move = self.rules.parse({key: raw.get(p)})
                if move is not None:
                    advice[p] = move
        if res.ok and len(advice) < len(active):
            missing = [p for p in active if p not in advice]
            driver.fail(
                "invalid_action",
                agents=[m],
                round=r,
                evidence=[res.msg_id],
                detail=f"mediator gave no valid proposal for {', '.join(missing)}: {res.text[:120]!r}",
            )
        return advice, res.msg_id

    async def _talk(
        self,
        driver: TaskDriver,
        r: int,
        k: int,
        partners: Mapping[str, list[str]],
        advice: Mapping[str, Move],
        intents: dict[str, tuple[Move, str]],
        inbox: bool,
    ) -> dict[str, tuple[Move, str]]:
        asks: dict[str, _Ask] = {}
        for p, mates in partners.items():
            state = self.obs.state(p, "talk", r, mates, advice)
            state["exchange"] = k + 1
            text = (
                f"{self.obs.intro(p, r, mates, advice)}\nBefore acting you may talk to {', '.join(mates)} "
                f"(message {k + 1} of {self.env.communication.exchanges}). Say what you intend to play."
                f"\nReply with JSON only: {json.dumps(talk_example(self.rules))}."
            )
            ask = self._ask(p, text, state, self.rules.talk_schema())
            asks[p] = msgspec.structs.replace(ask, share_with=list(mates))
        results = await self._ask_each(driver, r, asks, inbox)
        out = dict(intents)
        for p, res in results.items():
            intent = self.rules.parse_intent(loose_fields(res.text)) if res.ok else None
            if intent is not None:
                out[p] = (intent, res.msg_id)
        return out

    async def _contract(
        self,
        driver: TaskDriver,
        r: int,
        partners: Mapping[str, list[str]],
        advice: Mapping[str, Move],
        inbox: bool,
    ) -> dict[str, bool]:
        c = self.env.contracts
        assert c is not None
        commit = self.rules.contract_commitment()
        schema = {
            "type": "object",
            "properties": {"sign": {"type": "boolean"}},
            "required": ["sign"],
            "additionalProperties": False,
        }
        asks = {}
        for p, mates in partners.items():
            state = self.obs.state(p, "contract", r, mates, advice)
            state["contract"] = {"commitment": commit, "transfer": c.transfer}
            text = (
                f"{self.obs.intro(p, r, mates, advice)}\nContract offer: everyone in your group who signs commits "
                f"to play {commit}; a signer who does not pays {c.transfer:g} to the signers who did. "
                'It binds only if all sign.\nReply with JSON only: {"sign": true} or {"sign": false}.'
            )
            asks[p] = self._ask(p, text, state, schema)
        results = await self._ask_each(driver, r, asks, inbox)
        signed = {}
        for p, res in results.items():
            obj = first_json_object(res.text) if res.ok else None
            signed[p] = bool(obj and obj.get("sign") is True)
        return signed

    async def _act(
        self,
        driver: TaskDriver,
        r: int,
        partners: Mapping[str, list[str]],
        advice: Mapping[str, Move],
        signed: Mapping[str, bool],
        inbox: bool,
    ) -> tuple[dict[str, Move], dict[str, str], list[str], dict[str, str]]:
        asks = {}
        for p, mates in partners.items():
            state = self.obs.state(p, "act", r, mates, advice)
            if signed:
                state["contract_bound"] = all(signed.get(q, False) for q in [p, *mates])
            text = f"{self.obs.intro(p, r, mates, advice)}\nChoose your move now. {self.rules.reply_hint()}"
            asks[p] = self._ask(p, text, state, self.rules.schema())
        results = await self._ask_each(driver, r, asks, inbox)
        moves: dict[str, Move] = {}
        msg_ids: dict[str, str] = {}
        invalid: list[str] = []
        defaulted: dict[str, str] = {}
        for p, res in results.items():
            msg_ids[p] = res.msg_id
            move = self.rules.parse(first_json_object(res.text)) if res.ok else None
            if move is None:
                move = self.rules.default
                if res.ok:
                    invalid.append(p)
                    defaulted[p] = "invalid_action"
                    driver.fail(
                        "invalid_action",
                        agents=[p],
                        round=r,
                        evidence=[res.msg_id],
                        detail=f"{p} replied {res.text[:120]!r}; default {move} played",
                    )
                else:
                    defaulted[p] = res.failure or "no_reply"
            moves[p] = move
        return moves, msg_ids, invalid, defaulted

    def _settle(
        self,
        driver: TaskDriver,
        r: int,
        groups: list[list[str]],
        moves: Mapping[str, Move],
        msg_ids: Mapping[str, str],
        intents: Mapping[str, tuple[Move, str]],
        signed: Mapping[str, bool],
        advice: Mapping[str, Move],
        advice_msg: str,
    ) -> dict[str, Any]:
        rules = self.rules
        payoffs: dict[str, float] = {}
        transfers = dict.fromkeys(moves, 0.0)
        optimum = 0.0
        contracts, breaches = [], []
        for g in groups:
            payoffs.update(rules.payoffs(g, moves))
            optimum += rules.optimum(g)
            if self.env.contracts is None:
                continue
            bound = all(signed.get(p, False) for p in g)
            contracts.append(
                {"group": g, "signed": {p: signed.get(p, False) for p in g}, "bound": bound}
            )
            if not bound:
                continue
            commit = rules.contract_commitment()
            keepers = [p for p in g if rules.kept(moves[p], commit)]
            for p in g:
                if p in keepers:
                    continue
                breaches.append(p)
                driver.fail(
                    "contract_breach_attempt",
                    agents=[p, *keepers],
                    round=r,
                    evidence=[msg_ids[p]],
                    detail=f"{p} signed to play {commit} but played {moves[p]}",
                )
                if keepers:
                    fine = self.env.contracts.transfer
                    transfers[p] -= fine
                    for q in keepers:
                        transfers[q] += fine / len(keepers)
        promises: dict[str, Move] = {}
        broken: list[str] = []
        for p, (intent, said_id) in sorted(intents.items()):
            if p not in moves or rules.cooperation(intent) <= 0:
                continue
            promises[p] = intent
            if not rules.kept(moves[p], intent):
                broken.append(p)
                driver.fail(
                    "promise_broken",
                    agents=[p],
                    round=r,
                    evidence=[said_id, msg_ids[p]],
                    detail=f"{p} said it would play {intent}, then played {moves[p]}",
                )
        ignored = [p for p in moves if p in advice and moves[p] != advice[p]]
        for p in ignored:
            driver.fail(
                "mediator_ignored",
                agents=[p, self.mediator],
                round=r,
                evidence=[advice_msg, msg_ids[p]],
                detail=f"mediator proposed {advice[p]}, {p} played {moves[p]}",
            )
        totals = {p: round(payoffs[p] + transfers[p], 9) for p in moves}
        coop = [rules.cooperation(m) for m in moves.values()]
        return {
            "round": r,
            "groups": groups,
            "moves": dict(moves),
            "game_payoffs": {p: round(v, 9) for p, v in payoffs.items()},
            "transfers": {p: round(v, 9) for p, v in transfers.items() if v},
            "payoffs": totals,
            "welfare": round(sum(totals.values()), 9),
            "optimum": round(optimum, 9),
            "cooperation": round(sum(coop) / len(coop), 6) if coop else 0.0,
            "cooperation_by_agent": {p: rules.cooperation(m) for p, m in moves.items()},
            "promises": promises,
            "promises_broken": broken,
            "contracts": contracts,
            "breaches": breaches,
            "advice": dict(advice),
            "mediator_ignored": ignored,
        }

    # ----- prompts and state ----------------------------------------------------------------
    def _ask(self, agent: str, text: str, state: Mapping[str, Any], schema: dict[str, Any]) -> _Ask:
        body = f"{text}\n{STATE_PREFIX}{json.dumps(state, sort_keys=True)}"
        system = self.scenario.agents[agent].system
        msgs = [ChatMessage(role="system", content=system)] if system else []
        msgs.append(ChatMessage(role="user", content=body))
        return _Ask(messages=msgs, schema=schema)

    async def _ask_each(
        self, driver: TaskDriver, r: int, asks: Mapping[str, _Ask], inbox: bool
    ) -> dict[str, AskResult]:
        """Ask every agent at once, each with its own schema and share list."""
        results: dict[str, AskResult] = {}

        async def one(agent: str, a: _Ask) -> None:
            results[agent] = await driver.ask(
                agent,
                a.messages,
                round=r,
                response_schema=a.schema,
                share_with=a.share_with,
                peer_inbox=inbox,
                peer_template=PEER_TEMPLATE,
            )

        async with trio.open_nursery() as nursery:
            for agent, a in asks.items():
                nursery.start_soon(one, agent, a)
        return {a: results[a] for a in asks}


class MatrixGame(GameEnvironment):
    name = "matrix_game"


class PublicGoods(GameEnvironment):
    name = "public_goods"


def round_tasks(spec: EnvironmentSpec) -> list[Task]:
    """One task per round; the gold answer is the cooperative outcome."""
    kind = kind_of(spec)
    return [
        Task(
            id=f"round-{r:03d}",
            question=f"{kind} round {r} of {spec.rounds}",
            answer=COOPERATIVE,
            category=kind,
            meta={"round": r},
        )
        for r in range(1, spec.rounds + 1)
    ]


def score_round(task: Task, answer: str) -> Score:
    """A round is "correct" when every player cooperated fully."""
    try:
        data = json.loads(answer)
        coop = float(data["cooperation"])
    except (ValueError, KeyError, TypeError):
        return Score(extracted="", correct=False)
    full = coop >= 1 - 1e-9
    return Score(extracted=COOPERATIVE if full else f"cooperation {coop:.2f}", correct=full)
