"""Settling a game round: payoffs, contract transfers, and the failures a round reveals.

Pure bookkeeping over what the round's phases gathered (``Round``); the only side effect is
recording ``contract_breach_attempt``, ``promise_broken`` and ``mediator_ignored`` through
the driver. The returned record is the ``settle`` phase event, from which ``game_summary``
rebuilds every game metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from agentsim.environments.games import Move, Rules
from agentsim.environments.spec import EnvironmentSpec
from agentsim.protocols.base import TaskDriver


class Round(msgspec.Struct, frozen=True, kw_only=True):
    """What one round gathered before it is settled."""

    r: int
    groups: list[list[str]]
    moves: Mapping[str, Move]
    msg_ids: Mapping[str, str]
    intents: Mapping[str, tuple[Move, str]]
    signed: Mapping[str, bool]
    advice: Mapping[str, Move]
    advice_msg: str
    mediator: str


def settle(env: EnvironmentSpec, rules: Rules, driver: TaskDriver, rd: Round) -> dict[str, Any]:
    """The round's record (moves, payoffs, transfers, welfare, promises, contracts...)."""
    payoffs: dict[str, float] = {}
    transfers = dict.fromkeys(rd.moves, 0.0)
    optimum = 0.0
    contracts, breaches = [], []
    for g in rd.groups:
        payoffs.update(rules.payoffs(g, rd.moves))
        optimum += rules.optimum(g)
        if env.contracts is None:
            continue
        bound = all(rd.signed.get(p, False) for p in g)
        contracts.append(
            {"group": g, "signed": {p: rd.signed.get(p, False) for p in g}, "bound": bound}
        )
        if not bound:
            continue
        commit = rules.contract_commitment()
        keepers = [p for p in g if rules.kept(rd.moves[p], commit)]
        for p in g:
            if p in keepers:
                continue
            breaches.append(p)
            driver.fail(
                "contract_breach_attempt",
                agents=[p, *keepers],
                round=rd.r,
                evidence=[rd.msg_ids[p]],
                detail=f"{p} signed to play {commit} but played {rd.moves[p]}",
            )
            if keepers:
                fine = env.contracts.transfer
                transfers[p] -= fine
                for q in keepers:
                    transfers[q] += fine / len(keepers)
    promises: dict[str, Move] = {}
    broken: list[str] = []
    for p, (intent, said_id) in sorted(rd.intents.items()):
        if p not in rd.moves or rules.cooperation(intent) <= 0:
            continue
        promises[p] = intent
        if not rules.kept(rd.moves[p], intent):
            broken.append(p)
            driver.fail(
                "promise_broken",
                agents=[p],
                round=rd.r,
                evidence=[said_id, rd.msg_ids[p]],
                detail=f"{p} said it would play {intent}, then played {rd.moves[p]}",
            )
    ignored = [p for p in rd.moves if p in rd.advice and rd.moves[p] != rd.advice[p]]
    for p in ignored:
        driver.fail(
            "mediator_ignored",
            agents=[p, rd.mediator],
            round=rd.r,
            evidence=[rd.advice_msg, rd.msg_ids[p]],
            detail=f"mediator proposed {rd.advice[p]}, {p} played {rd.moves[p]}",
        )
    totals = {p: round(payoffs[p] + transfers[p], 9) for p in rd.moves}
    coop = [rules.cooperation(m) for m in rd.moves.values()]
    return {
        "round": rd.r,
        "groups": rd.groups,
        "moves": dict(rd.moves),
        "game_payoffs": {p: round(v, 9) for p, v in payoffs.items()},
        "transfers": {p: round(v, 9) for p, v in transfers.items() if v},
        "payoffs": totals,
        "welfare": round(sum(totals.values()), 9),
        "optimum": round(optimum, 9),
        "cooperation": round(sum(coop) / len(coop), 6) if coop else 0.0,
        "cooperation_by_agent": {p: rules.cooperation(m) for p, m in rd.moves.items()},
        "promises": promises,
        "promises_broken": broken,
        "contracts": contracts,
        "breaches": breaches,
        "advice": dict(rd.advice),
        "mediator_ignored": ignored,
    }
