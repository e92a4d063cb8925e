"""One run of a scenario: everything between a checked scenario and a finished run folder.

- ``assemble``: ``assemble()`` builds a run (folder, bus, launcher, faults, runner) — the
  one assembly the CLI, simulation, replay and sweeps use; returns what it made.
- ``runner``: the ``Runner`` (lifecycle: broker, agents, tasks, shutdown).
- ``agents``: the ``Roster`` — each agent's state, launch, ready, liveness, stop.
- ``requests``: the request table (pending / answered / timed-out requests, late replies).
- ``context``: ``TaskContext``, the ``TaskDriver`` protocols talk to during one task.
- ``detectors``: deadlock, livelock and fault causes, as pure functions.
- ``faults``: process faults (kill, pause, slow) applied through agent handles.
- ``launchers/``: how agents start (local processes, in-process tasks).
- ``folder``: the run folder; ``work``: tasks + scorer + protocol; ``config``: per-agent
  engine config and sampling; ``errors``: ``RunSetupError`` (exit 2), ``RunError`` (exit 1).
- ``simulate``, ``replay``, ``explore``: simulation under trio's MockClock, replay from a
  journal, and the search for fault schedules that break invariants.

Layer: ``run`` may import protocols, environments, agent, bus, engines, tools, tasks and the
bottom modules (wire, chat, failures, journal, scenario schema); never report or cli. The
reports are written by a ``Reporter`` handed in from above.
"""
