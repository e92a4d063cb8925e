"""The Ray launcher: each agent placed on a node of a Ray cluster, its process started there.

``connect`` joins the cluster (``run.ray_address``), checks that every agent's resources fit
some live node (a clear error now instead of an agent that waits forever), and reserves the
placement group when ``run.placement`` asks for one. ``start`` creates one
``AgentSupervisor`` actor per agent with the agent's resources (or in its bundle); the actor
starts ``python -m agentsim agent`` on its node, which connects back to the runner's broker
over CURVE TCP with the key pair the runner made for that agent name. The handle streams the
agent's output into ``logs/NAME.log`` and turns a lost actor or node into an exit
(``LOST``) whose ``exit_detail`` says what Ray reported.

Ray is awaited from trio without threads or polling: an ``ObjectRef``'s future wakes the
trio task through its token.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
from pathlib import Path
from typing import IO, Any

import trio

from agentsim.run.errors import RunError, RunSetupError
from agentsim.run.launchers.base import AgentHandle, AgentLaunch
from agentsim.run.launchers.ray.placement import (
    STRATEGIES,
    actor_options,
    bundles,
    describe_need,
    describe_nodes,
    fitting_nodes,
    local_cluster,
)
from agentsim.run.launchers.ray.supervisor import AgentSupervisor
from agentsim.scenario.schema import Scenario

LOST = -1
"""Exit code of an agent whose actor Ray lost (its node died, or the actor was killed)."""

UNAVAILABLE_LIMIT_S = 60.0
"""How long an actor may be unreachable (``ActorUnavailableError``) before it counts as lost."""


async def resolved(ref: Any) -> Any:
    """The value of a Ray ``ObjectRef``, awaited in trio (raises what ``ray.get`` raises)."""
    future = ref.future()
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()

    def wake(_: object) -> None:
        # the run may have ended while Ray was still working: nobody is waiting then
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(done.set)

    future.add_done_callback(wake)
    await done.wait()
    return future.result()


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:400] or type(exc).__name__


class RayHandle:
    """One agent on a Ray node: its supervisor actor, the remote pid, where it runs."""

    def __init__(self, name: str, actor: Any, info: dict[str, Any], log: IO[bytes]) -> None:
        self.name = name
        self.actor = actor
        self.pid: int = int(info["pid"])
        self.node: dict[str, str] = {
            "node_id": str(info["node_id"]),
            "node_ip": str(info["node_ip"]),
            "node_host": str(info["host"]),
        }
        self.code: int | None = None
        self.exit_detail = ""
        self._log = log
        self._seq = 0
        self._stop_ref: Any = None

    def _note(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "agent": self.name, "launcher": "ray", **fields})
        self._log.write(line.encode() + b"\n")
        self._log.flush()

    async def wait(self) -> int:
        """Copy the agent's output into its log until it exits (or Ray loses it)."""
        import ray

        offset = 0
        unavailable_since: float | None = None
        try:
            while True:
                try:
                    data, code, at = await resolved(self.actor.next_log.remote(offset, 30.0))
                except ray.exceptions.ActorUnavailableError as e:
                    now = trio.current_time()
                    unavailable_since = unavailable_since or now
                    if now - unavailable_since < UNAVAILABLE_LIMIT_S:
                        await trio.sleep(0.5)
                        continue
                    return self._lost(e)
                except ray.exceptions.RayError as e:
                    return self._lost(e)
                unavailable_since = None
                if at > offset:
                    self._note("agent_log_dropped", bytes=at - offset)
                self._log.write(data)
                self._log.flush()
                offset = at + len(data)
                if code is not None:
                    self.code = int(code)
                    return self.code
        finally:
            if self.code is not None:
                self._log.close()

    def _lost(self, exc: BaseException) -> int:
        self.exit_detail = (
            f"Ray lost its actor on node {self.node['node_id'][:12]} "
            f"({self.node['node_ip']}): {type(exc).__name__}: {_first_line(exc)}"
        )
        self._note("agent_lost", node_id=self.node["node_id"], detail=self.exit_detail)
        self.code = LOST
        return LOST

    def _control(self, action: str, arg: float) -> Any:
        ref = self.actor.control.remote(self._seq, action, arg)
        self._seq += 1
        return ref

    def poll(self) -> int | None:
        if self.code is None and self._stop_ref is not None:
            import ray

            ready, _ = ray.wait([self._stop_ref], timeout=0)
            if ready:
                try:
                    code = ray.get(ready[0])
                except ray.exceptions.RayError:
                    code = LOST
                self.code = LOST if code is None else int(code)
        return self.code

    def terminate(self) -> None:
        if self.code is None and self._stop_ref is None:
            self._stop_ref = self._control("stop", 1.5)

    def kill(self) -> None:
        """Kill the supervisor: the agent dies with it (PDEATHSIG), paused or not."""
        if self.code is None:
            import ray

            ray.kill(self.actor, no_restart=True)
            self.code = -int(signal.SIGKILL)

    def pause(self) -> None:
        if self.code is None:
            self._control("signal", float(signal.SIGSTOP))

    def resume(self) -> None:
        if self.code is None:
            self._control("signal", float(signal.SIGCONT))


