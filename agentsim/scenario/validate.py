"""Reading a scenario file: TOML → ``Scenario``, then the checks that consult the runtime.

Decoding reports every bad field with its path (``agentsim.scenario.errors``); the
cross-checks then ask the parts that own a rule — engine names, protocols, the fault table,
environments, task suites, key files — so that ``agentsim validate`` finds what can be known
before a run starts.
"""

from __future__ import annotations

import importlib.util
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from agentsim.bus.faults_spec import FaultConfigError, parse_faults
from agentsim.environments import EnvironmentConfigError, parse_environment
from agentsim.protocols import PROTOCOLS
from agentsim.scenario.agents import check_agent, exists
from agentsim.scenario.errors import ScenarioError, explain, placed, show, where_line
from agentsim.scenario.resources import problems, quantities
from agentsim.scenario.schema import NAME_PATTERN, AgentSpec, Scenario
from agentsim.tasks import BUILTIN_SUITES


def load_scenario(path: str | Path) -> Scenario:
    """Read, decode and cross-check a scenario file. Raises ``ScenarioError``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"scenario file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"scenario file {p} cannot be read: {e}") from None
    return parse_scenario(text, str(p), base_dir=p.parent)


def parse_scenario(text: str, where: str, *, base_dir: Path | None = None) -> Scenario:
    """Decode and cross-check scenario TOML text (``where`` names it in errors)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"TOML syntax error: {e} ({where})") from None
    return scenario_from_raw(raw, text, where, base_dir=base_dir)


def scenario_from_raw(
    raw: dict[str, Any], text: str, where: str, *, base_dir: Path | None = None
) -> Scenario:
    """Decode and cross-check an already parsed scenario table (``text`` locates lines)."""
    agents = raw.get("agents")
    if isinstance(agents, dict):
        for name, table in agents.items():
            if not re.match(NAME_PATTERN, name):
                raise ScenarioError(
                    f"agents.{name} is not a valid agent name (letters, digits, _ and -, starting with a letter), "
                    f"got {name!r} ({where_line(text, ['agents', name], where)})"
                )
            try:
                msgspec.convert(table, AgentSpec)
            except msgspec.ValidationError as e:
                raise ScenarioError(
                    explain(str(e), raw, text, where, prefix=["agents", name])
                ) from None
    try:
        scenario = msgspec.convert(raw, Scenario)
    except msgspec.ValidationError as e:
        raise ScenarioError(explain(str(e), raw, text, where)) from None
    _check_numbers(raw, [], text, where)
    _cross_check(scenario, raw, text, where, base_dir or Path.cwd())
    return scenario


INT64 = (-(2**63), 2**63 - 1)


