"""Launchers start agents for the runner and hand back an ``AgentHandle`` for each.

- ``base``: the ``Launcher`` and ``AgentHandle`` protocols and the ``AgentLaunch`` request.
- ``local``: one ``python -m agentsim agent`` OS process per agent on this host.
- ``forkserver``: one OS process per agent too, forked from a server that has imported the
  agent code and preloaded the engines (``forkserver_main``); the default on Linux.
- ``inprocess``: each agent's main loop as a trio task over the in-memory bus (simulation).
- ``ray/``: each agent placed on a Ray cluster node by a supervisor actor (optional extra).

A new launcher (Ray actors on a cluster) is one more module here that
implements ``Launcher``; the runner sees only handles. Launchers sit in the ``run`` layer:
they may import agent, bus and engines; never report or cli.
"""
