"""``agentsim validate`` on mutated shipped scenarios: exit 0 or one line and exit 2, never a
traceback — and a file that validates also starts (its agents become ready) and runs.

Hypothesis takes each shipped scenario, changes one thing (a value replaced by a hostile one:
a 65-bit integer, NaN, a negative, a string for a number, a table for a string..., a key
deleted, an unknown key added, an agent renamed) and writes the file back as TOML.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentsim.cli.main import main as cli
from agentsim.run.explore import quiet_logs
from agentsim.run.simulate import simulate
from agentsim.scenario.validate import load_scenario

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "scenarios").glob("*.toml"))
HOSTILE: list[Any] = [
    2**64,
    -(2**63) - 1,
    -1,
    0,
    7,
    10**12,
    1e308,
    math.inf,
    -math.inf,
    math.nan,
    0.5,
    "",
    "zz",
    "x" * 300,
    "../../etc/passwd",
    True,
    [],
    [1, "a"],
    ["zz"],
    {},
    {"zz": 1},
]


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    assert isinstance(v, dict)
    return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"


def toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def to_toml(table: dict[str, Any], path: tuple[str, ...] = ()) -> str:
    """Tables as headers, everything below them inline (enough for scenario files)."""
    lines = [f"[{'.'.join(toml_key(p) for p in path)}]"] if path else []
    subtables = []
    for k, v in table.items():
        if (
            isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()) and path
        ) or (isinstance(v, dict) and not path):
            subtables.append((k, v))
        else:
            lines.append(f"{toml_key(k)} = {toml_value(v)}")
    out = "\n".join(lines) + "\n"
    for k, v in subtables:
        out += "\n" + to_toml(v, (*path, k))
    return out


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths(v, (*prefix, i))
    return found


def mutate(raw: dict[str, Any], path: tuple[Any, ...], action: str, new: Any) -> None:
    parent: Any = raw
    for p in path[:-1]:
        parent = parent[p]
    key = path[-1]
    if action == "replace":
        parent[key] = new
    elif action == "delete":
        del parent[key]
    elif action == "unknown" and isinstance(parent[key], dict):
        parent[key]["zz_unknown"] = new
    elif action == "rename" and isinstance(parent, dict):
        parent["zz" if key != "zz" else "yy"] = parent.pop(key)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of scenarios/ (relative paths in the files keep pointing at their files)."""
    d = tmp_path_factory.mktemp("fuzz") / "scenarios"
    shutil.copytree(REPO / "scenarios", d)
    return d


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str]:
    source = draw(st.sampled_from(SHIPPED))
    raw = tomllib.loads(source.read_text())
    path = draw(st.sampled_from(paths(raw)))
    action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "unknown", "rename"]))
    new = draw(st.sampled_from(HOSTILE))
    mutate(raw, path, action, new)
    return source.name, to_toml(raw)


def validate(path: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli(["validate", str(path)])
    return code, err.getvalue()


def test_the_writer_round_trips_every_shipped_scenario() -> None:
    for f in SHIPPED:
        raw = tomllib.loads(f.read_text())
        assert tomllib.loads(to_toml(raw)) == raw, f


@pytest.mark.slow
@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(mutated())
def test_validate_gives_ok_or_one_line_never_a_traceback(
    workdir: Path, case: tuple[str, str]
) -> None:
    name, text = case
    f = workdir / f"fuzz-{name}"
    f.write_text(text)
    code, err = validate(f)  # any exception escaping here fails the test
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith("agentsim: error: ") and err.endswith("\n"), err
        assert err.count("\n") == 1, err
        assert "Traceback" not in err


def _scripted(scenario: Any) -> bool:
    return all(a.engine == "scripted" for a in scenario.agents.values())


@pytest.mark.slow
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(mutated())
def test_a_scripted_scenario_that_validates_also_runs(workdir: Path, case: tuple[str, str]) -> None:
    """What validate lets through must not fail at start-up ("never became ready")."""
    name, text = case
    f = workdir / f"fuzz-{name}"
    f.write_text(text)
    if validate(f)[0] != 0:
        return
    scenario = load_scenario(f)
    if not _scripted(scenario) or scenario.sweep:
        return
    scenario = msgspec.structs.replace(
        scenario, tasks=msgspec.structs.replace(scenario.tasks, limit=1), faults={}
    )
    out = workdir / "fuzz-runs"

    async def main() -> None:
        made = await simulate(scenario, out, base_dir=workdir)
        ready = [r for r in made.runner.roster.states.values() if r.ready is not None]
        assert len(ready) == len(made.runner.roster.states)

    try:
        with quiet_logs():
            trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.mark.slow
def test_every_value_of_every_shipped_scenario_replaced_gives_ok_or_one_line(
    workdir: Path,
) -> None:
    """Systematic: each leaf of each shipped file, in turn, gets the next hostile value."""
    n = 0
    for source in SHIPPED:
        raw = tomllib.loads(source.read_text())
        for i, path in enumerate(paths(raw)):
            mutated_raw = tomllib.loads(source.read_text())
            mutate(mutated_raw, path, "replace", HOSTILE[(i + n) % len(HOSTILE)])
            f = workdir / f"sys-{source.name}"
            f.write_text(to_toml(mutated_raw))
            code, err = validate(f)
            assert code in (0, 2), (path, err)
            assert code == 0 or err.count("\n") == 1, (path, err)
            n += 1
    assert n > 100
