"""The deterministic simulation of the whole gateway (``python -m simulators.world``).

The real gateway code — the CVS link protocol, the mappers, the ingest, the ledger, the store
on SQLite or PostgreSQL, webhook delivery, settlement, the MPN answers, the Zengin files — runs
on one simulated clock against the simulated agency, MPN center, bank and webhook receivers,
all drawn from one seed, under the seed's faults (network, database, crashes, time). After each
seed the invariants (:mod:`simulators.world.invariants`) are held against the database and the
peers' own records. See docs/testing.md, "Deterministic simulation".
"""
