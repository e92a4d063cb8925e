"""The Ray launcher (``[run] launcher = "ray"``): agents placed on a Ray cluster.

- ``launcher``: ``RayLauncher`` (join the cluster, check that agents fit, placement group,
  one supervisor actor per agent) and ``RayHandle`` (the remote agent as the runner sees it).
- ``supervisor``: ``AgentSupervisor``, the actor on a node that runs one agent process there.
- ``placement``: resources → actor options and bundles; which nodes could hold an agent.
- ``sweeps``: one sweep configuration as a Ray task (its run folder comes back as bytes).

Ray is an optional extra (``pip install "agentsim[ray]"``): nothing here is imported unless
a scenario asks for it, and ``agentsim validate`` says so in one line when it is missing.
The bus stays ZeroMQ (CURVE over TCP to the runner's broker) and the journal stays in the
runner's run folder; Ray only places and supervises processes.
"""
