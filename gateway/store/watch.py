"""The store side of the operator's watch (gateway.billing.watch): what the ledger holds that
no counter can say — the payments still pending and the oldest 速報 waiting for its 確報, refund
cases left open, account-transfer debits whose result has not come back, webhook deliveries
waiting per endpoint. One read-only transaction of a few aggregate queries: the payments and
request items through the indexes of migration 0012 (by status, by result), so neither reads a
table that grows with the ledger; refund cases are few; webhook deliveries are read as the
delivery service's queue depth reads them (those not final, by due_at), and are purged after
webhooks.log_retention_days."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from gateway.model import PaymentStatus, RefundStatus
from gateway.store.schema import (
    payments,
    refund_cases,
    webhook_deliveries,
    webhook_endpoints,
    zengin_request_items,
)


@dataclass(frozen=True)
class WatchFigures:
    """The figures of one watch run."""

    pending: dict[str, int] = field(default_factory=dict)  # channel -> payments pending
    oldest_pending: dict[str, datetime] = field(default_factory=dict)  # channel -> paid_at
    open_cases: dict[str, int] = field(default_factory=dict)  # reason -> n
    oldest_open_case: datetime | None = None  # opened_at
    unanswered_debits: int = 0  # debit date before today, no result from the bank
    oldest_unanswered_debit: date | None = None
    webhook_backlog: dict[str, int] = field(default_factory=dict)  # endpoint id -> not final


def watch_figures(conn: Connection, today: date) -> WatchFigures:
    """The figures as of now; ``today`` is the JST date (a debit dated before it is due back)."""
    p = payments.c  # by the index (status, channel, paid_at): the pending ones only
    pending: dict[str, int] = {}
    oldest_pending: dict[str, datetime] = {}
    for channel, n, oldest in conn.execute(
        select(p.channel, func.count(), func.min(p.paid_at))
        .where(p.status == PaymentStatus.PENDING.value)
        .group_by(p.channel)
    ):
        pending[channel] = int(n)
        if oldest is not None:
            oldest_pending[channel] = oldest

    r = refund_cases.c
    open_cases: dict[str, int] = {}
    oldest_case: datetime | None = None
    for reason, n, oldest in conn.execute(
        select(r.reason, func.count(), func.min(r.opened_at))
        .where(r.status == RefundStatus.OPEN.value)
        .group_by(r.reason)
    ):
        open_cases[reason] = int(n)
        if oldest is not None and (oldest_case is None or oldest < oldest_case):
            oldest_case = oldest

    i = zengin_request_items.c  # written to the outbox or not: the bank has not answered
    unanswered, oldest_debit = conn.execute(
        select(func.count(), func.min(i.debit_date)).where(
            and_(i.result_code.is_(None), i.debit_date < today)
        )
    ).one()

    d = webhook_deliveries.c  # by the index on due_at: NULL once a delivery is final
    waiting: dict[int, int] = {
        pk: int(n)
        for pk, n in conn.execute(
            select(d.endpoint_pk, func.count()).where(d.due_at.is_not(None)).group_by(d.endpoint_pk)
        )
    }
    e = webhook_endpoints.c
    backlog = {
        endpoint_id: waiting[pk]
        for pk, endpoint_id in conn.execute(
            select(e.id, e.endpoint_id).where(e.id.in_(sorted(waiting)))
        )
    }
    return WatchFigures(
        pending=pending,
        oldest_pending=oldest_pending,
        open_cases=open_cases,
        oldest_open_case=oldest_case,
        unanswered_debits=int(unanswered),
        oldest_unanswered_debit=oldest_debit,
        webhook_backlog=backlog,
    )
