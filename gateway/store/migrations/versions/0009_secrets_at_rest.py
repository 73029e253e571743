"""secrets at rest: page tokens as hashes, webhook secrets encrypted, no secret in replays

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 07:30:00

- ``bills.page_token`` keeps the SHA-256 of the page token. The random tokens issued before
  move, hashed, to ``bills.legacy_page_token`` (their links keep working); ``page_token`` is
  ``legacy:<id>`` until the daemon, which has ``[secrets] key``, fills in the hash of the bill's
  derived token (gateway.secretbox) at its next start.
- ``webhook_endpoints.secret`` (100 characters: the encrypted form takes 99) is encrypted by
  the daemon at its next start; the plain secrets are read as they are until then.
- Stored replays (``idempotency_keys.response_body``) lose ``secret`` and ``page_url``, and the
  events' bills lose ``page_url``: replays recompute them, events no longer carry the URL.
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

BATCH = 1000


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _edited(text: str, edit):
    """The JSON document ``text`` after ``edit`` (document -> changed?), or None if unchanged."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if isinstance(doc, dict) and edit(doc):
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    return None


def _rewrite_replays(conn) -> None:
    t = sa.table('idempotency_keys', sa.column('scope'), sa.column('idempotency_key'), sa.column('response_body'))
    rows = conn.execute(sa.select(t.c.scope, t.c.idempotency_key, t.c.response_body)).all()
    for scope, key, text in rows:  # a few days of requests: kept at most 30 days
        dumped = _edited(text, _strip_replay)
        if dumped is not None:
            conn.execute(
                sa.update(t)
                .where(t.c.scope == scope, t.c.idempotency_key == key)
                .values(response_body=dumped)
            )


def _rewrite_events(conn) -> None:
    t = sa.table('events', sa.column('id'), sa.column('data'))
    last = 0
    while True:
        rows = conn.execute(
            sa.select(t.c.id, t.c.data).where(t.c.id > last).order_by(t.c.id).limit(BATCH)
        ).all()
        if not rows:
            return
        for event_id, text in rows:
            dumped = _edited(text, _strip_event)
            if dumped is not None:
                conn.execute(sa.update(t).where(t.c.id == event_id).values(data=dumped))
        last = rows[-1][0]


def _strip_replay(doc: dict) -> bool:
    found = "secret" in doc or "page_url" in doc
    doc.pop("secret", None)
    doc.pop("page_url", None)
    return found


def _strip_event(doc: dict) -> bool:
    bill = doc.get("bill")
    if isinstance(bill, dict) and "page_url" in bill:
        del bill["page_url"]
        return True
    return False


def upgrade() -> None:
    conn = op.get_bind()
    # A new nullable column and a unique index: no copy of the table (SQLite would refuse to
    # drop a table that payments and slips refer to).
    op.add_column('bills', sa.Column('legacy_page_token', sa.String(length=64), nullable=True))
    bills = sa.table('bills', sa.column('id'), sa.column('page_token'), sa.column('legacy_page_token'))
    last = 0
    while True:
        rows = conn.execute(
            sa.select(bills.c.id, bills.c.page_token)
            .where(bills.c.id > last, bills.c.legacy_page_token.is_(None))
            .order_by(bills.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        for bill_id, token in rows:
            conn.execute(
                sa.update(bills)
                .where(bills.c.id == bill_id)
                .values(legacy_page_token=_sha256(token), page_token=f"legacy:{bill_id}")
            )
        last = rows[-1][0]
    op.create_index(op.f('ix_bills_legacy_page_token'), 'bills', ['legacy_page_token'], unique=True)

    _rewrite_replays(conn)
    _rewrite_events(conn)


def downgrade() -> None:
    # The tokens and replays cannot be restored (only their hashes are kept); the encrypted
    # webhook secrets stay encrypted (the code of 0008 cannot read them: restore a backup).
    op.drop_index(op.f('ix_bills_legacy_page_token'), table_name='bills')
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE bills DROP COLUMN legacy_page_token')
    else:
        op.drop_column('bills', 'legacy_page_token')
