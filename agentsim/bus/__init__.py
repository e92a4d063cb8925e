"""The message bus: the runner's broker and everything between it and the sockets.

``broker`` (sequencing, journaling, routing, the ``Transport`` protocol), ``zsock`` (pyzmq on
trio: FD + EVENTS, no polling, no threads), ``zmq_transport`` (ROUTER / DEALER), ``memory``
(the in-process hub for simulation), ``faults`` / ``faults_seeded`` (the message fault layer),
``auth`` (CURVE keys and the ZAP handler). Layer: may import the bottom modules (wire,
journal, failures); never agent, protocols, run, report or cli (nor engines, tools, tasks:
it needs nothing of them).
"""
