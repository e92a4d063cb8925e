"""Summaries and reports, computed from the journal alone."""
