"""The scenario schema: what a scenario TOML file may hold, as frozen msgspec Structs.

It imports nothing of the runtime (no engines, protocols, buses), so any layer may read a
``Scenario``; the checks that need the runtime live in ``agentsim.scenario.validate``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]


class _Table(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    pass


class RunSpec(_Table, frozen=True):
    name: Name = "run"
    seed: int = 0
    out: str = "runs"
    transport: Literal["ipc", "tcp"] = "ipc"
    #: how agents start: ``forkserver`` forks each from one pre-imported server on this host
    #: (Linux; elsewhere ``local`` is used), ``local`` runs ``python -m agentsim agent`` per
    #: agent, ``ray`` places each agent on a Ray cluster (``[agents.X.resources]``,
    #: ``placement``).
    launcher: Literal["local", "forkserver", "ray"] = "forkserver"
    #: the Ray cluster (launcher = "ray"): ``auto`` (the running one: RAY_ADDRESS or the one
    #: started on this host), ``HOST:PORT`` / ``ray://HOST:PORT``, or ``local`` (start one).
    ray_address: str = "auto"
    #: a placement group over the agents' bundles: pack onto few nodes or spread over many.
    placement: Literal["", "pack", "spread", "strict_pack", "strict_spread"] = ""
    #: the model cache on each Ray node (``~`` is that node's home); default: the node's own
    #: ``AGENTSIM_CACHE`` or user cache. Never the runner's path unless named here.
    ray_cache: str = ""
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
    examples: NonNegInt = 0


class SamplingSpec(_Table, frozen=True):
    temperature: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    top_p: Annotated[float, msgspec.Meta(gt=0, le=1)] = 1.0
    top_k: NonNegInt = 0
    repetition_penalty: PositiveFloat = 1.0
    stop: list[str] = msgspec.field(default_factory=list)


class ResourcesSpec(_Table, frozen=True):
    """What an agent asks of the Ray cluster (``launcher = "ray"``; other launchers ignore it).

    ``memory`` is bytes or a string with a unit (``"512MiB"``, ``"2GB"``); ``custom`` names
    custom node resources (``{ node_a = 1 }``); ``labels`` must match the node's labels.
    """

    num_cpus: NonNegFloat = 1.0
    num_gpus: NonNegFloat = 0.0
    memory: Annotated[int, msgspec.Meta(ge=0)] | str = 0
    custom: dict[str, NonNegFloat] = msgspec.field(default_factory=dict)
    labels: dict[str, str] = msgspec.field(default_factory=dict)


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
    resources: ResourcesSpec = msgspec.field(default_factory=ResourcesSpec)


class ProtocolSpec(_Table, frozen=True):
    kind: str = "solo"
    agents: list[str] = msgspec.field(default_factory=list)
    rounds: PositiveInt = 2
    max_steps: PositiveInt = 6
    deadline_s: PositiveFloat = 120.0
    task_timeout_s: PositiveFloat = 600.0
    budget_tokens: NonNegInt = 0
    prompt_style: Literal["default", "seed"] = "default"
    options: dict[str, Any] = msgspec.field(default_factory=dict)


class Scenario(_Table, frozen=True):
    run: RunSpec = msgspec.field(default_factory=RunSpec)
    tasks: TasksSpec = msgspec.field(default_factory=TasksSpec)
    agents: dict[Name, AgentSpec] = msgspec.field(default_factory=dict)
    protocol: ProtocolSpec = msgspec.field(default_factory=ProtocolSpec)
    faults: dict[str, Any] = msgspec.field(default_factory=dict)
    environment: dict[str, Any] = msgspec.field(default_factory=dict)
    sweep: dict[str, Any] = msgspec.field(default_factory=dict)

    def protocol_agents(self) -> list[str]:
        """Agents the protocol uses: ``protocol.agents``, else every declared agent."""
        return list(self.protocol.agents) or list(self.agents)

    def agent_seed(self, name: str) -> int:
        """The seed of one agent: derived from ``run.seed`` and its place in ``[agents]``."""
        return (self.run.seed * 1_000_003 + _place(self.agents, name)) % (2**31)


#: id of an ``[agents]`` table -> (that table, name -> place): the seed of every ask needs
#: the place, and a list search per ask grows with the fleet (the table is kept alive here,
#: so its id cannot be reused while it is cached).
_PLACES: dict[int, tuple[dict[str, Any], dict[str, int]]] = {}


def _place(agents: dict[str, Any], name: str) -> int:
    hit = _PLACES.get(id(agents))
    if hit is None or hit[0] is not agents:
        if len(_PLACES) >= 64:
            _PLACES.clear()
        hit = _PLACES[id(agents)] = (agents, {n: i for i, n in enumerate(agents)})
    try:
        return hit[1][name]
    except KeyError:
        raise ValueError(f"{name!r} is not an agent of this scenario") from None
