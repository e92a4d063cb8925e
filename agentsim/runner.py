"""The runner: owns a run from scenario to run folder.

It starts the broker, launches one agent per ``[agents.X]``, waits for every ``Ready``, feeds
tasks to the protocol, scores answers, writes ``results.jsonl`` and the journal, and shuts
everything down — also on Ctrl-C, on a crash and on a timeout. No agent process outlives it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import structlog
import trio

from agentsim.bus.auth import CurveSetup
from agentsim.bus.broker import Broker, Transport
from agentsim.bus.faults import FaultLayer
from agentsim.bus.faults_seeded import SeededFaults
from agentsim.driver import KNOWN_ERRORS, Pending, TaskContext, jsonable
from agentsim.failures import Failure
from agentsim.journal import Journal
from agentsim.launch import AgentHandle, Launcher
from agentsim.protocols import load_protocol_class
from agentsim.protocols.base import AskResult, BaseProtocol, BudgetExhausted, Outcome
from agentsim.rundir import RunFolder
from agentsim.scenario import Scenario
from agentsim.tasks.base import Score, Scorer, Task
from agentsim.wire import (
    RUNNER,
    Configure,
    Envelope,
    Error,
    Heartbeat,
    Hello,
    Outbox,
    Ready,
    Reply,
    Shutdown,
    ToolResultMsg,
)

log = structlog.get_logger("agentsim.runner")

ProgressHook = Callable[[dict[str, Any]], None]


class RunError(Exception):
    """The run could not complete (exit 1): an agent never became ready, for instance."""


class AgentState:
    def __init__(self, name: str) -> None:
        self.name = name
        self.handle: AgentHandle | None = None
        self.hello: Hello | None = None
        self.ready: Ready | None = None
        self.ready_event = trio.Event()
        self.alive = True
        self.exit_code: int | None = None
        self.unresponsive = False
        self.fault_ids: list[str] = []
        self.exited = trio.Event()
        self.busy = False
        self.beat_at = 0.0


class Runner:
    """One run of one scenario."""

    def __init__(
        self,
        scenario: Scenario,
        folder: RunFolder,
        *,
        transport: Transport,
        endpoint: str,
        launcher: Launcher,
        base_dir: Path,
        tasks: list[Task],
        scorer: Scorer,
        faults: FaultLayer | None = None,
        progress: ProgressHook | None = None,
        cleanup_dir: str | None = None,
        protocol_cls: type[BaseProtocol] | None = None,
        curve: CurveSetup | None = None,
    ) -> None:
        self.scenario = scenario
        self.folder = folder
        self.run_id = folder.run_id
        self.journal = Journal(folder.path / "journal.jsonl", clock=trio.current_time)
        self.transport = transport
        self.endpoint = endpoint
        self.launcher = launcher
        self.base_dir = base_dir
        self.progress = progress
        self.tasks = tasks
        self.scorer = scorer
        self.cleanup_dir = cleanup_dir
        self.curve = curve
        if curve is not None:
            curve.zap.on_refused = self._refused
        self.outbox = Outbox(self.run_id, RUNNER, per_dst=True)
        self.seeded = faults if isinstance(faults, SeededFaults) else None
        self.broker = Broker(
            transport,
            self.journal,
            on_message=self._on_message,
            on_failure=self.record,
            faults=faults,
        )
        # Only the agents the protocol uses are started (a sweep config names its own subset).
        used = (
            scenario.protocol.agents
            if not scenario.environment and scenario.protocol.agents
            else list(scenario.agents)
        )
        self.agents = {name: AgentState(name) for name in used}
        self.pending: dict[str, Pending] = {}
        self.answered: set[str] = set()
        self.timed_out: set[str] = set()
        self.strays: dict[str, list[AskResult]] = {}
        self.failures: list[Failure] = []
        self.results: list[dict[str, Any]] = []
        self.shutting_down = False
        self.completed = False
        self._task_failures: dict[str, list[Failure]] = {}
        self._crash_noted: set[tuple[str, str]] = set()
        self._fault_seq = 0
        self.current_task = ""
        self._deadlocked: set[str] = set()
        self._schemas: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        self._protocol_cls: type[BaseProtocol] = protocol_cls or load_protocol_class(
            scenario.protocol.kind, base_dir
        )

    # ----- failures -------------------------------------------------------------------------
    def record(self, failure: Failure) -> None:
        if not failure.at:
            failure = msgspec.structs.replace(failure, at=self.journal.now())
        causes = self._causes(failure)
        if causes:
            failure = msgspec.structs.replace(failure, evidence=[*failure.evidence, *causes])
        self.failures.append(failure)
        self._task_failures.setdefault(failure.task_id, []).append(failure)
        self.journal.failure(failure)
        log.info(
            "failure",
            kind=failure.kind,
            task_id=failure.task_id,
            agents=failure.agents,
            detail=failure.detail,
        )

    def _refused(self, address: str, reason: str) -> None:
        self.journal.write("agent_refused", address=address, reason=reason)
        log.warning("agent_refused", address=address, reason=reason)

    def _causes(self, failure: Failure) -> list[str]:
        """Injected faults that explain a failure: faults on its evidence messages, and
        process faults (kill, pause, slow) on its agents, so a failure traces to its cause."""
        if self.seeded is None or failure.category not in (
            "transport",
            "tool",
            "specification",
            "inter_agent",
        ):
            return []
        found: list[str] = []
        for mid in failure.evidence:
            found += self.seeded.by_msg.get(mid, [])
        for agent in failure.agents:
            state = self.agents.get(agent)
            if state is not None:
                found += state.fault_ids
        return [f for f in dict.fromkeys(found) if f not in failure.evidence]

    # ----- messages from the broker ---------------------------------------------------------
    def _may_answer(self, env: Envelope, ref: str) -> bool:
        """Only the agent a request was sent to may answer it: a reply, result or error that
        names another agent's request is refused and recorded (whether it is open or not)."""
        asked = self.broker.requests.get(ref)
        if asked is None or asked == env.src:
            return True
        self.record(
            Failure(
                kind="refused_message",
                task_id=env.task_id,
                agents=[env.src],
                evidence=[env.msg_id, ref],
                detail=f"{env.src} answered {ref}, which was sent to {asked}: ignored",
            )
        )
        return False

    def _on_message(self, env: Envelope) -> None:
        state = self.agents.get(env.src)
        match env.body:
            case Hello() as hello:
                if state is None:
                    self.journal.write(
                        "agent_refused", agent=env.src, reason="not declared in the scenario"
                    )
                    self.broker.post(self.outbox.make(env.src, Shutdown(reason="unknown agent")))
                    return
                state.hello = hello
                self.broker.agents.add(env.src)
                self.journal.write("agent_hello", agent=env.src, pid=hello.pid, host=hello.host)
                self._configure(env.src)
            case Ready() as ready:
                if state is not None:
                    state.ready = ready
                    self.journal.write("agent_ready", **msgspec.to_builtins(ready))
                    state.ready_event.set()
            case Reply(in_reply_to=ref) as reply:
                if not self._may_answer(env, ref):
                    return
                pending = self.pending.get(ref)
                if ref in self.timed_out:
                    self.journal.write(
                        "late_reply", msg_id=env.msg_id, in_reply_to=ref, src=env.src
                    )
                    self._stray(env, reply)
                elif ref in self.answered:
                    self._stray(env, reply)
                    self.record(
                        Failure(
                            kind="duplicate_delivery",
                            task_id=env.task_id,
                            agents=[env.src],
                            round=env.round,
                            evidence=[env.msg_id, ref],
                            detail=f"second reply to {ref} ignored",
                        )
                    )
                elif pending is not None:
                    self.answered.add(ref)
                    pending.reply = env
                    pending.done.set()
                else:
                    self.journal.write(
                        "stray_reply", msg_id=env.msg_id, in_reply_to=ref, src=env.src
                    )
            case ToolResultMsg(in_reply_to=ref):
                if not self._may_answer(env, ref):
                    return
                pending = self.pending.get(ref)
                if pending is not None and ref not in self.answered:
                    self.answered.add(ref)
                    pending.reply = env
                    pending.done.set()
                elif ref in self.answered:
                    self.record(
                        Failure(
                            kind="duplicate_delivery",
                            task_id=env.task_id,
                            agents=[env.src],
                            round=env.round,
                            evidence=[env.msg_id, ref],
                            detail=f"second tool result for {ref} ignored",
                        )
                    )
            case Error(kind=kind, detail=detail, in_reply_to=ref, ref=seen_at, gap=gap):
                if ref and not self._may_answer(env, ref):
                    return
                pending = self.pending.get(ref) if ref else None
                if pending is not None and ref not in self.answered:
                    self.answered.add(ref)
                    pending.error = (kind, detail)
                    pending.done.set()
                elif kind == "engine_error" and state is not None and state.ready is None:
                    self.journal.write("agent_load_failed", agent=env.src, detail=detail)
                    state.alive = False
                    state.ready_event.set()
                else:
                    reported = Failure(
                        kind=kind if kind in KNOWN_ERRORS else "engine_error",
                        task_id=env.task_id,
                        agents=[env.src],
                        evidence=[env.msg_id, *([seen_at] if seen_at else [])],
                        detail=detail[:300],
                    )
                    for failure in self.broker.explain_gap(reported, gap, reporter=env.src):
                        self.record(failure)
            case Heartbeat(busy=busy):
                if state is not None:
                    state.busy = busy
                    state.beat_at = trio.current_time()
            case _:
                pass

    def _stray(self, env: Envelope, reply: Reply) -> None:
        """Keep a late or duplicate reply where a protocol may look (``late_replies``)."""
        self.strays.setdefault(env.task_id, []).append(
            AskResult(
                agent=env.src,
                msg_id=reply.in_reply_to,
                completion=reply.completion,
                peers_seen=list(reply.peers_seen),
            )
        )

    def _configure(self, name: str) -> None:
        cfg = self.scenario.engine_config(name, seed=self._agent_seed(name))
        if cfg.threads == 0 and cfg.engine in ("mlc", "llamacpp"):
            cfg = msgspec.structs.replace(cfg, threads=self._threads_for(name))
        slow = [x.factor for x in self.seeded.spec.slow if x.agent == name] if self.seeded else []
        if slow:
            fid = self.seeded_event("slow", name, factor=slow[0])
            self.agents[name].fault_ids.append(fid)
        body = Configure(
            engine=msgspec.structs.replace(cfg, options=msgspec.to_builtins(cfg.options)),
            slow_factor=slow[0] if slow else 1.0,
            tools=list(self.scenario.agents[name].tools),
            heartbeat_s=self.scenario.run.heartbeat_s,
            broker_timeout_s=self.scenario.run.heartbeat_s * self.scenario.run.heartbeat_misses,
            peers=[a for a in self.agents if a != name],
        )
        self.broker.post(self.outbox.make(name, body))

    def _agent_seed(self, name: str) -> int:
        return (self.scenario.run.seed * 1_000_003 + list(self.scenario.agents).index(name)) % (
            2**31
        )

    def _threads_for(self, name: str) -> int:
        heavy = [
            a
            for a in self.agents
            if self.scenario.agents[a].engine in ("mlc", "llamacpp")
            and not self.scenario.agents[a].remote
        ]
        return max(1, (os.cpu_count() or 1) // max(1, len(heavy)))

    # ----- lifecycle ------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        """Run every task; always leaves a journal, results and a (maybe partial) summary."""
        self.journal.write(
            "run_start",
            run_id=self.run_id,
            scenario=self.scenario.run.name,
            seed=self.scenario.run.seed,
            endpoint=self.endpoint,
            protocol=self.scenario.protocol.kind,
            agents=list(self.agents),
        )
        try:
            async with trio.open_nursery() as nursery:
                if self.curve is not None:
                    await nursery.start(self.curve.zap.serve)
                await nursery.start(self.broker.serve)
                nursery.start_soon(self._beat)
                nursery.start_soon(self._stats_loop)
                await self._launch_all(nursery)
                await self._await_ready()
                nursery.start_soon(self._liveness)
                if self.seeded is not None:
                    self.seeded.start_clock()
                    nursery.start_soon(self._process_faults, nursery)
                await self._run_tasks()
                self.completed = True
                await self._shutdown_agents()
                nursery.cancel_scope.cancel()
        finally:
            self._stop_everything()
            self._write_stats("broker_stats")
            summary = self.folder.finish(self.journal, partial=not self.completed)
        return summary

    def _write_stats(self, event: str) -> None:
        from agentsim.agent.core import rss_bytes

        self.journal.write(
            event, **self.broker.stats(), journal_lines=self.journal.count, rss_bytes=rss_bytes()
        )

    async def _stats_loop(self) -> None:
        """Periodic runner health (RSS, message counts) into the journal: soak tests read it."""
        while True:
            await trio.sleep(self.scenario.run.stats_s)
            self._write_stats("runner_stats")

    async def _launch_all(self, nursery: trio.Nursery) -> None:
        for name in self.agents:
            spec = self.scenario.agents[name]
            if spec.remote:
                self.journal.write("agent_expected", agent=name)
                continue
            threads = spec.threads or self._threads_for(name)
            env = self.curve.local_agent_env(name) if self.curve is not None else None
            handle = await self.launcher.start(
                name, self.endpoint, self.run_id, threads=threads, nursery=nursery, extra_env=env
            )
            self.agents[name].handle = handle
            self.journal.write("agent_spawned", agent=name, pid=handle.pid)
            nursery.start_soon(self._watch_exit, self.agents[name])

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
        self.record(
            Failure(
                kind="agent_crash",
                agents=[state.name],
                evidence=list(state.fault_ids),
                detail=f"{state.name} (pid {state.handle.pid}) exited with code {code}",
            )
        )
        self._fail_pending(state.name, "agent_crash", f"{state.name} exited with code {code}")

    def _fail_pending(self, agent: str, kind: str, detail: str) -> None:
        for ref, pending in list(self.pending.items()):
            if pending.agent == agent and not pending.done.is_set():
                self.answered.add(ref)
                pending.error = (kind, detail)
                pending.done.set()

    async def _await_ready(self) -> None:
        timeout = self.scenario.run.ready_timeout_s
        with trio.move_on_after(timeout) as scope:
            for state in self.agents.values():
                await state.ready_event.wait()
        missing = [s.name for s in self.agents.values() if s.ready is None]
        if missing:
            name = missing[0]
            why = "timed out" if scope.cancelled_caught else "exited or failed to load"
            if self.scenario.agents[name].remote and self.agents[name].hello is None:
                raise RunError(
                    f"remote agent {name} did not connect within run.ready_timeout_s={timeout:g}s; start it "
                    f"with: python -m agentsim agent --connect {self.endpoint} --name {name}"
                    + (
                        " --key NAME.key_secret --server-key RUNNER.key"
                        if self.curve is not None
                        else ""
                    )
                )
            tail = self.folder.log_tail(name)
            raise RunError(
                f"agent {name} never became ready ({why} after {timeout:g}s limit){tail}"
            )
        self.journal.write("all_ready", agents=len(self.agents))

    async def _beat(self) -> None:
        while True:
            for name in sorted(self.broker.agents):
                if self.agents.get(name) is not None and self.agents[name].alive:
                    self.broker.post(self.outbox.make(name, Heartbeat()))
            await trio.sleep(self.scenario.run.heartbeat_s)

    async def _liveness(self) -> None:
        limit = self.scenario.run.heartbeat_s * self.scenario.run.heartbeat_misses
        while True:
            await trio.sleep(self.scenario.run.heartbeat_s)
            now = trio.current_time()
            for state in self.agents.values():
                if not state.alive or state.ready is None:
                    continue
                silent = now - self.broker.last_seen.get(state.name, now)
                if silent > limit and not state.unresponsive:
                    state.unresponsive = True
                    self.record(
                        Failure(
                            kind="agent_unresponsive",
                            agents=[state.name],
                            evidence=list(state.fault_ids),
                            detail=f"no heartbeat from {state.name} for {silent:.1f}s",
                        )
                    )
                    if state.handle is None:  # remote: nothing else will tell us it is gone
                        state.alive = False
                        self._fail_pending(state.name, "agent_unresponsive", "heartbeats stopped")
                elif silent <= limit:
                    state.unresponsive = False
            self._detect_deadlock(now)

    def _detect_deadlock(self, now: float) -> None:
        """Everyone waiting, nothing in flight: the runner awaits replies, every agent it awaits is
        alive and idle, no delayed message is held, and nothing moved for two heartbeats."""
        task = self.current_task
        if not task or not self.pending or task in self._deadlocked or self.broker.held:
            return
        if now - self.broker.last_activity < 2 * self.scenario.run.heartbeat_s:
            return
        hb = self.scenario.run.heartbeat_s
        open_requests = [p for p in self.pending.values() if not p.done.is_set()]
        waiting = {p.agent for p in open_requests}
        for p in open_requests:
            s = self.agents.get(p.agent)
            # idle, and said so a full beat after the request went out (not a stale beat)
            if s is None or not s.alive or s.busy or s.beat_at - p.t0 < hb:
                return
        if not waiting:
            return
        self._deadlocked.add(task)
        self.record(
            Failure(
                kind="deadlock",
                task_id=task,
                agents=sorted(waiting),
                evidence=sorted(m for m, p in self.pending.items() if not p.done.is_set()),
                detail=f"runner waits on {', '.join(sorted(waiting))}; they are idle and nothing is in flight",
            )
        )

    async def _process_faults(self, nursery: trio.Nursery) -> None:
        """Kill, pause and slow agents as ``[faults]`` says, journaling each injection."""
        assert self.seeded is not None
        spec = self.seeded.spec
        t0 = trio.current_time()

        async def at(when: float) -> None:
            await trio.sleep_until(t0 + when)

        async def kill(agent: str, when: float, after: int) -> None:
            if after:
                while self.broker.per_agent.get(agent, 0) < after:  # noqa: ASYNC110 - counter, not an event
                    await trio.sleep(0.01)
            else:
                await at(when)
            state = self.agents[agent]
            if state.handle is None or not state.alive:
                return
            fid = self.seeded_event("kill", agent, after_messages=after, at_s=when)
            state.fault_ids.append(fid)
            state.handle.kill()

        async def pause(agent: str, when: float, duration: float) -> None:
            await at(when)
            state = self.agents[agent]
            if state.handle is None or not state.alive:
                return
            fid = self.seeded_event("pause", agent, duration_s=duration)
            state.fault_ids.append(fid)
            state.handle.pause()
            await trio.sleep(duration)
            state.handle.resume()
            self.journal.write("fault_end", fault_id=fid, kind="pause", agent=agent)

        for k in spec.kill:
            nursery.start_soon(kill, k.agent, k.at_s, k.after_messages)
        for p in spec.pause:
            nursery.start_soon(pause, p.agent, p.at_s, p.duration_s)

    def seeded_event(self, kind: str, agent: str, **extra: Any) -> str:
        self._fault_seq += 1
        fid = f"pfault-{self._fault_seq}"
        self.journal.write("fault", fault_id=fid, kind=kind, agent=agent, **extra)
        return fid

    async def _shutdown_agents(self) -> None:
        self.shutting_down = True
        for state in self.agents.values():
            if state.alive:
                self.broker.post(self.outbox.make(state.name, Shutdown(reason="run complete")))
        with trio.move_on_after(self.scenario.run.shutdown_timeout_s):
            for state in self.agents.values():
                if state.handle is not None:
                    await state.exited.wait()
        await self.broker.stop()  # their last words (reports sent on Shutdown) are recorded

    def _stop_everything(self) -> None:
        """Synchronous last resort (also on Ctrl-C): no child process survives the runner."""
        self.shutting_down = True
        handles = [s.handle for s in self.agents.values() if s.handle is not None]
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
        self.transport.close()
        if self.cleanup_dir:
            shutil.rmtree(self.cleanup_dir, ignore_errors=True)

    # ----- tasks ----------------------------------------------------------------------------
    async def _run_tasks(self) -> None:
        tasks, scorer = self.tasks, self.scorer
        protocol = self._protocol_cls(self.scenario)
        suite = self.scenario.environment.get("kind") or self.scenario.tasks.suite
        self.journal.write("tasks_loaded", count=len(tasks), suite=suite)
        for index, task in enumerate(tasks):
            result = await self._run_one(protocol, task, scorer)
            self.results.append(result)
            self.folder.append_result(result)
            self.journal.write("task_result", **result)
            self.journal.sync()
            if self.progress is not None:
                self.progress(
                    {
                        "done": index + 1,
                        "total": len(tasks),
                        "result": result,
                        "failures": self.failures,
                    }
                )

    async def _run_one(self, protocol: BaseProtocol, task: Task, scorer: Scorer) -> dict[str, Any]:
        ctx = TaskContext(self, task, scorer)
        self.current_task = task.id
        self.journal.write("task_start", task_id=task.id)
        t0 = trio.current_time()
        outcome = Outcome(answer="", final=False)
        with trio.move_on_after(self.scenario.protocol.task_timeout_s) as scope:
            try:
                outcome = await protocol.run_task(task, ctx)
            except BudgetExhausted as e:
                ctx.fail("unaware_of_termination", detail=str(e))
        if scope.cancelled_caught:
            ctx.fail(
                "message_timeout",
                detail=f"task exceeded task_timeout_s={self.scenario.protocol.task_timeout_s:g}",
            )
        latency = trio.current_time() - t0
        score = (
            scorer(task, outcome.answer) if outcome.answer else Score(extracted="", correct=False)
        )
        msgs, nbytes = self.journal.task_traffic(task.id)
        return {
            "task_id": task.id,
            "category": task.category,
            "answer": outcome.answer,
            "extracted": score.extracted,
            "gold": task.answer,
            "correct": bool(score.correct and outcome.final),
            "completed": outcome.final,
            "rounds": outcome.rounds,
            "by": outcome.by,
            "prompt_tokens": ctx.prompt_tokens,
            "completion_tokens": ctx.completion_tokens,
            "decode_s": round(ctx.decode_s, 6),
            "latency_s": round(latency, 6),
            "messages": msgs,
            "bytes": nbytes,
            "failures": [f.kind for f in self._task_failures.get(task.id, [])],
            "extra": jsonable(outcome.extra),
        }
