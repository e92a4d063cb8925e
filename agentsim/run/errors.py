"""The two ways a run fails before or while it runs, by how the caller recovers.

Kept in a module of their own (no imports) so the CLI can name them without loading the run.
"""

from __future__ import annotations


class RunSetupError(ValueError):
    """Bad input found while building a run (fault table, keys, endpoint, replay folder):
    the user fixes the input — one line, exit 2."""


class RunError(Exception):
    """The run could not complete (exit 1): an agent never became ready, for instance."""
