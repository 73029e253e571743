"""The operator's tables (migration 0011), on the one ``MetaData`` of the schema.

``audit_log``: every operator action — through the admin API (``who`` is ``key:<key_id>``) or
``gateway-admin`` (``cli:<unix user>``) — and the daemon's own settlement and retention runs
(``system:<job>``), written in the transaction of the action itself, so an action that rolled
back left no line and no action is without one (a retention run: after its last batch).
``before`` and ``after`` are the JSON of what changed (never a key, a hash or a secret).
"""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table, Text

from gateway.store.schema_base import BigId, UTCDateTime, metadata

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),  # "key:key_…", "cli:<user>", "system:<job>"
    Column("action", String(40), nullable=False),  # "biller.suspend", "refund_case.resolve", …
    Column("target", String(120), nullable=False),  # "biller:gas", "refund_case:rc_…", …
    Column("biller_id", String(32)),  # the biller concerned, if any (not a foreign key: kept)
    Column("before", Text),  # JSON, or NULL (a creation)
    Column("after", Text),  # JSON, or NULL (a deletion)
    Index(None, "target", "id"),
    Index(None, "biller_id", "id"),
)
