"""Private temporary folders for a run (its ``ipc://`` socket, explore's scratch runs) that
leave nothing behind.

Each folder is ``$TMPDIR/agentsim-*`` (mode 0700) with an ``owner`` file naming the process
that made it. The owner removes it when the run ends — finished, failed or interrupted. If
the owner is killed outright, the agents that notice their runner is gone remove the
socket folder (``release_if_orphaned``), and the next run sweeps any folder whose owner is
dead (``sweep_stale``). Only folders of this user with an ``owner`` file whose process is gone
are ever removed: another live run's folder is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "agentsim-"
OWNER = "owner"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, and not ours to judge
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def private_dir(prefix: str = PREFIX) -> Path:
    """A new 0700 folder under the temp dir, owned (``owner`` file) by this process."""
    sweep_stale()
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o700)
    (d / OWNER).write_text(str(os.getpid()))
    return d


def _orphaned(d: Path) -> bool:
    """``d`` is one of our folders and the process that made it is gone."""
    try:
        if not d.name.startswith(PREFIX) or d.stat().st_uid != os.getuid():
            return False
        pid = int((d / OWNER).read_text().strip() or "0")
    except (OSError, ValueError):
        return False
    return pid > 0 and not _alive(pid)


def sweep_stale() -> list[Path]:
    """Remove the folders left by runs whose process died; returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(Path(tempfile.gettempdir()).glob(f"{PREFIX}*"))
    except OSError:
        return removed
    for d in entries:
        if d.is_dir() and _orphaned(d):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def release_if_orphaned(endpoint: str) -> None:
    """An agent whose runner died: remove the runner's ``ipc://`` folder if it is ours and
    its owner is gone (the first agent to get here does it; the rest find nothing)."""
    if not endpoint.startswith("ipc://"):
        return
    d = Path(endpoint.removeprefix("ipc://")).parent
    if d.parent == Path(tempfile.gettempdir()) and _orphaned(d):
        with contextlib.suppress(OSError):
            shutil.rmtree(d)
