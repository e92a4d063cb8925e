"""Agent processes: the main loop and the process entry point."""
