"""The scenario schema (TOML → msgspec Structs) and its one-line error messages.

Every mistake in a scenario file becomes a ``ScenarioError`` whose text names the field path,
the rule, the value and ``file:line``, e.g.
``agents.critic.max_tokens must be >= 1, got -5 (scenarios/debate.toml:14)``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from agentsim.chat import Sampling
from agentsim.engines import ENGINE_NAMES
from agentsim.engines.base import EngineConfig

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]


class _Table(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    pass


class RunSpec(_Table, frozen=True):
    name: Name = "run"
    seed: int = 0
    out: str = "runs"
    transport: Literal["ipc", "tcp"] = "ipc"
    bind: str = ""
    server_key: str = ""
    allowed_keys: list[str] = msgspec.field(default_factory=list)
    insecure: bool = False
    heartbeat_s: PositiveFloat = 1.0
    heartbeat_misses: PositiveInt = 10
    ready_timeout_s: PositiveFloat = 600.0
    shutdown_timeout_s: PositiveFloat = 5.0
    stats_s: PositiveFloat = 5.0
    python_sandbox: Literal["os", "weak"] = "os"  # "weak": opt in to the audit-hook sandbox


class TasksSpec(_Table, frozen=True):
    suite: str = "gsm8k"
    limit: NonNegInt = 0
    shuffle: bool = False
    offset: NonNegInt = 0


class SamplingSpec(_Table, frozen=True):
    temperature: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    top_p: Annotated[float, msgspec.Meta(gt=0, le=1)] = 1.0
    top_k: NonNegInt = 0
    repetition_penalty: PositiveFloat = 1.0
    stop: list[str] = msgspec.field(default_factory=list)


class AgentSpec(_Table, frozen=True):
    engine: str = "mlc"
    model: str = "smollm2-135m-instruct"
    role: str = ""
    system: str = ""
    max_tokens: PositiveInt = 256
    sampling: SamplingSpec = msgspec.field(default_factory=SamplingSpec)
    tools: list[str] = msgspec.field(default_factory=list)
    threads: NonNegInt = 0
    constrained: bool = False
    remote: bool = False
    options: dict[str, Any] = msgspec.field(default_factory=dict)


class ProtocolSpec(_Table, frozen=True):
    kind: str = "solo"
    agents: list[str] = msgspec.field(default_factory=list)
    rounds: PositiveInt = 2
    max_steps: PositiveInt = 6
    deadline_s: PositiveFloat = 120.0
    task_timeout_s: PositiveFloat = 600.0
    budget_tokens: NonNegInt = 0
    options: dict[str, Any] = msgspec.field(default_factory=dict)


class Scenario(_Table, frozen=True):
    run: RunSpec = msgspec.field(default_factory=RunSpec)
    tasks: TasksSpec = msgspec.field(default_factory=TasksSpec)
    agents: dict[Name, AgentSpec] = msgspec.field(default_factory=dict)
    protocol: ProtocolSpec = msgspec.field(default_factory=ProtocolSpec)
    faults: dict[str, Any] = msgspec.field(default_factory=dict)
    environment: dict[str, Any] = msgspec.field(default_factory=dict)
    sweep: dict[str, Any] = msgspec.field(default_factory=dict)

    def engine_config(self, name: str, seed: int) -> EngineConfig:
        spec = self.agents[name]
        return EngineConfig(
            engine=spec.engine,
            model=spec.model,
            threads=spec.threads,
            constrained=spec.constrained,
            seed=seed,
            options=dict(spec.options),
        )

    def sampling(self, name: str, seed: int) -> Sampling:
        spec = self.agents[name]
        s = spec.sampling
        return Sampling(
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            repetition_penalty=s.repetition_penalty,
            seed=seed,
            max_tokens=spec.max_tokens,
            stop=list(s.stop),
        )

    def protocol_agents(self) -> list[str]:
        return list(self.protocol.agents) or list(self.agents)


class ScenarioError(ValueError):
    """A mistake in a scenario file; ``str()`` is the one line the user sees."""


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
            if not re.match(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", name):
                raise ScenarioError(
                    f"agents.{name} is not a valid agent name (letters, digits, _ and -, starting with a letter), "
                    f"got {name!r} ({where_line(text, ['agents', name], where)})"
                )
            try:
                msgspec.convert(table, AgentSpec)
            except msgspec.ValidationError as e:
                raise ScenarioError(
                    _explain(str(e), raw, text, where, prefix=["agents", name])
                ) from None
    try:
        scenario = msgspec.convert(raw, Scenario)
    except msgspec.ValidationError as e:
        raise ScenarioError(_explain(str(e), raw, text, where)) from None
    _cross_check(scenario, raw, text, where, base_dir or Path.cwd())
    return scenario


_PATH_RE = re.compile(r" - at `\$(.*)`$")


def _split_path(p: str) -> list[str]:
    parts: list[str] = []
    for m in re.finditer(r"\.([^.\[]+)|\[(\d+)\]|\[\"?([^\]\"]+)\"?\]", p):
        parts.append(m.group(1) or m.group(2) or m.group(3))
    return parts


def _lookup(raw: Any, parts: list[str]) -> tuple[bool, Any]:
    cur = raw
    for part in parts:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return False, None
    return True, cur


def _explain(
    message: str, raw: dict[str, Any], text: str, where: str, prefix: list[str] | None = None
) -> str:
    m = _PATH_RE.search(message)
    parts = [*(prefix or []), *(_split_path(m.group(1)) if m else [])]
    rule = message[: m.start()] if m else message
    unknown = re.match(r"Object contains unknown field `([^`]+)`", rule)
    if unknown:
        parts = [*parts, unknown.group(1)]
        field = ".".join(parts)
        return f"{field} is not a known key ({where_line(text, parts, where)})"
    missing = re.match(r"Object missing required field `([^`]+)`", rule)
    if missing:
        field = ".".join([*parts, missing.group(1)])
        return f"{field} is required ({where_line(text, parts, where)})"
    found, value = _lookup(raw, parts)
    field = ".".join(parts) or "scenario"
    rule = _reword(rule)
    got = f", got {_show(value)}" if found else ""
    return f"{field} {rule}{got} ({where_line(text, parts, where)})"


def _reword(rule: str) -> str:
    """msgspec's ``Expected `int` >= 1`` → ``must be an int >= 1``."""
    rule = re.sub(r", got `[^`]+`$", "", rule)
    m = re.match(r"Expected `([^`]+)`(.*)$", rule)
    if m:
        typ, rest = m.group(1), m.group(2).strip()
        if rest:
            if "length" in rest or "matching" in rest:
                return f"must be a {typ} {rest}"
            return f"must be {rest}" if typ in ("int", "float") else f"must be a {typ} {rest}"
        return f"must be of type {typ}"
    return rule[0].lower() + rule[1:] if rule else "is invalid"


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, str):
        return repr(value)
    return str(value).lower() if isinstance(value, bool) else repr(value)


