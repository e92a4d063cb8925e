"""The runner: owns one run from a ready scenario to a finished run folder.

It starts the broker, launches (through its ``Roster``) one agent per ``[agents.X]`` the protocol uses, waits for every
``Ready``, feeds tasks to the protocol through a ``TaskContext`` per task, scores answers,
writes ``results.jsonl`` and the journal, and shuts everything down — also on Ctrl-C, on a
crash and on a timeout. No agent process outlives it. Build one with
``agentsim.run.assemble.assemble``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
import trio

from agentsim.agent.liveness import rss_bytes
from agentsim.bus.auth import CurveSetup
from agentsim.bus.broker import Broker, Transport
from agentsim.bus.faults import FaultLayer
from agentsim.bus.faults_seeded import SeededFaults
from agentsim.energy import EnergyMeter
from agentsim.failures import REPORTABLE, Failure
from agentsim.journal import Journal
from agentsim.protocols.base import BaseProtocol, BudgetExhausted, Outcome
from agentsim.run import detectors
from agentsim.run.agents import Roster
from agentsim.run.context import TaskContext, jsonable
from agentsim.run.faults import ProcessFaults
from agentsim.run.folder import Reporter, RunFolder
from agentsim.run.launchers.base import Launcher
from agentsim.run.requests import Delivery, RequestTable
from agentsim.run.work import Work
from agentsim.scenario.schema import Scenario
from agentsim.tasks.base import Score, Task
from agentsim.wire import (
    RUNNER,
    Body,
    Envelope,
    Error,
    Heartbeat,
    Hello,
    Outbox,
    Ready,
    Reply,
    ToolResultMsg,
)

log = structlog.get_logger("agentsim.runner")

ProgressHook = Callable[[dict[str, Any]], None]


class Runner:
    """One run of one scenario (its state lives here; the request table is its own)."""

    def __init__(
        self,
        scenario: Scenario,
        folder: RunFolder,
        *,
        transport: Transport,
        endpoint: str,
        launcher: Launcher,
        work: Work,
        faults: FaultLayer | None = None,
        progress: ProgressHook | None = None,
        reporter: Reporter | None = None,
        cleanup_dir: str | None = None,
        curve: CurveSetup | None = None,
    ) -> None:
        self.scenario = scenario
        self.folder = folder
        self.run_id = folder.run_id
        self.journal = Journal(folder.path / "journal.jsonl", clock=trio.current_time)
        self.transport = transport
        self.endpoint = endpoint
        self.launcher = launcher
        self.work = work
        self.progress = progress
        self.reporter = reporter
        self.cleanup_dir = cleanup_dir
        self.curve = curve
        if curve is not None:
            curve.zap.on_refused = self._refused
        self.outbox = Outbox(self.run_id, RUNNER, per_dst=True)
        self.seeded = faults if isinstance(faults, SeededFaults) else None
        if self.seeded is not None:  # the fault layer records the harm it knows it did
            self.seeded.attach(self.record)
        self.process_faults = ProcessFaults.of(self.seeded, self.journal)
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
        self.requests = RequestTable()
        self.roster = Roster(
            self,
            used,
            broker=self.broker,
            launcher=launcher,
            process_faults=self.process_faults,
            folder=folder,
            endpoint=endpoint,
            curve=curve,
        )
        self.failures: list[Failure] = []
        self.results: list[dict[str, Any]] = []
        self.completed = False
        self._task_failures: dict[str, list[Failure]] = {}
        self.current_task = ""
        self._deadlocked: set[str] = set()

    # ----- what a task context uses (RunServices) -------------------------------------------
    def record(self, failure: Failure) -> None:
        """Record a failure: timestamped, its injected causes added, journaled."""
        if not failure.at:
            failure = msgspec.structs.replace(failure, at=self.journal.now())
        if self.seeded is not None and self.seeded.repeats(failure):
            # a receiver confirms what the fault layer recorded: journaled, not counted twice
            self.journal.write("failure_repeat", **msgspec.to_builtins(failure))
            return
        causes = (
            detectors.fault_causes(failure, self.seeded.by_msg, self.process_faults.by_agent)
            if self.seeded is not None
            else []
        )
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

    def stamp(self, dst: str, body: Body, *, task_id: str = "", round: int = 0) -> Envelope:
        return self.outbox.make(dst, body, task_id=task_id, round=round)

    def post(self, env: Envelope) -> None:
        self.broker.post(env)

    def alive(self, agent: str) -> bool:
        return self.roster.alive(agent)

    # ----- messages from the broker ---------------------------------------------------------
    def _on_message(self, env: Envelope) -> None:
        match env.body:
            case Hello() as hello:
                self.roster.on_hello(env, hello)
            case Ready() as ready:
                self.roster.on_ready(env, ready)
            case Reply(in_reply_to=ref) | ToolResultMsg(in_reply_to=ref):
                if self._may_answer(env, ref):
                    self._answer(env, ref)
            case Error(kind=kind, detail=detail, in_reply_to=ref, ref=seen_at, gap=gap):
                if ref and not self._may_answer(env, ref):
                    return
                if ref and self.requests.reject(ref, kind, detail):
                    return
                if kind == "engine_error" and self.roster.on_load_failed(env, detail):
                    return
                reported = Failure(
                    kind=kind if kind in REPORTABLE else "engine_error",
                    task_id=env.task_id,
                    agents=[env.src],
                    evidence=[env.msg_id, *([seen_at] if seen_at else [])],
                    detail=detail[:300],
                )
                for failure in self.broker.explain_gap(reported, gap, reporter=env.src):
                    self.record(failure)
            case Heartbeat(busy=busy):
                self.roster.on_heartbeat(env, busy)
            case _:
                pass

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

    def _answer(self, env: Envelope, ref: str) -> None:
        """A reply or tool result: fills its request, or is recorded as late / twice / stray."""
        delivery = self.requests.deliver(env, ref)
        is_reply = isinstance(env.body, Reply)
        if delivery is Delivery.LATE and is_reply:
            self.journal.write("late_reply", msg_id=env.msg_id, in_reply_to=ref, src=env.src)
        elif delivery in (Delivery.LATE, Delivery.DUPLICATE):
            what = "reply" if is_reply else "tool result"
            self.record(
                Failure(
                    kind="duplicate_delivery",
                    task_id=env.task_id,
                    agents=[env.src],
                    round=env.round,
                    evidence=[env.msg_id, ref],
                    detail=f"second {what} to {ref} ignored"
                    if is_reply
                    else f"second {what} for {ref} ignored",
                )
            )
        elif delivery is Delivery.UNKNOWN and is_reply:
            self.journal.write("stray_reply", msg_id=env.msg_id, in_reply_to=ref, src=env.src)

    def _refused(self, address: str, reason: str) -> None:
        self.journal.write("agent_refused", address=address, reason=reason)
        log.warning("agent_refused", address=address, reason=reason)

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
            agents=list(self.roster.states),
        )
        meter = EnergyMeter()
        energy_start = meter.read()
        try:
            async with trio.open_nursery() as nursery:
                if self.curve is not None:
                    await nursery.start(self.curve.zap.serve)
                await nursery.start(self.broker.serve)
                nursery.start_soon(self.roster.beat)
                nursery.start_soon(self._stats_loop)
                await self.roster.launch_all(nursery)
                await self.roster.await_ready()
                nursery.start_soon(self._liveness)
                if self.seeded is not None:
                    self.seeded.start_clock()
                    nursery.start_soon(
                        self.process_faults.serve, nursery, self.roster.target, self._sent_by
                    )
                await self._run_tasks()
                self.completed = True
                await self.roster.shutdown()
                await self.broker.stop()  # the agents' last words (reports on Shutdown) count
                nursery.cancel_scope.cancel()
        finally:
            self._stop_everything()
            self.journal.write("energy", **meter.since(energy_start))
            self._write_stats("broker_stats")
            summary = self.folder.finish(
                self.journal, partial=not self.completed, reporter=self.reporter
            )
        return summary

    def _sent_by(self, agent: str) -> int:
        return self.broker.per_agent.get(agent, 0)

    def _write_stats(self, event: str) -> None:
        self.journal.write(
            event, **self.broker.stats(), journal_lines=self.journal.count, rss_bytes=rss_bytes()
        )

    async def _stats_loop(self) -> None:
        """Periodic runner health (RSS, message counts) into the journal: soak tests read it."""
        while True:
            await trio.sleep(self.scenario.run.stats_s)
            self._write_stats("runner_stats")

    async def _liveness(self) -> None:
        """Each heartbeat: agents gone silent, then the deadlock detector for this task."""
        hb = self.scenario.run.heartbeat_s
        while True:
            await trio.sleep(hb)
            now = trio.current_time()
            self.roster.check_liveness(now)
            task = self.current_task
            if task and task not in self._deadlocked and not self.broker.held:
                found = detectors.deadlock(
                    self.requests.waiting(),
                    self.roster.states,
                    task_id=task,
                    now=now,
                    last_activity=self.broker.last_activity,
                    heartbeat_s=hb,
                )
                if found is not None:
                    self._deadlocked.add(task)
                    self.record(found)

    def _stop_everything(self) -> None:
        """Synchronous last resort (also on Ctrl-C): agents, transport, temp folder."""
        self.roster.stop_all()
        self.transport.close()
        if self.cleanup_dir:
            shutil.rmtree(self.cleanup_dir, ignore_errors=True)

    # ----- tasks ----------------------------------------------------------------------------
    async def _run_tasks(self) -> None:
        tasks, scorer, protocol_cls = self.work
        protocol = protocol_cls(self.scenario)
        suite = self.scenario.environment.get("kind") or self.scenario.tasks.suite
        self.journal.write("tasks_loaded", count=len(tasks), suite=suite)
        for index, task in enumerate(tasks):
            ctx = TaskContext(self, task, scorer)
            result = await self._run_one(protocol, task, ctx)
            self.results.append(result)
            self.folder.append_result(result)
            self.journal.write("task_result", **result)
            self.journal.sync_soon()
            if self.progress is not None:
                self.progress(
                    {
                        "done": index + 1,
                        "total": len(tasks),
                        "result": result,
                        "failures": self.failures,
                    }
                )

    async def _run_one(
        self, protocol: BaseProtocol, task: Task, ctx: TaskContext
    ) -> dict[str, Any]:
        self.current_task = task.id
        self.journal.write("task_start", task_id=task.id)
        t0 = trio.current_time()
        outcome = Outcome(answer="", final=False)
        timeout = self.scenario.protocol.task_timeout_s
        with trio.move_on_after(timeout) as scope:
            try:
                outcome = await protocol.run_task(task, ctx)
            except BudgetExhausted as e:
                ctx.fail("unaware_of_termination", detail=str(e))
        if scope.cancelled_caught:
            ctx.fail("message_timeout", detail=f"task exceeded task_timeout_s={timeout:g}")
        latency = trio.current_time() - t0
        score = ctx.score(outcome.answer) if outcome.answer else Score(extracted="", correct=False)
        msgs, nbytes = self.journal.task_traffic(task.id)
        return {
            "task_id": task.id,
            "category": task.category,
            "answer": outcome.answer,
            "extracted": score.extracted,
            "gold": task.answer,
            "correct": bool(score.correct and outcome.final),
            "quality": _quality(score, outcome.final),
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


def _quality(score: Score, final: bool) -> float:
    """The task's graded quality (ROUGE where scored so, else 1/0); 0 without a final answer."""
    if not final:
        return 0.0
    return score.quality if score.quality is not None else float(score.correct)