def _check_numbers(value: Any, parts: list[str], text: str, where: str) -> None:
    """Every integer fits in 64 bits (the wire and the journal carry no more) and no float
    is NaN, wherever it is in the file — before any field's own rule looks at it."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_numbers(v, [*parts, str(k)], text, where)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_numbers(v, [*parts, str(i)], text, where)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
        field = ".".join(parts) or "scenario"
        raise ScenarioError(
            f"{field} must fit in a signed 64-bit integer ({INT64[0]}..{INT64[1]}), got "
            f"{value} ({where_line(text, parts, where)})"
        )
    elif isinstance(value, float) and math.isnan(value):
        field = ".".join(parts) or "scenario"
        raise ScenarioError(f"{field} must be a number, got nan ({where_line(text, parts, where)})")


def _loopback(endpoint: str) -> bool:
    host = endpoint.removeprefix("tcp://").rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _cross_check(
    scenario: Scenario, raw: dict[str, Any], text: str, where: str, base: Path
) -> None:
    def fail(parts: list[str], rule: str, value: Any) -> None:
        field = ".".join(parts)
        raise ScenarioError(f"{field} {rule}, got {show(value)} ({where_line(text, parts, where)})")

    if not scenario.agents:
        raise ScenarioError(f"agents must declare at least one agent ({where})")
    run = scenario.run
    if run.bind and not run.bind.startswith(("ipc://", "tcp://", "inproc://")):
        fail(["run", "bind"], "must be an ipc:// or tcp:// endpoint", run.bind)
    if run.launcher == "ray":
        _check_ray(scenario, raw, fail)
    if (
        run.bind.startswith("tcp://")
        and not _loopback(run.bind)
        and not run.server_key
        and not run.insecure
        and run.launcher != "ray"  # a Ray run makes its own CURVE keys, one pair per agent
    ):
        fail(
            ["run", "bind"],
            "is not a loopback address, so it needs CURVE keys (run.server_key, run.allowed_keys) "
            "or an explicit insecure = true",
            run.bind,
        )
    for i, key in enumerate(run.allowed_keys):
        if not exists(base / key, Path(key)):
            fail(["run", "allowed_keys", str(i)], "must name an existing .key file or folder", key)
    if run.server_key and not exists(base / run.server_key, Path(run.server_key)):
        fail(["run", "server_key"], "must name an existing .key_secret file", run.server_key)
    for name, spec in scenario.agents.items():
        check_agent(name, spec, raw, text, where, base)
    for i, agent in enumerate(scenario.protocol.agents):
        if agent not in scenario.agents:
            fail(
                ["protocol", "agents", str(i)], "must name an agent declared under [agents]", agent
            )
        if scenario.protocol.agents.index(agent) != i:
            fail(["protocol", "agents", str(i)], "must not repeat an agent", agent)
    kind = scenario.protocol.kind
    if kind not in PROTOCOLS and ":" not in kind and not scenario.environment:
        fail(["protocol", "kind"], f"must be one of {', '.join(sorted(PROTOCOLS))}", kind)
    module = kind.partition(":")[0]
    if (
        kind not in PROTOCOLS
        and module.endswith(".py")
        and not scenario.environment
        and not exists(Path(module), base / module)
    ):
        fail(["protocol", "kind"], "must name an existing .py file (path:Class)", kind)
    if scenario.faults:
        started = scenario.protocol_agents() if not scenario.environment else list(scenario.agents)
        try:
            parse_faults(scenario.faults, started, declared=list(scenario.agents))
        except FaultConfigError as e:
            if not scenario.environment and scenario.protocol.agents:
                # name the rule that makes a declared agent "not started"
                e = FaultConfigError(
                    str(e).replace("a declared agent", "an agent the run starts (protocol.agents)")
                )
            raise placed(e, raw, text, where) from None
    if scenario.environment:
        try:
            parse_environment(scenario.environment, list(scenario.agents))
        except EnvironmentConfigError as e:
            raise placed(e, raw, text, where) from None
        return
    suite = scenario.tasks.suite
    if suite not in BUILTIN_SUITES:
        path = Path(suite) if Path(suite).is_absolute() else base / suite
        if not exists(path, Path(suite)):
            fail(
                ["tasks", "suite"],
                f"must be a built-in suite ({', '.join(sorted(BUILTIN_SUITES))}) or an existing .jsonl file",
                suite,
            )


def ray_installed() -> bool:
    """Whether ``import ray`` would find Ray (without importing it: that takes seconds)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # a ``ray`` entry of None in sys.modules: blocked
        return False


_RAY_ADDRESS = re.compile(r"^(auto|local|(ray://)?[A-Za-z0-9_.\[\]:-]+:[0-9]{1,5})$")


def _check_ray(scenario: Scenario, raw: dict[str, Any], fail: Any) -> None:
    """``launcher = "ray"``: Ray installed, a tcp bus, a cluster address, resources Ray accepts."""
    run = scenario.run
    if not ray_installed():
        fail(
            ["run", "launcher"],
            'needs Ray, which is not installed: pip install "agentsim[ray]"',
            run.launcher,
        )
    run_raw = raw.get("run", {})
    if run_raw.get("transport") == "ipc" or run.bind.startswith(("ipc://", "inproc://")):
        field = "bind" if run.bind else "transport"
        fail(
            ["run", field],
            "must be tcp with launcher = 'ray' (agents on other nodes connect over CURVE TCP)",
            run.bind or run.transport,
        )
    if not _RAY_ADDRESS.match(run.ray_address):
        fail(
            ["run", "ray_address"],
            "must be auto, local, HOST:PORT or ray://HOST:PORT",
            run.ray_address,
        )
    for name in scenario.protocol_agents() if not scenario.environment else scenario.agents:
        spec = scenario.agents[name]
        if spec.remote:
            continue
        for parts, rule, value in problems(spec.resources):
            fail(["agents", name, "resources", *parts], rule, value)
        if run.placement and not quantities(spec.resources):
            fail(
                ["agents", name, "resources"],
                f"must ask for some resource when run.placement = {run.placement!r} "
                "(a placement-group bundle cannot be empty)",
                msgspec.to_builtins(spec.resources),
            )
