"""Games on the in-process bus under MockClock: payoffs, failures, metrics, a property test."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentsim.engines.strategies import STRATEGIES
from agentsim.environments.metrics import game_markdown, game_summary, write_cooperation_plot
from agentsim.testing import journal, scenario_from_toml, simulate

PD = "[environment.payoffs]\nC = { C = [3, 3], D = [0, 5] }\nD = { C = [5, 0], D = [1, 1] }\n"


def run_game(out: Path, toml: str) -> tuple[dict[str, Any], list[dict[str, Any]], Path]:
    scenario = scenario_from_toml(toml)
    box: dict[str, Any] = {}

    async def main() -> None:
        box["summary"], box["runner"] = await simulate(scenario, out)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    folder: Path = box["runner"].folder.path
    return box["summary"], journal(folder), folder


def agents(spec: dict[str, str]) -> str:
    return "".join(
        f'[agents.{n}]\nengine = "scripted"\noptions = {{ {o} }}\n' for n, o in spec.items()
    )


def settles(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in recs if r["event"] == "phase" and r["phase"] == "settle"]


def failures(recs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in recs if r["event"] == "failure" and r["kind"] == kind]


def results(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]


def test_invalid_action_is_recorded_and_the_default_is_played(tmp_path: Path) -> None:
    toml = (
        agents({"bad": 'reply = "I refuse to play."', "ac": 'strategy = "always_cooperate"'})
        + '[environment]\nkind = "matrix_game"\nrounds = 3\nmatching = "fixed"\ngroups = [["bad", "ac"]]\n'
        + 'default_action = "D"\n'
        + PD
    )
    summary, recs, folder = run_game(tmp_path, toml)
    bad = failures(recs, "invalid_action")
    assert [f["round"] for f in bad] == [1, 2, 3] and all(f["agents"] == ["bad"] for f in bad)
    assert [s["moves"] for s in settles(recs)] == [{"bad": "D", "ac": "C"}] * 3
    assert [s["payoffs"] for s in settles(recs)] == [{"bad": 5.0, "ac": 0.0}] * 3
    assert [s["defaulted"] for s in settles(recs)] == [{"bad": "invalid_action"}] * 3
    assert summary["failures"] == {"invalid_action": 3}
    assert [r["failures"] for r in results(folder)] == [["invalid_action"]] * 3
    assert game_summary(recs)["invalid_actions"] == 3
    # the action ask carried the schema (constrained decoding where the engine has it)
    asks = [r for r in recs if r["event"] == "envelope" and r["kind"] == "ask"]
    assert asks[0]["body"]["response_schema"]["properties"]["action"]["enum"] == ["C", "D"]


def test_cheap_talk_travels_as_peer_messages_and_a_broken_promise_is_recorded(
    tmp_path: Path,
) -> None:
    toml = (
        agents(
            {
                "liar": 'strategy = "always_defect", talk = "promise"',
                "tft": 'strategy = "tit_for_tat"',
            }
        )
        + '[environment]\nkind = "matrix_game"\nrounds = 3\nmatching = "fixed"\ngroups = [["liar", "tft"]]\n'
        + 'observation = ["own", "partner"]\n'
        + PD
        + '[environment.communication]\nkind = "cheap_talk"\nexchanges = 2\n'
    )
    summary, recs, _ = run_game(tmp_path, toml)
    peers = [
        r for r in recs if r["event"] == "envelope" and r["kind"] == "peer" and r["dir"] == "in"
    ]
    assert len(peers) == 3 * 2 * 2  # rounds x exchanges x agents
    assert {(p["src"], p["dst"]) for p in peers} == {("liar", "tft"), ("tft", "liar")}
    broken = failures(recs, "promise_broken")
    assert [(f["round"], f["agents"]) for f in broken] == [
        (1, ["liar"]),
        (2, ["liar"]),
        (3, ["liar"]),
    ]
    talk_ids = {
        r["msg_id"]
        for r in recs
        if r["event"] == "envelope" and r["kind"] == "ask" and r["dir"] == "out"
    }
    assert all(len(f["evidence"]) == 2 and set(f["evidence"]) <= talk_ids for f in broken)
    # tft promised C in round 1 and kept it; then honestly announced D
    game = game_summary(recs)
    assert (game["promises"], game["promises_broken"]) == (4, 3)
    assert game["broken_promise_rate"] == 0.75
    assert summary["failures"] == {"promise_broken": 3}


def test_public_goods_with_mediator_and_contracts_pays_exactly(tmp_path: Path) -> None:
    toml = (
        agents(
            {
                "ac": 'strategy = "always_cooperate"',
                "ad": 'strategy = "always_defect"',
                "tft": 'strategy = "tit_for_tat"',
                "mo": 'strategy = "always_cooperate"',
            }
        )
        + '[environment]\nkind = "public_goods"\nrounds = 3\nendowment = 10\nmultiplier = 1.5\n'
        + '[environment.mediator]\nagent = "mo"\n[environment.contracts]\ntransfer = 3\n'
    )
    summary, recs, _ = run_game(tmp_path, toml)
    s = settles(recs)
    assert [x["moves"] for x in s] == [
        {"ac": 10.0, "ad": 0.0, "tft": 10.0},
        {"ac": 10.0, "ad": 0.0, "tft": 5.0},
        {"ac": 10.0, "ad": 0.0, "tft": 5.0},
    ]
    # round 1: pot 20 x 1.5 = 30, 10 each; ad breaches and pays 3 to ac and tft (1.5 each)
    assert s[0]["payoffs"] == {"ac": 11.5, "ad": 17.0, "tft": 11.5}
    # rounds 2, 3: pot 15 x 1.5 = 22.5, 7.5 each; ad and tft breach, each pays 3 to ac
    assert s[1]["payoffs"] == s[2]["payoffs"] == {"ac": 13.5, "ad": 14.5, "tft": 9.5}
    game = game_summary(recs)
    assert game["payoff_by_agent"] == {"ac": 38.5, "ad": 46.0, "tft": 30.5}
    assert (game["welfare"], game["social_optimum"]) == (115.0, 135.0)
    assert game["cooperation_by_round"] == [0.6667, 0.5, 0.5]
    assert (game["contract_breach_attempts"], game["transfers_total"]) == (5, 15.0)
    assert (game["mediator_proposals"], game["mediator_ignored"]) == (9, 5)
    assert summary["failures"] == {"contract_breach_attempt": 5, "mediator_ignored": 5}
    ignored = failures(recs, "mediator_ignored")
    assert all(len(f["evidence"]) == 2 and f["agents"][1] == "mo" for f in ignored)


def test_game_summary_report_section_and_plot_come_from_the_journal(tmp_path: Path) -> None:
    toml = (
        agents({"a": 'strategy = "always_cooperate"', "b": 'strategy = "tit_for_tat"'})
        + '[environment]\nkind = "matrix_game"\nrounds = 4\n'
        + PD
    )
    summary, recs, folder = run_game(tmp_path, toml)
    game = game_summary(recs)
    assert game["cooperation_by_round"] == [1.0] * 4 and game["efficiency"] == 1.0
    assert game["payoff_spread"] == 0.0 and game["full_cooperation_rounds"] == 4
    assert summary["accuracy"] == 1.0  # a round is "correct" when everyone cooperated
    text = "\n".join(game_markdown(game))
    assert (
        "## Game (matrix_game, 4 rounds)" in text
        and "| welfare / social optimum | 24 / 24 (1.000) |" in text
    )
    png = write_cooperation_plot(game, folder / "cooperation.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert game_summary([r for r in recs if r["event"] != "phase"]) == {}


TABLE = st.dictionaries(
    st.sampled_from(["A", "B", "C"]), st.none(), min_size=2, max_size=3
).flatmap(
    lambda acts: st.fixed_dictionaries(
        {
            a: st.fixed_dictionaries(
                {b: st.lists(st.integers(-5, 9), min_size=2, max_size=2) for b in acts}
            )
            for a in acts
        }
    )
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    table=TABLE,
    strategies=st.lists(st.sampled_from(STRATEGIES), min_size=2, max_size=4),
    rounds=st.integers(1, 4),
    matching=st.sampled_from(["round_robin", "random"]),
    transfer=st.one_of(st.none(), st.integers(1, 4)),
    talk=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_payoffs_sum_to_the_table_entries_played_and_transfers_net_to_zero(
    table: dict[str, dict[str, list[int]]],
    strategies: list[str],
    rounds: int,
    matching: str,
    transfer: int | None,
    talk: bool,
    seed: int,
) -> None:
    names = [f"p{i}" for i in range(len(strategies))]
    toml = f"[run]\nseed = {seed}\n" + agents(
        {
            n: f'strategy = "{s}", talk = "{"promise" if i % 2 else "honest"}"'
            for i, (n, s) in enumerate(zip(names, strategies, strict=True))
        }
    )
    toml += f'[environment]\nkind = "matrix_game"\nrounds = {rounds}\nmatching = "{matching}"\n'
    toml += 'observation = ["own", "partner"]\n[environment.payoffs]\n'
    toml += "".join(
        f"{a} = {{ {', '.join(f'{b} = {v}' for b, v in row.items())} }}\n"
        for a, row in table.items()
    )
    if transfer is not None:
        toml += f"[environment.contracts]\ntransfer = {transfer}\n"
    if talk:
        toml += '[environment.communication]\nkind = "cheap_talk"\n'
    with tempfile.TemporaryDirectory() as tmp:
        summary, recs, _ = run_game(Path(tmp), toml)
    played = settles(recs)
    assert [s["round"] for s in played] == list(range(1, rounds + 1))
    entries = 0
    for s in played:
        for row, col in s["groups"]:
            entries += sum(table[s["moves"][row]][s["moves"][col]])
        assert abs(sum(s["transfers"].values())) < 1e-9
        if transfer is None:
            assert s["transfers"] == {}
    total = sum(sum(s["payoffs"].values()) for s in played)
    assert total == entries
    game = game_summary(recs)
    assert game["welfare"] == entries == sum(game["payoff_by_agent"].values())
    assert summary["tasks_done"] == rounds and "invalid_action" not in summary["failures"]
