"""``[environment]`` validation: every mistake is one pinned line with field, rule, value, place."""

from __future__ import annotations

import pytest

from agentsim.environments import EnvironmentConfigError, MatrixGameSpec, parse_environment
from agentsim.scenario import ScenarioError
from agentsim.testing import scenario_from_toml

AGENTS = '[agents.a]\nengine = "scripted"\n[agents.b]\nengine = "scripted"\n[agents.m]\nengine = "scripted"\n'
PD = "[environment.payoffs]\nC = { C = [3, 3], D = [0, 5] }\nD = { C = [5, 0], D = [1, 1] }\n"
MG = '[environment]\nkind = "matrix_game"\n'
PG = '[environment]\nkind = "public_goods"\n'

CASES = [
    (MG + "rounds = 0\n" + PD, "environment.rounds must be >= 1, got 0 (test.toml:9)"),
    (
        '[environment]\nkind = "poker"\n',
        "environment.kind must be one of matrix_game, public_goods, got 'poker' (test.toml:8)",
    ),
    (
        "[environment]\nrounds = 3\n",
        "environment.kind is required (one of matrix_game, public_goods) (test.toml:7)",
    ),
    (MG + "endowment = 3\n" + PD, "environment.endowment is not a known key, got 3 (test.toml:9)"),
    (
        MG + "[environment.payoffs]\nC = { C = [3, 3] }\nD = { C = [5, 0], D = [1, 1] }\n",
        "environment.payoffs.C must give a payoff pair for every action, got none for D (test.toml:10)",
    ),
    (
        MG + "[environment.payoffs]\nC = { C = [3, 3], D = [0] }\nD = { C = [5, 0], D = [1, 1] }\n",
        "environment.payoffs.C.D must be a pair of numbers [row, column], got [0] (test.toml:10)",
    ),
    (
        MG + "[environment.payoffs]\nC = { C = [3, 3] }\n",
        "environment.payoffs must declare at least 2 actions, got 1 (test.toml:9)",
    ),
    (
        MG + 'default_action = "X"\n' + PD,
        "environment.default_action must be one of C, D, got 'X' (test.toml:9)",
    ),
    (
        MG + 'matching = "swiss"\n' + PD,
        "environment.matching must be one of round_robin, random, fixed, got 'swiss' (test.toml:9)",
    ),
    (
        MG + 'observation = ["own", "gossip"]\n' + PD,
        "environment.observation[1] must be one of own, partner, reputation, got 'gossip' (test.toml:9)",
    ),
    (
        MG + 'matching = "fixed"\n' + PD,
        "environment.groups must list the groups when matching is 'fixed' (test.toml:7)",
    ),
    (
        MG + 'matching = "fixed"\ngroups = [["a", "zed"]]\n' + PD,
        "environment.groups[0] must name players, got 'zed' (test.toml:10)",
    ),
    (
        MG + 'matching = "fixed"\ngroups = [["a", "b", "m"]]\n' + PD,
        "environment.groups[0] must be a pair in a matrix game, got ['a', 'b', 'm'] (test.toml:10)",
    ),
    (
        MG + PD + '[environment.mediator]\nagent = "nobody"\n',
        "environment.mediator.agent must name a declared agent, got 'nobody' (test.toml:13)",
    ),
    (
        MG + 'players = ["a", "b"]\n' + PD + '[environment.mediator]\nagent = "a"\n',
        "environment.mediator.agent must not also be a player, got 'a' (test.toml:14)",
    ),
    (
        MG + PD + '[environment.communication]\nkind = "cheap_talk"\nexchanges = 0\n',
        "environment.communication.exchanges must be >= 1, got 0 (test.toml:14)",
    ),
    (
        MG + PD + '[environment.communication]\nkind = "shout"\n',
        "environment.communication.kind must be one of none, cheap_talk, got 'shout' (test.toml:13)",
    ),
    (
        MG + PD + "[environment.contracts]\ntransfer = 0\n",
        "environment.contracts.transfer must be > 0.0, got 0 (test.toml:13)",
    ),
    (PG + "multiplier = -1\n", "environment.multiplier must be > 0.0, got -1 (test.toml:9)"),
    (
        PG + "endowment = 10\ndefault_contribution = 12\n",
        "environment.default_contribution must be <= endowment (10), got 12 (test.toml:10)",
    ),
    (
        PG + "group_size = 9\n",
        "environment.group_size must be <= the number of players (3), got 9 (test.toml:9)",
    ),
]


@pytest.mark.parametrize(("table", "message"), CASES)
def test_bad_environment_is_one_pinned_line(table: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario_from_toml(AGENTS + table)
    assert str(info.value) == message


def test_parse_environment_rule_reads_field_then_rule() -> None:
    with pytest.raises(EnvironmentConfigError) as info:
        parse_environment({"kind": "matrix_game", "rounds": 0}, ["a", "b"])
    assert str(info.value) == "environment.rounds must be >= 1"


def test_defaults_name_first_action_cooperative_and_last_the_default() -> None:
    raw = {
        "kind": "matrix_game",
        "payoffs": {"S": {"S": [4, 4], "H": [0, 3]}, "H": {"S": [3, 0], "H": [3, 3]}},
    }
    spec = parse_environment(raw, ["a", "b", "m"])
    assert isinstance(spec, MatrixGameSpec)
    assert (spec.cooperative_action, spec.fallback_action, spec.rounds) == ("S", "H", 10)
    assert spec.payoff("H", "S") == (3.0, 0.0)


def test_shipped_scenarios_validate() -> None:
    from pathlib import Path

    from agentsim.scenario.validate import load_scenario

    root = Path(__file__).resolve().parents[2] / "scenarios"
    for name in (
        "prisoners-dilemma.toml",
        "prisoners-dilemma-scripted.toml",
        "public-goods-mediator.toml",
    ):
        assert load_scenario(root / name).environment["kind"] in ("matrix_game", "public_goods")
