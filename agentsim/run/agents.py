"""The run's agents: launch, hello → configure → ready, heartbeats, exits, liveness, stop.

The ``Roster`` owns what the runner knows of each agent (``AgentState``) and every change
to it. It reports what goes wrong (a crash, silence) as failures through the run, and fails
the agent's open requests in the request table so that no protocol waits on a dead agent.
"""

from __future__ import annotations

import math
import os
import time

import msgspec
import trio

from agentsim.bus.auth import CurveSetup
from agentsim.bus.broker import Broker
from agentsim.failures import Failure
from agentsim.run.config import engine_config
from agentsim.run.context import RunServices
from agentsim.run.errors import RunError
from agentsim.run.faults import ProcessFaults
from agentsim.run.folder import RunFolder
from agentsim.run.launchers.base import (
    AgentHandle,
    AgentLaunch,
    Launcher,
    exit_detail,
    placement,
)
from agentsim.tools.python import tool_spec as python_tool_spec
from agentsim.wire import Configure, Envelope, Heartbeat, Hello, Ready, Shutdown


class AgentState:
    """What the runner knows of one agent: its handle, its hello/ready, whether it lives."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.handle: AgentHandle | None = None
        self.hello: Hello | None = None
        self.ready: Ready | None = None
        self.ready_event = trio.Event()
        self.alive = True
        self.exit_code: int | None = None
        self.unresponsive = False
        self.exited = trio.Event()
        self.busy = False
        self.beat_at = 0.0
        #: what the agent reported when its engine or tools failed to load
        self.load_error = ""


class Roster:
    """The agents of one run, by name, in scenario order."""

    def __init__(
        self,
        run: RunServices,
        names: list[str],
        *,
        broker: Broker,
        launcher: Launcher,
        process_faults: ProcessFaults,
        folder: RunFolder,
        endpoint: str,
        curve: CurveSetup | None,
    ) -> None:
        self.run = run
        self.scenario = run.scenario
        self.journal = run.journal
        self.broker = broker
        self.launcher = launcher
        self.process_faults = process_faults
        self.folder = folder
        self.endpoint = endpoint
        self.curve = curve
        self.states = {name: AgentState(name) for name in names}
        self.shutting_down = False

    def alive(self, agent: str) -> bool:
        state = self.states.get(agent)
        return state is not None and state.alive

    def target(self, agent: str) -> AgentHandle | None:
        """The handle of a live agent (for process faults)."""
        state = self.states[agent]
        return state.handle if state.alive else None

    # ----- messages from agents -------------------------------------------------------------
    def on_hello(self, env: Envelope, hello: Hello) -> None:
        state = self.states.get(env.src)
        if state is None:
            self.journal.write(
                "agent_refused", agent=env.src, reason="not declared in the scenario"
            )
            self.run.post(self.run.stamp(env.src, Shutdown(reason="unknown agent")))
            return
        state.hello = hello
        self.broker.agents.add(env.src)
        self.journal.write("agent_hello", agent=env.src, pid=hello.pid, host=hello.host)
        self._configure(env.src)

    def on_ready(self, env: Envelope, ready: Ready) -> None:
        state = self.states.get(env.src)
        if state is not None:
            state.ready = ready
            self.journal.write(
                "agent_ready", **msgspec.to_builtins(ready), **placement(state.handle)
            )
            state.ready_event.set()

    def on_load_failed(self, env: Envelope, detail: str) -> bool:
        """An ``engine_error`` before ``Ready``: the agent could not load (True if so)."""
        state = self.states.get(env.src)
        if state is None or state.ready is not None:
            return False
        self.journal.write("agent_load_failed", agent=env.src, detail=detail)
        state.load_error = detail
        state.alive = False
        state.ready_event.set()
        return True

    def on_heartbeat(self, env: Envelope, busy: bool) -> None:
        state = self.states.get(env.src)
        if state is not None:
            state.busy = busy
            state.beat_at = trio.current_time()

    def _configure(self, name: str) -> None:
        cfg = engine_config(self.scenario, name)
        if cfg.threads == 0 and cfg.engine in ("mlc", "llamacpp"):
            cfg = msgspec.structs.replace(cfg, threads=self._threads_for(name))
        run = self.scenario.run
        body = Configure(
            engine=msgspec.structs.replace(cfg, options=msgspec.to_builtins(cfg.options)),
            slow_factor=self.process_faults.slow_factor(name),
            tools=[
                python_tool_spec(t, run.python_sandbox) for t in self.scenario.agents[name].tools
            ],
            heartbeat_s=run.heartbeat_s,
            broker_timeout_s=run.heartbeat_s * run.heartbeat_misses,
            peers=[a for a in self.states if a != name],
        )
        self.run.post(self.run.stamp(name, body))

    def _threads_for(self, name: str) -> int:
        """Cores shared evenly among the agents that run a model on this host; on Ray, the
        agent's own ``num_cpus``."""
        if self.scenario.run.launcher == "ray":
            return max(1, int(self.scenario.agents[name].resources.num_cpus))
        heavy = [
            a
            for a in self.states
            if self.scenario.agents[a].engine in ("mlc", "llamacpp")
            and not self.scenario.agents[a].remote
        ]
        return max(1, (os.cpu_count() or 1) // max(1, len(heavy)))

    # ----- start ----------------------------------------------------------------------------
    async def launch_all(self, nursery: trio.Nursery) -> None:
        """Start every local agent; the launches overlap (a forkserver then forks them back
        to back instead of one round trip at a time). Returns once all have started."""

        async def one(name: str, state: AgentState) -> None:
            spec = self.scenario.agents[name]
            launch = AgentLaunch(
                name=name,
                endpoint=self.endpoint,
                run_id=self.folder.run_id,
                threads=spec.threads or self._threads_for(name),
                env=self.curve.local_agent_env(name) if self.curve is not None else {},
            )
            state.handle = await self.launcher.start(launch, nursery=nursery)
            self.journal.write(
                "agent_spawned", agent=name, pid=state.handle.pid, **placement(state.handle)
            )
            nursery.start_soon(self._watch_exit, state)

        async with trio.open_nursery() as starting:
            for name, state in self.states.items():
                if self.scenario.agents[name].remote:
                    self.journal.write("agent_expected", agent=name)
                else:
                    starting.start_soon(one, name, state)

    async def _watch_exit(self, state: AgentState) -> None:
        assert state.handle is not None
        code = await state.handle.wait()
        state.exit_code = code
        state.exited.set()
        was_alive = state.alive
        state.alive = False
        self.journal.write("agent_exit", agent=state.name, code=code)
        if not state.ready_event.is_set():
            state.ready_event.set()
        if self.shutting_down or not was_alive:
            return
        self._lost(
            state,
            "agent_crash",
            f"{state.name} (pid {state.handle.pid}) exited with code {code}"
            + (f": {why}" if (why := exit_detail(state.handle)) else ""),
            f"{state.name} exited with code {code}",
        )

    async def await_ready(self) -> None:
        """Every agent's ``Ready`` within ``run.ready_timeout_s``, else ``RunError``."""
        timeout = self.scenario.run.ready_timeout_s
        with trio.move_on_after(timeout) as scope:
            for state in self.states.values():
                await state.ready_event.wait()
        missing = [s.name for s in self.states.values() if s.ready is None]
        if missing:
            name = missing[0]
            why = "timed out" if scope.cancelled_caught else "exited or failed to load"
            if self.scenario.agents[name].remote and self.states[name].hello is None:
                raise RunError(
                    f"remote agent {name} did not connect within run.ready_timeout_s={timeout:g}s; start it "
                    f"with: python -m agentsim agent --connect {self.endpoint} --name {name}"
                    + (
                        " --key NAME.key_secret --server-key RUNNER.key"
                        if self.curve is not None
                        else ""
                    )
                )
            said = self.states[name].load_error  # reported before it exited; its log may lag
            if said:
                what = (
                    f"tools failed to load: {said[7:]}"
                    if said.startswith("tools: ")
                    else (f"engine failed to load: {said}")
                )
                raise RunError(f"agent {name} never became ready ({what})")
            tail = self.folder.log_tail(name)
            raise RunError(
                f"agent {name} never became ready ({why} after {timeout:g}s limit){tail}"
            )
        self.journal.write("all_ready", agents=len(self.states))

    # ----- while running --------------------------------------------------------------------
    async def beat(self) -> None:
        """The runner's heartbeat to every live agent that said hello.

        Only to agents the runner has sent nothing to for half an interval (any envelope
        from the runner tells an agent it lives), and spread over the interval in small
        groups: a thousand heartbeats at once would stall the loop and wake every agent in
        the same instant.
        """
        hb = self.scenario.run.heartbeat_s
        group = 32
        while True:
            start = trio.current_time()
            names = [n for n in sorted(self.broker.agents) if self.alive(n)]
            for i, name in enumerate(names):
                if start - self.broker.last_sent.get(name, -math.inf) >= hb / 2:
                    self.run.post(self.run.stamp(name, Heartbeat()))
                if i % group == group - 1:
                    await trio.sleep_until(start + hb * (i + 1) / len(names))
            await trio.sleep_until(start + hb)

    def check_liveness(self, now: float) -> None:
        """Agents silent for ``heartbeat_s × heartbeat_misses`` are unresponsive (once each
        silence); a remote one is then given up on, failing its open requests."""
        run = self.scenario.run
        limit = run.heartbeat_s * run.heartbeat_misses
        for state in self.states.values():
            if not state.alive or state.ready is None:
                continue
            silent = now - self.broker.last_seen.get(state.name, now)
            if silent > limit and not state.unresponsive:
                state.unresponsive = True
                remote = state.handle is None  # nothing else will tell us it is gone
                if remote:
                    state.alive = False
                self._lost(
                    state,
                    "agent_unresponsive",
                    f"no heartbeat from {state.name} for {silent:.1f}s",
                    "heartbeats stopped" if remote else "",
                )
            elif silent <= limit:
                state.unresponsive = False

    def _lost(self, state: AgentState, kind: str, detail: str, fail_open: str) -> None:
        """Record losing an agent (with the faults injected on it); with ``fail_open``, its
        open requests fail with ``kind`` and that detail, so no protocol waits on it."""
        evidence = list(self.process_faults.by_agent.get(state.name, []))
        self.run.record(Failure(kind=kind, agents=[state.name], evidence=evidence, detail=detail))
        if fail_open:
            self.run.requests.reject_agent(state.name, kind, fail_open)

    # ----- stop -----------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Ask every live agent to stop; wait for the local ones up to shutdown_timeout_s."""
        self.shutting_down = True
        for state in self.states.values():
            if state.alive:
                self.run.post(self.run.stamp(state.name, Shutdown(reason="run complete")))
        with trio.move_on_after(self.scenario.run.shutdown_timeout_s):
            for state in self.states.values():
                if state.handle is not None:
                    await state.exited.wait()

    def stop_all(self) -> None:
        """Synchronous last resort (also on Ctrl-C): no child process survives the runner."""
        self.shutting_down = True
        handles = [s.handle for s in self.states.values() if s.handle is not None]
        for h in handles:
            if h.poll() is None:
                h.terminate()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(h.poll() is None for h in handles):
            time.sleep(0.02)
        for h in handles:
            if h.poll() is None:
                h.kill()
        for h in handles:
            if h.poll() is None:
                time.sleep(0.05)
        self.launcher.close()
