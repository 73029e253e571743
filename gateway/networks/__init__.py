"""The payment networks, one module per network.

``issuer`` derives every identifier a bill gets from its networks (the CVS slip, the Pay-easy
numbers); ``cvs``, ``mpn`` and ``zengin`` are each network's adapter: what brings its payments
back to the ledger (gateway.ingest) and the services the composition root starts for it.
"""
