"""A sweep's configurations run concurrently into one parent folder (``--parallel N``).

Each configuration is one whole run — its own runner, broker, agents and run folder, exactly
as in a serial sweep — so the results per configuration are the same; only the wall time
differs. Up to ``parallel`` run at once:

- locally, each as its own ``agentsim run SWEEP.toml --config LABEL --out PARENT`` process
  (a fresh interpreter per run: runs share nothing, and Ctrl-C reaches each runner, which
  writes its partial results as a serial run would);
- on Ray (configurations with ``run.launcher = "ray"``), each as a Ray task that runs the
  configuration's runner on some node of the cluster and hands its run folder back
  (``agentsim.run.launchers.ray.sweeps``); its agents are placed on the cluster as usual.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import trio

from agentsim.run.folder import Reporter
from agentsim.run.work import Work
from agentsim.scenario.schema import Scenario

EXIT_INTERRUPTED = 130


class Configuration(msgspec.Struct, frozen=True, kw_only=True):
    """One sweep configuration to run: its label, effective scenario and work."""

    label: str
    scenario: Scenario
    work: Any  # Work (a NamedTuple of tasks, scorer, protocol class)


class Outcome(msgspec.Struct, kw_only=True):
    """How one configuration ended: exit code, its one result line, its run folder."""

    label: str
    code: int
    line: str
    folder: str = ""


Progress = Callable[[Outcome, int, int], None]


async def _sigint_then_kill(proc: trio.Process) -> None:
    """Cancelling a configuration (Ctrl-C): its runner shares the terminal's process group,
    so it has usually had the SIGINT already and is writing its partial results; if it is
    still running after 2 s it gets one, and SIGKILL after 10 s more."""
    for signum, wait_s in ((None, 2.0), (signal.SIGINT, 10.0)):
        if signum is not None:
            proc.send_signal(signum)
        with trio.move_on_after(wait_s):
            await proc.wait()
            return
    proc.kill()


async def _local(cfg: Configuration, cli: Sequence[str], parent: Path) -> Outcome:
    cmd = [sys.executable, "-m", "agentsim", *cli, "--config", cfg.label, "--out", str(parent)]
    done = await trio.run_process(
        [*cmd, "--quiet"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        deliver_cancel=_sigint_then_kill,
    )
    out = done.stdout.decode(errors="replace").strip().splitlines()
    err = done.stderr.decode(errors="replace").strip().splitlines()
    line = (out or err or [f"exit status {done.returncode}"])[-1]
    if done.returncode != 0 and err:
        line = err[-1]
    folder = line.split(":", 1)[0] if done.returncode == 0 and out else ""
    return Outcome(label=cfg.label, code=done.returncode, line=line, folder=folder)


def run_parallel(
    configs: list[Configuration],
    *,
    parallel: int,
    cli: Sequence[str],
    parent: Path,
    source: str,
    base_dir: Path,
    reporter: Reporter,
    progress: Progress,
) -> list[Outcome]:
    """Run ``configs`` with at most ``parallel`` at once; returns their outcomes in order.

    Args:
        configs: the configurations (their labels are what ``--config`` selects).
        parallel: how many run at once.
        cli: the command line that names the sweep for a local child (``run FILE [--seed N]
            [--limit N]``); the child adds ``--config LABEL --out PARENT``.
        parent: the sweep's parent folder: every run folder lands here.
        source: the sweep file's text (kept as each run's ``scenario.toml``).
        base_dir: the sweep file's folder.
        reporter: writes a run's reports (Ray tasks call it on their node).
        progress: called as each configuration ends: ``(outcome, done, total)``.

    A configuration interrupted by Ctrl-C ends with code 130 (its partial folder is kept).
    """
    outcomes: dict[str, Outcome] = {}
    on_ray = [c for c in configs if c.scenario.run.launcher == "ray"]
    remote: Any = None
    if on_ray:
        from agentsim.run.launchers.ray import sweeps

        remote = sweeps.RaySweep([c.scenario for c in on_ray], parallel=parallel, reporter=reporter)

    async def one(cfg: Configuration, limiter: trio.CapacityLimiter) -> None:
        async with limiter:
            if cfg.scenario.run.launcher == "ray":
                code, line, folder = await remote.run(
                    cfg.label, cfg.scenario, cfg.work, source, base_dir, parent
                )
                outcome = Outcome(label=cfg.label, code=code, line=line, folder=folder)
            else:
                outcome = await _local(cfg, cli, parent)
        outcomes[cfg.label] = outcome
        progress(outcome, len(outcomes), len(configs))

    async def main() -> None:
        limiter = trio.CapacityLimiter(max(1, parallel))
        async with trio.open_nursery() as nursery:
            for cfg in configs:
                nursery.start_soon(one, cfg, limiter)

    try:
        trio.run(main)
    except KeyboardInterrupt:
        for cfg in configs:
            outcomes.setdefault(
                cfg.label, Outcome(label=cfg.label, code=EXIT_INTERRUPTED, line="interrupted")
            )
    finally:
        if remote is not None:
            remote.close()
    return [outcomes[c.label] for c in configs]


__all__ = ["Configuration", "Outcome", "Work", "run_parallel"]
