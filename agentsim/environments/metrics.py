"""Game metrics from the journal alone, their report section, and the cooperation plot.

``game_summary`` reads the ``phase`` events whose phase is ``settle`` (one per played round,
written by the environment) and returns ``{}`` for a run without a game, so it can be called
for every run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

GAME_PROTOCOLS = ("matrix_game", "public_goods")


def _r(x: float, nd: int = 4) -> float:
    return round(x, nd)


def _rate(k: int, n: int) -> float | None:
    return _r(k / n) if n else None


def game_summary(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Cooperation, welfare, payoffs, promises, contracts and mediator metrics of a game run."""
    rounds: list[dict[str, Any]] = []
    config: dict[str, Any] = {}
    kind = ""
    for rec in records:
        if rec.get("event") != "phase" or rec.get("protocol") not in GAME_PROTOCOLS:
            continue
        kind = str(rec["protocol"])
        if rec.get("phase") == "match" and "config" in rec:
            config = rec["config"]
        elif rec.get("phase") == "settle":
            rounds.append(rec)
    if not rounds:
        return {}
    rounds.sort(key=lambda rec: int(rec["round"]))
    payoff: dict[str, float] = {}
    coop_agent: dict[str, list[float]] = {}
    for rec in rounds:
        for p, v in rec["payoffs"].items():
            payoff[p] = payoff.get(p, 0.0) + float(v)
        for p, c in rec["cooperation_by_agent"].items():
            coop_agent.setdefault(p, []).append(float(c))
    welfare = sum(float(rec["welfare"]) for rec in rounds)
    optimum = sum(float(rec["optimum"]) for rec in rounds)
    moves = sum(len(rec["moves"]) for rec in rounds)
    coop_all = sum(sum(v) for v in coop_agent.values())
    values = list(payoff.values())
    mean = sum(values) / len(values)
    promises = sum(len(rec.get("promises", {})) for rec in rounds)
    broken = sum(len(rec.get("promises_broken", [])) for rec in rounds)
    contracts = [c for rec in rounds for c in rec.get("contracts", [])]
    advised = sum(len(rec.get("advice", {})) for rec in rounds)
    ignored = sum(len(rec.get("mediator_ignored", [])) for rec in rounds)
    moved = sum(abs(float(v)) for rec in rounds for v in rec.get("transfers", {}).values()) / 2
    return {
        "kind": kind,
        "rounds_played": len(rounds),
        "players": sorted(payoff),
        "cooperation": _r(coop_all / moves) if moves else 0.0,
        "cooperation_by_round": [_r(float(rec["cooperation"])) for rec in rounds],
        "cooperation_by_agent": {p: _r(sum(v) / len(v)) for p, v in sorted(coop_agent.items())},
        "full_cooperation_rounds": sum(
            1 for rec in rounds if float(rec["cooperation"]) >= 1 - 1e-9
        ),
        "welfare": _r(welfare, 6),
        "social_optimum": _r(optimum, 6),
        "efficiency": _r(welfare / optimum) if optimum > 0 else None,
        "welfare_by_round": [_r(float(rec["welfare"]), 6) for rec in rounds],
        "optimum_by_round": [_r(float(rec["optimum"]), 6) for rec in rounds],
        "payoff_by_agent": {p: _r(v, 6) for p, v in sorted(payoff.items())},
        "payoff_mean": _r(mean, 6),
        "payoff_min": _r(min(values), 6),
        "payoff_max": _r(max(values), 6),
        "payoff_spread": _r(max(values) - min(values), 6),
        "payoff_stdev": _r(math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)), 6),
        "invalid_actions": sum(len(rec.get("invalid", [])) for rec in rounds),
        "promises": promises,
        "promises_broken": broken,
        "broken_promise_rate": _rate(broken, promises),
        "contracts_offered": len(contracts),
        "contracts_bound": sum(1 for c in contracts if c.get("bound")),
        "contract_breach_attempts": sum(len(rec.get("breaches", [])) for rec in rounds),
        "transfers_total": _r(moved, 6),
        "mediator_proposals": advised,
        "mediator_ignored": ignored,
        "mediator_follow_rate": _rate(advised - ignored, advised),
        "config": config,
    }


def game_markdown(game: dict[str, Any]) -> list[str]:
    """The ``## Game`` section of ``report.md`` (no lines for a run without a game)."""
    if not game:
        return []
    eff = game["efficiency"]
    bpr = game["broken_promise_rate"]
    lines = [
        "",
        f"## Game ({game['kind']}, {game['rounds_played']} rounds)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| cooperation | {game['cooperation']:.3f} |",
        f"| rounds of full cooperation | {game['full_cooperation_rounds']} |",
        f"| welfare / social optimum | {game['welfare']:g} / {game['social_optimum']:g}"
        f" ({'n/a' if eff is None else f'{eff:.3f}'}) |",
        f"| payoff mean (min–max, spread) | {game['payoff_mean']:g} ({game['payoff_min']:g}–"
        f"{game['payoff_max']:g}, {game['payoff_spread']:g}) |",
        f"| promises broken | {game['promises_broken']} of {game['promises']}"
        f" ({'n/a' if bpr is None else f'{bpr:.3f}'}) |",
        f"| invalid actions | {game['invalid_actions']} |",
    ]
    if game["contracts_offered"]:
        lines.append(
            f"| contracts bound / offered | {game['contracts_bound']} / {game['contracts_offered']} |"
        )
        lines.append(
            f"| breach attempts (transfers) | {game['contract_breach_attempts']} ({game['transfers_total']:g}) |"
        )
    if game["mediator_proposals"]:
        lines.append(
            f"| mediator ignored | {game['mediator_ignored']} of {game['mediator_proposals']} |"
        )
    lines += ["", "| round | cooperation | welfare |", "|---|---|---|"]
    for i, (c, w) in enumerate(
        zip(game["cooperation_by_round"], game["welfare_by_round"], strict=True), 1
    ):
        lines.append(f"| {i} | {c:.3f} | {w:g} |")
    lines += ["", "| agent | payoff | cooperation |", "|---|---|---|"]
    for p, v in game["payoff_by_agent"].items():
        lines.append(f"| {p} | {v:g} | {game['cooperation_by_agent'].get(p, 0.0):.3f} |")
    return lines


def write_cooperation_plot(game: dict[str, Any], path: Path) -> Path | None:
    """Cooperation (and welfare as a share of the optimum) per round, as a PNG at ``path``."""
    if not game:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs = list(range(1, game["rounds_played"] + 1))
    fig = Figure(figsize=(6.0, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(xs, game["cooperation_by_round"], marker="o", label="cooperation")
    pairs = zip(game["welfare_by_round"], game["optimum_by_round"], strict=True)
    shares = [float(w) / float(o) for w, o in pairs if float(o) > 0]
    if len(shares) == len(xs):
        ax.plot(xs, shares, linestyle="--", label="welfare / optimum")
    ax.set_xlabel("round")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"{game['kind']}: cooperation over rounds")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(str(path), format="png")
    return path
