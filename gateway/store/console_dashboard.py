"""What the console's dashboard counts, per channel, for one biller or every biller.

- :func:`channel_totals`: in ``[start, end)``, the payments received (their first report: a
  速報, a 消込, a transfer result, or a 確報 that came first), confirmed and voided, and the
  double payments (refund cases opened for one), each as a count and a sum of yen.
- :func:`daily_collections`: live payments (速報 or confirmed, not voided) per JST day of
  payment and channel.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from gateway.fee_model import jst_midnight
from gateway.model import PaymentStatus, RefundReason
from gateway.store.schema import payments, refund_cases
from gateway.store.settlements import jst_day

Totals = dict[str, dict[str, tuple[int, int]]]  # channel -> figure -> (count, yen)
LIVE = (PaymentStatus.PENDING.value, PaymentStatus.CONFIRMED.value)


def _biller(column: ColumnElement[str], biller_id: str | None) -> list[ColumnElement[bool]]:
    return [] if biller_id is None else [column == biller_id]


def channel_totals(
    conn: Connection, biller_id: str | None, start: datetime, end: datetime
) -> Totals:
    c = payments.c
    found: Totals = {}
    for figure, column in (
        ("received", c.created_at),
        ("confirmed", c.confirmed_at),
        ("voided", c.voided_at),
    ):
        rows = conn.execute(
            select(c.channel, func.count(), func.coalesce(func.sum(c.amount), 0))
            .where(column >= start, column < end, *_biller(c.biller_id, biller_id))
            .group_by(c.channel)
        )
        for channel, count, total in rows:
            found.setdefault(channel, {})[figure] = (int(count), int(total))
    rc = refund_cases.c
    rows = conn.execute(
        select(c.channel, func.count(), func.coalesce(func.sum(rc.amount), 0))
        .select_from(refund_cases.join(payments, rc.payment_id == c.payment_id))
        .where(
            rc.reason == RefundReason.DOUBLE_PAYMENT.value,
            rc.opened_at >= start,
            rc.opened_at < end,
            *_biller(rc.biller_id, biller_id),
        )
        .group_by(c.channel)
    )
    for channel, count, total in rows:
        found.setdefault(channel, {})["double"] = (int(count), int(total))
    return found


def daily_collections(
    conn: Connection, biller_id: str | None, first: date, last: date
) -> list[tuple[date, str, int, int]]:
    """(day, channel, count, yen) of live payments made on each JST day of [first, last]."""
    c = payments.c
    day = jst_day(conn, c.paid_at).label("day")
    rows = conn.execute(
        select(day, c.channel, func.count(), func.sum(c.amount))
        .where(
            and_(
                c.status.in_(LIVE),
                c.paid_at >= jst_midnight(first),
                c.paid_at < jst_midnight(last + timedelta(days=1)),
                *_biller(c.biller_id, biller_id),
            )
        )
        .group_by(day, c.channel)
        .order_by(day, c.channel)
    )
    return [
        (d if isinstance(d, date) else date.fromisoformat(str(d)), ch, int(n), int(total))
        for d, ch, n, total in rows
    ]
