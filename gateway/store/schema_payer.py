"""Reusable payer numbers (migration 0016), on the one ``MetaData`` of the schema.

``payer_numbers``: one lasting Pay-easy お客様番号 per (biller, customer_no), with its 確認番号.
The number is derived from the row's ``id`` (gateway.mappers.mpn.numbers.payer_number, 18
digits), written in the transaction that inserts the row, so ``customer_number`` is NULL only
inside that transaction. ``(institution_code, customer_number)`` is unique, as a bill's is, and
the lengths (18 here, 16 for a bill) keep the two kinds apart under one 収納機関番号.

``asked_bill_id`` / ``asked_on``: the bill the last 照会 of the number answered and the business
date of that 照会 (NULL after a 照会 that found nothing to pay): a 消込 of that day pays that
bill, so that the payer pays what the ATM showed (gateway.networks.mpn_payer).

``revoked_at`` / ``revoked_by`` (migration 0020): when and by whom (``key:<key id>``) the biller
revoked the number; NULL while it is live. One *live* number per (biller, customer_no) (a
unique index ``WHERE revoked_at IS NULL``): a revoked row stays, so its お客様番号 stays taken
and is never given again, and the customer's next number is a new row, a new serial.
"""

from __future__ import annotations

from sqlalchemy import Column, Date, ForeignKey, Index, String, Table, UniqueConstraint, text

from gateway.store.schema_base import BigId, UTCDateTime, metadata

payer_numbers = Table(
    "payer_numbers",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), nullable=False),
    Column("customer_no", String(64), nullable=False),
    Column("institution_code", String(5), nullable=False),
    Column("customer_number", String(20)),
    Column("confirmation_number", String(6), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("asked_bill_id", BigId, ForeignKey("bills.id")),
    Column("asked_on", Date),
    Column("revoked_at", UTCDateTime),
    Column("revoked_by", String(64)),
    UniqueConstraint("institution_code", "customer_number"),
)
LIVE = text("revoked_at IS NULL")
Index(
    "uq_payer_numbers_live",
    payer_numbers.c.biller_id,
    payer_numbers.c.customer_no,
    unique=True,
    sqlite_where=LIVE,
    postgresql_where=LIVE,
)