class RayLauncher:
    """Places the run's agents on a Ray cluster (see the module docstring)."""

    def __init__(self, scenario: Scenario, log_dir: Path, agents: list[str]) -> None:
        self.scenario = scenario
        self.log_dir = log_dir
        self.agents = [a for a in agents if not scenario.agents[a].remote]
        self.handles: dict[str, RayHandle] = {}
        self.node_ip = "127.0.0.1"
        self.address = scenario.run.ray_address
        self._owns_connection = False
        self._remote: Any = None
        self._group: Any = None
        self._group_ready = False

    # ----- set-up (synchronous, before the run starts) -------------------------------------
    def connect(self) -> None:
        """Join the cluster, check the agents fit, reserve the placement group.

        Raises:
            RunSetupError: no cluster at ``run.ray_address``, or an agent's resources fit no
                live node (the message shows what the nodes offer).
        """
        import ray

        run = self.scenario.run
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "logging_level": logging.WARNING,
                "log_to_driver": False,
                "namespace": "agentsim",
            }
            if run.ray_address == "local":
                specs = [self.scenario.agents[a].resources for a in self.agents]
                kwargs.update(address="local", include_dashboard=False, **local_cluster(specs))
            else:
                kwargs["address"] = run.ray_address
            try:
                ray.init(**kwargs)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise RunSetupError(
                    f"run.ray_address = {run.ray_address!r}: cannot join a Ray cluster "
                    f"({_first_line(e)}); start one with `ray start --head`, or set "
                    'run.ray_address = "local" to start one for this run'
                ) from None
            self._owns_connection = True
        try:
            self.node_ip = ray.util.get_node_ip_address()
            self.address = ray.get_runtime_context().gcs_address or self.address
            self._check_fits(ray.nodes())
            self._remote = ray.remote(AgentSupervisor)
            if run.placement:
                self._reserve()
        except BaseException:
            self.close()
            raise

    def _check_fits(self, nodes: list[dict[str, Any]]) -> None:
        for name in self.agents:
            spec = self.scenario.agents[name].resources
            if not fitting_nodes(spec, nodes):
                raise RunSetupError(
                    f"agents.{name}.resources: no live node of the Ray cluster at {self.address} "
                    f"can hold {describe_need(spec)}; its nodes: {describe_nodes(nodes)}"
                )

    def _reserve(self) -> None:
        from ray.util.placement_group import placement_group

        shapes, labels = bundles([self.scenario.agents[a].resources for a in self.agents])
        kwargs: dict[str, Any] = {"strategy": STRATEGIES[self.scenario.run.placement]}
        if any(labels):
            kwargs["bundle_label_selector"] = labels
        self._group = placement_group(shapes, **kwargs)

    async def _await_group(self) -> None:
        run = self.scenario.run
        with trio.move_on_after(run.ready_timeout_s):
            await resolved(self._group.ready())
            self._group_ready = True
            return
        import ray

        raise RunError(
            f"run.placement = {run.placement!r}: Ray could not place the {len(self.agents)} "
            f"agents' bundles within run.ready_timeout_s={run.ready_timeout_s:g}s; "
            f"free now: {_free(ray.available_resources())}"
        )

    # ----- agents ---------------------------------------------------------------------------
    async def start(self, launch: AgentLaunch, *, nursery: trio.Nursery) -> AgentHandle:
        import ray

        run = self.scenario.run
        spec = self.scenario.agents[launch.name].resources
        bundle = None
        if self._group is not None:
            if not self._group_ready:
                await self._await_group()
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            strategy = PlacementGroupSchedulingStrategy(
                self._group, placement_group_bundle_index=self.agents.index(launch.name)
            )
            bundle = (strategy, self.agents.index(launch.name))
        actor = self._remote.options(**actor_options(spec, bundle=bundle)).remote(launch.name)
        threads = str(launch.threads)
        env = {
            "AGENTSIM_CHILD": "1",
            "PYTHONUNBUFFERED": "1",
            "TVM_NUM_THREADS": threads,
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": "1",
            **launch.env,
        }
        args = ["agent", "--connect", launch.endpoint, "--name", launch.name]
        args += ["--run-id", launch.run_id]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{launch.name}.log", "ab")  # noqa: SIM115, ASYNC230 - tiny, local; closed by the handle
        info: dict[str, Any] | None = None
        try:
            with trio.move_on_after(run.ready_timeout_s):
                info = await resolved(actor.spawn.remote(args, env, run.ray_cache))
        except ray.exceptions.RayError as e:
            log.close()
            ray.kill(actor, no_restart=True)
            raise RunError(f"Ray could not start agent {launch.name}: {_first_line(e)}") from None
        if info is None:
            log.close()
            ray.kill(actor, no_restart=True)
            raise RunError(
                f"Ray could not place agent {launch.name} within run.ready_timeout_s="
                f"{run.ready_timeout_s:g}s: it needs {describe_need(spec)}; free now: "
                f"{_free(ray.available_resources())}"
            )
        handle = RayHandle(launch.name, actor, info, log)
        handle._note("agent_placed", pid=handle.pid, **handle.node, cache=info.get("cache", ""))
        self.handles[launch.name] = handle
        return handle

    def close(self) -> None:
        """Kill every supervisor still alive (their agents die with them), release the
        placement group, and leave the cluster if this launcher joined it."""
        try:
            import ray
        except ImportError:  # pragma: no cover - connect() imported it
            return
        if not ray.is_initialized():
            return
        for handle in self.handles.values():
            if handle.code is None or handle._stop_ref is not None:
                with contextlib.suppress(ValueError, ray.exceptions.RayError):
                    ray.kill(handle.actor, no_restart=True)
        if self._group is not None:
            from ray.util.placement_group import remove_placement_group

            with contextlib.suppress(ValueError, ray.exceptions.RayError):
                remove_placement_group(self._group)
            self._group = None
        if self._owns_connection:
            ray.shutdown()
            self._owns_connection = False

    def reachable(self, endpoint: str) -> str:
        """``endpoint`` as agents on other nodes dial it: a wildcard host becomes this node's
        address in the cluster."""
        host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
        if host in ("0.0.0.0", "*", "[::]", "::"):
            return f"tcp://{self.node_ip}:{port}"
        return endpoint


def _free(resources: dict[str, float]) -> str:
    shown = [
        f"{k} {v:g}"
        for k, v in sorted(resources.items())
        if not k.startswith("node:") and k not in ("object_store_memory", "memory")
    ]
    return ", ".join(shown) or "nothing"


def default_bind(launcher: RayLauncher) -> str:
    """Where the broker listens for a Ray run without ``run.bind``: this node's address in the
    cluster (the one the other nodes already reach), a free port."""
    return f"tcp://{launcher.node_ip}:*"
