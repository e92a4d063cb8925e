"""One run of a scenario (filled in by the next step)."""
