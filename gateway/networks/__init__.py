"""The payment networks, one module per network.

``base`` says what a network contributes (:class:`~gateway.networks.base.Network`: its channel,
its limits, how its incoming messages find their bills, its services and readiness);
``registry`` holds every network, and the composition root wires each by walking it.
``issuer`` derives every identifier a bill gets from its networks (the CVS slip, the Pay-easy
numbers); ``cvs``, ``mpn`` and ``zengin`` are each network's adapter: what brings its payments
back to the ledger (gateway.ingest) and the services the composition root starts for it.
"""
