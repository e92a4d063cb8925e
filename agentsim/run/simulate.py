"""Deterministic simulation: a whole run in one process, on trio's clock.

Broker, journal, fault layer, protocol and detectors are exactly those of a real run; the
agents are trio tasks over the in-memory bus. Under ``trio.testing.MockClock`` no time passes
for real, so hundreds of runs (``agentsim explore``) take seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agentsim.bus.faults import FaultLayer
from agentsim.engines import Engine, EngineConfig, make_engine
from agentsim.run.assemble import AssembledRun, assemble
from agentsim.run.folder import Reporter
from agentsim.run.work import Work, load_work
from agentsim.scenario.schema import Scenario
from agentsim.tasks.base import Scorer, Task


async def simulate(
    scenario: Scenario,
    out: Path,
    *,
    tasks: list[Task] | None = None,
    scorer: Scorer | None = None,
    faults: FaultLayer | None = None,
    engine_factory: Callable[[EngineConfig], Engine] = make_engine,
    base_dir: Path | None = None,
    reporter: Reporter | None = None,
) -> AssembledRun:
    """Run ``scenario`` in-process to the end; returns what ran (folder, runner, summary).

    ``tasks`` / ``scorer`` replace the scenario's; ``faults`` replaces its fault layer.
    """
    base = base_dir or Path.cwd()
    loaded = load_work(scenario, base)
    work = Work(
        tasks if tasks is not None else loaded.tasks, scorer or loaded.scorer, loaded.protocol
    )
    made = assemble(
        scenario,
        out,
        base_dir=base,
        work=work,
        argv=["simulate"],
        simulated=True,
        engine_factory=engine_factory,
        faults=faults,
        reporter=reporter,
    )
    await made.run()
    return made
