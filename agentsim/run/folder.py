"""The run folder: ``runs/<scenario>-<timestamp>/`` and what the run itself writes there.

The run writes ``scenario.toml`` (as given), ``scenario.json`` (as run), ``env.json``,
``journal.jsonl``, ``results.jsonl`` and ``logs/``. The reports (``summary.json``,
``report.md``, ``report.html``) are built from the journal by the layer above (``report``),
handed in as a ``Reporter``: the run layer never imports the report layer.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec

from agentsim.journal import Journal
from agentsim.tools.python import python_sandbox_env

_enc = msgspec.json.Encoder()

Reporter = Callable[[Path], dict[str, Any]]
"""Builds the reports of a finished (or partial) run folder from its journal; returns the
summary. ``agentsim.report.writer.write_reports`` is the one the CLI uses."""


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment(seed: int, argv: list[str]) -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "seed": seed,
        "argv": argv,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": {
            p: _version(p)
            for p in (
                "agentsim",
                "trio",
                "pyzmq",
                "msgspec",
                "structlog",
                "numpy",
                "apache-tvm",
                "tokenizers",
            )
        },
    }


class RunFolder:
    """Creates the folder and writes ``scenario.toml``, ``env.json``, results and summaries."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id

    @classmethod
    def create(
        cls,
        out: Path,
        name: str,
        scenario_text: str,
        *,
        seed: int,
        argv: list[str],
        scenario: Any = None,
        base_dir: Path | None = None,
    ) -> RunFolder:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = out / f"{name}-{stamp}"
        path = base
        n = 1
        while True:
            try:
                path.mkdir(parents=True)
                break
            except FileExistsError:
                n += 1
                path = Path(f"{base}-{n}")
        folder = cls(path, path.name)
        (path / "scenario.toml").write_text(scenario_text, encoding="utf-8")
        if scenario is not None:  # the effective scenario (one sweep config, overrides applied)
            (path / "scenario.json").write_bytes(msgspec.json.format(msgspec.json.encode(scenario)))
        env = environment(seed, argv)
        env["scenario_dir"] = str(base_dir.resolve()) if base_dir is not None else ""
        if scenario is not None:
            tools = [t for agent in scenario.agents.values() for t in agent.tools]
            sandbox = python_sandbox_env(tools, scenario.run.python_sandbox)
            if sandbox is not None:
                env["python_sandbox"] = sandbox
        (path / "env.json").write_text(json.dumps(env, indent=2) + "\n", encoding="utf-8")
        (path / "results.jsonl").touch()
        return folder

    def append_result(self, result: dict[str, Any]) -> None:
        with open(self.path / "results.jsonl", "ab") as fh:
            fh.write(_enc.encode(result) + b"\n")

    def log_tail(self, agent: str, lines: int = 5) -> str:
        log = self.path / "logs" / f"{agent}.log"
        try:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return ""
        return ("; last log lines: " + " | ".join(t.strip()[:200] for t in tail)) if tail else ""

    def finish(
        self, journal: Journal, *, partial: bool, reporter: Reporter | None = None
    ) -> dict[str, Any]:
        """Close the journal, then build the reports from it (the summary, or ``{}``)."""
        journal.write("run_end", completed=not partial)
        journal.close()
        return reporter(self.path) if reporter is not None else {}
