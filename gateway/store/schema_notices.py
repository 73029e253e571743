"""Notices and the fallback after a failed debit (migration 0015), on the one ``MetaData``.

The notices themselves are rows of ``notifications`` (migration 0007, widened by 0015 in
:mod:`gateway.store.schema`): one outbox for e-mail and SMS. Here:

``notice_optouts``: a customer (``biller_id``, ``customer_no``) who asked not to get e-mail or
SMS notices; checked when a notice is queued and again when it is sent.

``notice_cursors``: how far the notice job has read each biller's events (its ``seq``), moved in
the transaction that queues the notices and applies the fallbacks those events call for, so each
event is acted on once whatever the number of daemons. A biller that has no row starts at 0;
the migration starts the billers that exist then at their newest event (nothing old is sent).

``bill_fallbacks``: what the gateway did after each failed debit of a bill, one row per
(bill, debit date): ``redebit`` (a 再振替 on ``redebit_date``), ``reissue`` (the channels in
``channels`` added, transfer taken off) or ``none`` (with ``reason``). A bill is debited again
once at most: the count of its ``redebit`` rows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    String,
    Table,
    UniqueConstraint,
)

from gateway.store.schema_base import BigId, UTCDateTime, metadata

notice_optouts = Table(
    "notice_optouts",
    metadata,
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), primary_key=True),
    Column("customer_no", String(64), primary_key=True),
    Column("email", Boolean, nullable=False),  # True: no e-mail notice
    Column("sms", Boolean, nullable=False),  # True: no SMS notice
    Column("updated_at", UTCDateTime, nullable=False),
)

notice_cursors = Table(
    "notice_cursors",
    metadata,
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)

bill_fallbacks = Table(
    "bill_fallbacks",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("bill_id", BigId, ForeignKey("bills.id"), nullable=False),
    Column("biller_id", String(32), ForeignKey("billers.biller_id"), nullable=False),
    Column("debit_date", Date, nullable=False),  # of the failed debit
    Column("result_code", String(2), nullable=False),
    Column("action", String(16), nullable=False),  # redebit, reissue, none
    Column("redebit_date", Date),
    Column("channels", String(32)),  # those added by a reissue, "cvs,payeasy"
    Column("reason", String(200)),  # why nothing was done (action none)
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("bill_id", "debit_date"),
    Index(None, "biller_id", "created_at"),
)
