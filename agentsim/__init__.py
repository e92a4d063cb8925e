"""agentsim: study small language models deployed as agents.

Layers, bottom to top; a module imports only its own layer and the ones below, never above,
not even inside a function (``tests/core/test_architecture.py`` checks it):

1. ``wire``, ``chat``, ``failures``, ``journal``, ``util``, ``logs``, ``energy``, ``scenario``
   (schema and errors): messages, taxonomy, the journal file, the scenario's shape.
2. ``bus/``, ``engines/``, ``tools/``, ``tasks/``: transport, models, tools, task suites.
3. ``agent/``: the agent process.
4. ``protocols/``, ``environments/``: what agents do together, over the driver API.
5. ``run/`` (with ``scenario.validate`` and ``scenario.sweep``): one run, assembled once.
6. ``report/``: summaries and pages from a journal.
7. ``cli/``: the command line.

``agentsim.testing`` stands beside them as a leaf: the tests import it, product code never
does. See ``docs/architecture.md``.
"""

import sys as _sys

__version__ = "0.1.0"

if "structlog" not in _sys.modules and "rich" not in _sys.modules:
    # structlog imports rich (when installed) at import time only to pretty-print tracebacks
    # in its console renderer; agentsim's logs are JSON lines or plain console lines, and that
    # import is ~60 ms of CPU in every agent process's start. Import structlog without it;
    # rich itself stays importable (the CLI's progress display uses it).
    _sys.modules["rich"] = None  # type: ignore[assignment]  # makes `import rich` fail
    try:
        import structlog as _structlog  # noqa: F401
    finally:
        del _sys.modules["rich"]
