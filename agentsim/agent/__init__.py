"""Agent processes: the main loop (``core``) and the process entry point (``process``).

The same loop runs in an OS process over a DEALER socket and in-process over the simulated
bus. Layer: may import the bottom modules and bus, engines, tools, tasks; never protocols,
environments, run, report or cli.
"""