def where_line(text: str, parts: list[str], where: str) -> str:
    """``file:line`` of the key named by ``parts`` (best effort, falls back to the file)."""
    line = _find_line(text, parts)
    return f"{where}:{line}" if line else where


def _find_line(text: str, parts: list[str]) -> int:
    keys = [p for p in parts if not p.isdigit()]
    if not keys:
        return 0
    table: list[str] = []
    best = 0
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s.startswith("["):
            header = s.strip("[]").strip()
            table = [h.strip().strip("\"'") for h in header.split(".")]
            if table == keys:
                return n
            if keys[: len(table)] == table and not best:
                best = n
            continue
        m = re.match(r"^([A-Za-z0-9_.\"'-]+)\s*=", s)
        if not m:
            continue
        key = [k.strip().strip("\"'") for k in m.group(1).split(".")]
        full = table + key
        if full == keys[: len(full)] and len(full) >= 1:
            if full == keys:
                return n
            best = n
    return best


def _loopback(endpoint: str) -> bool:
    host = endpoint.removeprefix("tcp://").rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _cross_check(
    scenario: Scenario, raw: dict[str, Any], text: str, where: str, base: Path
) -> None:
    def fail(parts: list[str], rule: str, value: Any) -> None:
        field = ".".join(parts)
        raise ScenarioError(
            f"{field} {rule}, got {_show(value)} ({where_line(text, parts, where)})"
        )

    if not scenario.agents:
        raise ScenarioError(f"agents must declare at least one agent ({where})")
    run = scenario.run
    if run.bind and not run.bind.startswith(("ipc://", "tcp://", "inproc://")):
        fail(["run", "bind"], "must be an ipc:// or tcp:// endpoint", run.bind)
    if (
        run.bind.startswith("tcp://")
        and not _loopback(run.bind)
        and not run.server_key
        and not run.insecure
    ):
        fail(
            ["run", "bind"],
            "is not a loopback address, so it needs CURVE keys (run.server_key, run.allowed_keys) "
            "or an explicit insecure = true",
            run.bind,
        )
    for i, key in enumerate(run.allowed_keys):
        if not (base / key).exists() and not Path(key).exists():
            fail(["run", "allowed_keys", str(i)], "must name an existing .key file or folder", key)
    if (
        run.server_key
        and not (base / run.server_key).exists()
        and not Path(run.server_key).exists()
    ):
        fail(["run", "server_key"], "must name an existing .key_secret file", run.server_key)
    for name, spec in scenario.agents.items():
        if spec.engine not in ENGINE_NAMES:
            fail(
                ["agents", name, "engine"], f"must be one of {', '.join(ENGINE_NAMES)}", spec.engine
            )
        if (
            spec.model.endswith(".gguf")
            and not (base / spec.model).exists()
            and not Path(spec.model).exists()
        ):
            fail(["agents", name, "model"], "must name an existing .gguf file", spec.model)
    for i, agent in enumerate(scenario.protocol.agents):
        if agent not in scenario.agents:
            fail(
                ["protocol", "agents", str(i)], "must name an agent declared under [agents]", agent
            )
    from agentsim.protocols import PROTOCOLS

    kind = scenario.protocol.kind
    if kind not in PROTOCOLS and ":" not in kind and not scenario.environment:
        fail(["protocol", "kind"], f"must be one of {', '.join(sorted(PROTOCOLS))}", kind)

    def placed(error: ValueError) -> ScenarioError:
        """A ``"field rule"`` message from a sub-parser, with the value and file:line added."""
        field, _, rule = str(error).partition(" ")
        parts = _split_path("." + field)
        found, value = _lookup(raw, parts)
        got = f", got {_show(value)}" if found and "got" not in rule else ""
        return ScenarioError(f"{field} {rule}{got} ({where_line(text, parts, where)})")

    if scenario.faults:
        from agentsim.bus.faults_seeded import FaultConfigError, parse_faults

        try:
            parse_faults(scenario.faults, list(scenario.agents))
        except FaultConfigError as e:
            raise placed(e) from None
    if scenario.environment:
        from agentsim.environments import EnvironmentConfigError, parse_environment

        try:
            parse_environment(scenario.environment, list(scenario.agents))
        except EnvironmentConfigError as e:
            raise placed(e) from None
        return
    from agentsim.tasks import BUILTIN_SUITES

    suite = scenario.tasks.suite
    if suite not in BUILTIN_SUITES:
        path = Path(suite) if Path(suite).is_absolute() else base / suite
        if not path.exists() and not Path(suite).exists():
            fail(
                ["tasks", "suite"],
                f"must be a built-in suite ({', '.join(sorted(BUILTIN_SUITES))}) or an existing .jsonl file",
                suite,
            )
