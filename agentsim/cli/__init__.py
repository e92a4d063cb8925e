"""The command line: ``agentsim run|validate|report|export|compare|replay|explore|keys|agent|models``.

- ``main``: argument parsing and dispatch; a command's module is imported only when that
  command runs, so ``agentsim agent`` (started once per agent) stays light.
- ``errors``: the exit codes, ``UsageError`` and the one error formatter.
- ``common``: loading a scenario and its work with one-line errors; running an assembled run.
- one module per subcommand, each with ``HELP``, ``add_arguments(parser)`` and ``main(args)``.

The CLI is the top layer: it may import every other layer, and nothing imports it except
``agentsim.__main__``.
"""

from agentsim.cli.main import main

__all__ = ["main"]
