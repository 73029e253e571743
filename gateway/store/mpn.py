"""Store functions of the Pay-easy (MPN) answers: the brute-force guard, the day's counters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from gateway.model import Bill, Channel, Payment, PaymentStatus
from gateway.store.bills import _bill
from gateway.store.dialect import dialect_insert
from gateway.store.ledger import _payment
from gateway.store.schema import billers, bills, mpn_day_closes, mpn_guard, payments


def count_guard_attempt(
    conn: Connection, institution: str, number: str, day: date, *, wrong: bool
) -> int:
    """Count one 確認番号 attempt for the number on the day, in one atomic statement, and return
    the day's wrong-確認番号 count including this attempt: the caller decides on that count.

    An ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` takes the row's lock (PostgreSQL) or
    the database's write lock (SQLite) and returns the count as of its own update, so concurrent
    attempts on one number take turns: no two read the same count. A right 確認番号 adds nothing
    but still queues behind the wrong ones before it, so a burst of guesses cannot slip a right
    one past the limit. (A read then an increment, as before, let every guess of a burst see the
    count from before the burst.)
    """
    add = 1 if wrong else 0
    stmt = (
        dialect_insert(conn, mpn_guard)
        .values(
            institution_code=institution, customer_number=number, business_date=day, failures=add
        )
        .on_conflict_do_update(
            index_elements=["institution_code", "customer_number", "business_date"],
            set_={"failures": mpn_guard.c.failures + add},
        )
        .returning(mpn_guard.c.failures)
    )
    return int(conn.execute(stmt).scalar_one())


GuardKey = tuple[str, str, date]  # (収納機関番号, お客様番号, business day)


def count_guard_attempts(conn: Connection, attempts: Sequence[tuple[GuardKey, bool]]) -> list[int]:
    """:func:`count_guard_attempt` for a group of attempts (``(key, wrong)`` in the order they
    arrived), in one multi-row ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``; each
    attempt's count as if they had been counted one after the other in that order.

    One row per key, its wrong ones added at once (a row cannot be updated twice by one
    statement); the keys in sorted order, so two groups lock their rows in the same order. The
    statement returns each key's count after the whole group: the count before the group is that
    less the group's wrong ones, and each attempt's is that plus the wrong ones up to it. The
    rows stay locked until the group commits, so other attempts on these numbers queue behind it
    as behind one attempt."""
    if not attempts:
        return []
    added: dict[GuardKey, int] = {}
    for key, wrong in attempts:
        added[key] = added.get(key, 0) + (1 if wrong else 0)
    insert = dialect_insert(conn, mpn_guard)
    stmt = (
        insert.values(
            [
                {
                    "institution_code": institution,
                    "customer_number": number,
                    "business_date": day,
                    "failures": added[(institution, number, day)],
                }
                for institution, number, day in sorted(added)
            ]
        )
        .on_conflict_do_update(
            index_elements=["institution_code", "customer_number", "business_date"],
            set_={"failures": mpn_guard.c.failures + insert.excluded.failures},
        )
        .returning(
            mpn_guard.c.institution_code,
            mpn_guard.c.customer_number,
            mpn_guard.c.business_date,
            mpn_guard.c.failures,
        )
    )
    after = {
        (r.institution_code, r.customer_number, r.business_date): int(r.failures)
        for r in conn.execute(stmt)
    }
    counted = {key: after[key] - add for key, add in added.items()}  # before the group
    counts: list[int] = []
    for key, wrong in attempts:
        if wrong:
            counted[key] += 1
        counts.append(counted[key])
    return counts


def purge_guard_before(conn: Connection, day: date) -> int:
    """Delete the guard's counts of business days before ``day``: a count decides only on its
    own day, and every 照会 writes one row per number and day. The 閉局 calls it for the day
    it closes, so the table holds at most today's and the day before's numbers."""
    result = conn.execute(mpn_guard.delete().where(mpn_guard.c.business_date < day))
    return int(result.rowcount or 0)


def _day(day: date) -> str:
    return f"{day:%Y%m%d}"


def day_payments(conn: Connection, day: date) -> list[tuple[Payment, str | None, str | None]]:
    """Every 消込 of a business day (the event key is center (4) + YYYYMMDD + serial (8)), with
    its bill's 収納機関番号 and お客様番号 (None for a payment of no bill)."""
    rows = conn.execute(
        select(payments, bills.c.payeasy_institution_code, bills.c.payeasy_customer_number)
        .select_from(payments.outerjoin(bills, payments.c.bill_id == bills.c.id))
        .where(
            payments.c.channel == Channel.PAYEASY.value,
            func.substr(payments.c.event_key, 5, 8) == _day(day),
        )
        .order_by(payments.c.created_at, payments.c.payment_id)
    )
    return [
        (_payment(r, None), r.payeasy_institution_code, r.payeasy_customer_number) for r in rows
    ]


def day_counters(conn: Connection, day: date) -> tuple[int, int, int, int]:
    """(payments count, sum, cancels count, sum) of the day, as 閉局 reports them: every 消込
    received, and those of them cancelled."""
    found = [p for p, _, _ in day_payments(conn, day)]
    cancelled = [p for p in found if p.status is PaymentStatus.VOIDED]
    return (
        len(found),
        sum(p.amount for p in found),
        len(cancelled),
        sum(p.amount for p in cancelled),
    )


def record_day_close(
    conn: Connection,
    day: date,
    ours: tuple[int, int, int, int],
    theirs: tuple[int, int, int, int] | None,
    now: datetime,
) -> None:
    values = {
        "payments_count": ours[0],
        "payments_sum": ours[1],
        "cancels_count": ours[2],
        "cancels_sum": ours[3],
        "center_payments_count": theirs[0] if theirs else None,
        "center_payments_sum": theirs[1] if theirs else None,
        "center_cancels_count": theirs[2] if theirs else None,
        "center_cancels_sum": theirs[3] if theirs else None,
        "matched": None if theirs is None else ours == theirs,
        "closed_at": now,
    }
    conn.execute(
        dialect_insert(conn, mpn_day_closes)
        .values(business_date=day, **values)
        .on_conflict_do_update(index_elements=["business_date"], set_=values)
    )


def last_day_close(conn: Connection) -> dict[str, object] | None:
    row = conn.execute(
        select(mpn_day_closes).order_by(mpn_day_closes.c.business_date.desc()).limit(1)
    ).first()
    return None if row is None else dict(row._mapping)


def payeasy_lookup(conn: Connection, institution: str, number: str) -> tuple[Bill, str] | None:
    """What an 照会 or a 消込 needs, in one statement: the bill of a Pay-easy number and its
    biller's kana (None: no such number). The guard's count is not read here: it is counted and
    returned atomically by :func:`count_guard_attempt`."""
    row = conn.execute(
        select(bills, billers.c.kana.label("biller_kana"))
        .select_from(bills.join(billers, billers.c.biller_id == bills.c.biller_id))
        .where(
            bills.c.payeasy_institution_code == institution,
            bills.c.payeasy_customer_number == number,
        )
    ).first()
    if row is None:
        return None
    return _bill(row), row.biller_kana


def payeasy_lookups(
    conn: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[Bill, str]]:
    """:func:`payeasy_lookup` for many (収納機関番号, お客様番号) at once, in one statement: the
    bill and biller kana of each key that names a bill (a key of no bill is absent)."""
    by_institution: dict[str, set[str]] = {}
    for institution, number in keys:
        by_institution.setdefault(institution, set()).add(number)
    if not by_institution:
        return {}
    rows = conn.execute(
        select(bills, billers.c.kana.label("biller_kana"))
        .select_from(bills.join(billers, billers.c.biller_id == bills.c.biller_id))
        .where(
            or_(
                *(
                    and_(
                        bills.c.payeasy_institution_code == institution,
                        bills.c.payeasy_customer_number.in_(sorted(numbers)),
                    )
                    for institution, numbers in sorted(by_institution.items())
                )
            )
        )
    )
    return {
        (row.payeasy_institution_code, row.payeasy_customer_number): (_bill(row), row.biller_kana)
        for row in rows
    }


def day_close_report(conn: Connection, first: date, last: date) -> list[dict[str, object]]:
    """Each 閉局 of [first, last]: the center's counters, ours as reported at the close, and the
    ledger's own totals for that day now (a 取消 or a late 消込 after the close shows here).
    ``mismatch`` is true when the center's counters differ from the ledger's."""
    rows = conn.execute(
        select(mpn_day_closes)
        .where(mpn_day_closes.c.business_date >= first, mpn_day_closes.c.business_date <= last)
        .order_by(mpn_day_closes.c.business_date)
    ).all()
    report: list[dict[str, object]] = []
    for row in rows:
        ledger = day_counters(conn, row.business_date)
        center = (
            None
            if row.center_payments_count is None
            else (
                int(row.center_payments_count),
                int(row.center_payments_sum),
                int(row.center_cancels_count),
                int(row.center_cancels_sum),
            )
        )
        at_close = (
            int(row.payments_count),
            int(row.payments_sum),
            int(row.cancels_count),
            int(row.cancels_sum),
        )
        report.append(
            {
                "business_date": row.business_date,
                "closed_at": row.closed_at,
                "center": center,
                "at_close": at_close,
                "ledger": ledger,
                "mismatch": center is not None and center != ledger,
            }
        )
    return report
