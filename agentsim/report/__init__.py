"""Summaries and reports, computed from the journal alone.

``summary`` (the numbers), ``markdown`` / ``html`` / ``costs`` (the pages), ``writer``
(``write_reports``: rebuild a run folder's reports), ``compare`` (across runs), ``export``
(OpenAI transcripts, CSV, Parquet), ``progress`` (the live bar). Layer: may import run and
everything below (it reads what a run wrote); never cli.
"""
