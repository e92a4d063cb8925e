"""Game rules, matching schedules and scripted strategies as plain functions."""

from __future__ import annotations

import itertools
import json
import random

from agentsim.engines.strategies import choose, find_state, strategy_reply
from agentsim.environments import parse_environment
from agentsim.environments.games import MatrixRules, PublicGoodsRules, first_json_object, schedule
from agentsim.environments.spec import MatrixGameSpec, PublicGoodsSpec

PD = {"C": {"C": [3, 3], "D": [0, 5]}, "D": {"C": [5, 0], "D": [1, 1]}}


def test_round_robin_meets_every_pair_once_in_n_minus_one_rounds() -> None:
    players = [f"p{i}" for i in range(8)]
    rounds = schedule(players, size=2, matching="round_robin", groups=[], rounds=7, seed=0)
    met = [frozenset(g) for r in rounds for g in r]
    assert len(met) == 28 and set(met) == {frozenset(c) for c in itertools.combinations(players, 2)}
    assert all(sorted(p for g in r for p in g) == sorted(players) for r in rounds)


def test_odd_round_robin_gives_one_bye_per_round() -> None:
    rounds = schedule(["a", "b", "c"], size=2, matching="round_robin", groups=[], rounds=3, seed=0)
    assert [len(r) for r in rounds] == [1, 1, 1]
    assert {frozenset(r[0]) for r in rounds} == {frozenset("ab"), frozenset("ac"), frozenset("bc")}


def test_random_matching_repeats_with_the_seed_and_changes_without() -> None:
    players = [f"p{i}" for i in range(6)]
    a = schedule(players, size=2, matching="random", groups=[], rounds=5, seed=1)
    b = schedule(players, size=2, matching="random", groups=[], rounds=5, seed=1)
    c = schedule(players, size=2, matching="random", groups=[], rounds=5, seed=2)
    assert a == b and a != c


def test_public_goods_groups_and_payoffs() -> None:
    spec = parse_environment(
        {"kind": "public_goods", "endowment": 10, "multiplier": 1.5}, ["a", "b", "c"]
    )
    assert isinstance(spec, PublicGoodsSpec)
    rules = PublicGoodsRules(spec)
    assert rules.payoffs(["a", "b", "c"], {"a": 10.0, "b": 0.0, "c": 5.0}) == {
        "a": 7.5,
        "b": 17.5,
        "c": 12.5,
    }
    assert rules.optimum(["a", "b", "c"]) == 45.0
    assert rules.parse({"contribution": 11}) is None and rules.parse({"contribution": True}) is None
    assert rules.parse({"contribution": 4}) == 4.0


def test_matrix_rules_read_the_table_from_each_side() -> None:
    spec = parse_environment({"kind": "matrix_game", "payoffs": PD}, ["row", "col"])
    assert isinstance(spec, MatrixGameSpec)
    rules = MatrixRules(spec)
    assert rules.payoffs(["row", "col"], {"row": "C", "col": "D"}) == {"row": 0.0, "col": 5.0}
    assert "- you D, row C: you get 5, row gets 0" in rules.describe("col", ["row", "col"])
    assert rules.parse({"action": "c"}) == "C" and rules.parse({"action": "X"}) is None
    assert rules.optimum(["row", "col"]) == 6.0


def test_first_json_object_skips_prose_and_broken_braces() -> None:
    assert first_json_object('Sure! {oops} then ```json\n{"action": "C"}\n```') == {"action": "C"}
    assert first_json_object("no json here") is None


def state(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "env": "matrix_game",
        "phase": "act",
        "cooperate": "C",
        "defect": "D",
        "partners": ["b"],
    }
    return {**base, **kw}


def test_tit_for_tat_copies_partner_and_grim_never_forgives() -> None:
    rng = random.Random(0)
    assert choose("tit_for_tat", state(), rng, {}) == "C"
    assert choose("tit_for_tat", state(partner_history={"b": ["C", "D"]}), rng, {}) == "D"
    history = [{"round": 1, "mine": "C", "theirs": {"b": "D"}, "payoff": 0}]
    assert choose("tit_for_tat", state(history=history), rng, {}) == "D"
    later = [*history, {"round": 2, "mine": "D", "theirs": {"c": "C"}, "payoff": 5}]
    assert choose("grim_trigger", state(history=later, partners=["c"]), rng, {}) == "D"
    assert choose("grim_trigger", state(history=later[1:], partners=["c"]), rng, {}) == "C"


def test_random_strategy_follows_p() -> None:
    rng = random.Random(3)
    picks = [choose("random", state(), rng, {"p": 0.8}) for _ in range(2000)]
    assert 0.75 < picks.count("C") / len(picks) < 0.85


def test_strategy_reply_reads_state_and_answers_each_phase() -> None:
    line = "STATE: " + json.dumps(state(phase="talk"))
    assert find_state(["hello", f"prompt\n{line}", "- b: {}"]) == state(phase="talk")
    rng = random.Random(0)
    talk = json.loads(strategy_reply("always_defect", [line], rng, {"talk": "promise"}) or "")
    assert talk["intend"] == "C"
    sign = strategy_reply(
        "always_defect", ["STATE: " + json.dumps(state(phase="contract"))], rng, {"sign": False}
    )
    assert json.loads(sign or "") == {"sign": False}
    assert strategy_reply("always_defect", ["no state"], rng, {}) is None


def test_cheap_talk_cut_at_max_tokens_still_yields_the_intent() -> None:
    from agentsim.environments.games import loose_fields

    assert loose_fields('{"message":"C","intend":"D","history":"[{') == {
        "message": "C",
        "intend": "D",
    }
    assert loose_fields('{"pledge": 7.5, "message": "hi"}') == {"pledge": 7.5, "message": "hi"}
