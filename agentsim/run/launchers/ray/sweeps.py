"""Sweep configurations as Ray tasks: each runs one whole run on some node of the cluster.

The task assembles the configuration's run in a node-local temporary folder — its runner
binds the broker on that node, its agents are placed on the cluster by the Ray launcher like
any Ray run — and returns the finished run folder as a gzip'd tar, which the driver unpacks
into the sweep's parent folder (as untrusted input: no absolute paths, links or names
outside the one run folder). A task runs once (no retries) in a worker of its own
(``max_calls=1``), so runs never share a process.
"""

from __future__ import annotations

import io
import logging
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import trio

from agentsim.run.assemble import assemble
from agentsim.run.errors import RunError, RunSetupError
from agentsim.run.folder import Reporter
from agentsim.run.launchers.ray.launcher import resolved
from agentsim.run.launchers.ray.placement import local_cluster
from agentsim.scenario.schema import Scenario
from agentsim.util import find_exception

RUNNER_CPUS = 1.0
"""What a configuration's runner (broker, protocol, journal) asks of its node."""


def run_configuration(
    scenario: Scenario, work: Any, source: str, base_dir: str, reporter: Reporter
) -> dict[str, Any]:
    """The body of the Ray task: one run, its folder packed; ``code`` as the CLI's exit code."""
    tmp = Path(tempfile.mkdtemp(prefix="agentsim-sweep-"))
    try:
        try:
            made = assemble(
                scenario, tmp, base_dir=Path(base_dir), source=source, work=work, reporter=reporter
            )
        except RunSetupError as e:
            return {"code": 2, "line": str(e), "name": "", "tar": b"", "summary": {}}
        code, line, summary = 0, "", {}
        try:
            summary = trio.run(made.run)
        except BaseException as exc:
            err = find_exception(exc, RunError)
            if err is None:
                raise
            code, line = 1, f"run failed: {err}"
        finally:
            made.close()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(made.path, arcname=made.path.name)
        return {
            "code": code,
            "line": line,
            "name": made.path.name,
            "tar": buf.getvalue(),
            "summary": summary,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def unpack(data: bytes, name: str, parent: Path) -> Path:
    """A run folder sent back by a task, unpacked under ``parent`` (a fresh name if taken).

    Raises:
        RunError: the archive holds anything but regular files and folders under ``name``.
    """
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if (
                    not parts
                    or parts[0] != name
                    or ".." in parts
                    or Path(member.name).is_absolute()
                    or not (member.isfile() or member.isdir())
                ):
                    raise RunError(f"run folder {name!r} from a Ray task holds {member.name!r}")
            tar.extractall(staging, filter="data")
        target = parent / name
        n = 1
        while target.exists():
            n += 1
            target = parent / f"{name}-{n}"
        (staging / name).rename(target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _summary_line(path: Path, summary: dict[str, Any]) -> str:
    lo, hi = summary.get("accuracy_ci95", [0.0, 0.0])
    return (
        f"{path}: {summary.get('tasks_done', 0)} tasks, accuracy {summary.get('accuracy', 0.0):.3f} "
        f"[{lo:.3f}, {hi:.3f}], completion {summary.get('completion_rate', 0.0):.3f}, "
        f"failures {summary.get('failures_total', 0)} (on Ray)"
    )


def _started(scenario: Scenario) -> list[str]:
    """The agents a run of ``scenario`` starts itself (as the runner decides)."""
    used = (
        scenario.protocol.agents
        if not scenario.environment and scenario.protocol.agents
        else list(scenario.agents)
    )
    return [a for a in used if not scenario.agents[a].remote]


class RaySweep:
    """The driver's side: joins the cluster once, runs configurations as tasks."""

    def __init__(self, scenarios: list[Scenario], *, parallel: int, reporter: Reporter) -> None:
        import ray

        self.reporter = reporter
        self._owns = False
        if not ray.is_initialized():
            address = scenarios[0].run.ray_address
            kwargs: dict[str, Any] = {
                "logging_level": logging.WARNING,
                "log_to_driver": False,
                "namespace": "agentsim",
            }
            if address == "local":  # sized for `parallel` copies of the largest configuration
                biggest = max(
                    ([sc.agents[a].resources for a in _started(sc)] for sc in scenarios),
                    key=lambda specs: sum(x.num_cpus for x in specs),
                )
                sizing = local_cluster(biggest, copies=parallel, extra_cpus=RUNNER_CPUS)
                kwargs.update(address="local", include_dashboard=False, **sizing)
            else:
                kwargs["address"] = address
            try:
                ray.init(**kwargs)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise RunSetupError(
                    f"run.ray_address = {address!r}: cannot join a Ray cluster ({e}); start one "
                    'with `ray start --head`, or set run.ray_address = "local"'
                ) from None
            self._owns = True
        self._task = ray.remote(num_cpus=RUNNER_CPUS, max_retries=0, max_calls=1)(run_configuration)

    async def run(
        self, label: str, scenario: Scenario, work: Any, source: str, base_dir: Path, parent: Path
    ) -> tuple[int, str, str]:
        """Run one configuration as a task: ``(exit code, result line, run folder)``."""
        import ray

        protocol = getattr(work, "protocol", None)
        module = sys.modules.get(getattr(protocol, "__module__", ""))
        if module is not None and module.__name__.startswith("agentsim_user_"):
            # a protocol loaded from the user's file: its node cannot import it by name
            ray.cloudpickle.register_pickle_by_value(module)
        ref = self._task.remote(scenario, work, source, str(base_dir), self.reporter)
        try:
            got = await resolved(ref)
        except ray.exceptions.RayError as e:
            text = " ".join(str(e).split())[-400:]
            return 1, f"{label}: run failed on Ray: {text}", ""
        except BaseException:
            ray.cancel(ref, force=True)  # its worker dies, and with it the actors it owned
            raise
        if not got["name"]:
            return int(got["code"]), str(got["line"]), ""
        path = unpack(got["tar"], got["name"], parent)
        line = got["line"] or _summary_line(path, got["summary"])
        return int(got["code"]), line, str(path)

    def close(self) -> None:
        if self._owns:
            import ray

            ray.shutdown()
            self._owns = False
