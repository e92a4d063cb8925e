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

__version__ = "0.1.0"
