"""The notice tables (migration 0015) on SQLite, or PostgreSQL when set: the migration matches
the schema and comes back down; a notice is queued once per bill, kind, medium and ref; claims
take one medium; opt-outs; the notice job's cursors; what the fees count."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.engine import Engine

from gateway.model import BillTerms, Channel, Customer, Tax
from gateway.notice_rules import Medium, Notice
from gateway.store import create_db_engine
from gateway.store.billers import create_biller
from gateway.store.bills import Identifiers, NewBill, insert_bill
from gateway.store.events import append_event
from gateway.store.migrate import alembic_config, current_revision, migrate
from gateway.store.notices import (
    FallbackRecord,
    OptOut,
    billers_behind,
    get_optout,
    lock_cursor,
    move_cursor,
    optouts_of,
    record_fallback,
    sent_counts,
    set_optout,
)
from gateway.store.notify import Finished, NewNotice, claim, finish, queue_notices
from gateway.store.schema import metadata, notice_charges, notifications
from tests.conftest import on_postgres

NOW = datetime(2026, 12, 9, 1, 0, tzinfo=UTC)
MINE = ("notification", "notice", "fallback", "notice_rules")


@pytest.fixture
def engine(migrated_url: str):  # type: ignore[no-untyped-def]
    engine = create_db_engine(migrated_url, 2)
    with engine.begin() as conn:
        for biller in ("acme", "beta"):
            create_biller(
                conn,
                biller_id=biller,
                name=biller,
                kana="ｱ",
                channels=frozenset({Channel.CVS}),
                payeasy_institution_code=None,
                now=NOW,
            )
        for n in (1, 2):
            terms = BillTerms(
                f"B-{n}",
                1000,
                date(2026, 12, 20),
                frozenset({Channel.CVS}),
                Customer(f"C{n}", phone="09012345678", email="a@example.jp"),
                Tax(),
                None,
            )
            insert_bill(
                conn,
                NewBill("acme", terms, f"t{n}"),
                NOW,
                lambda serial: Identifiers(None, None),
            )
    yield engine
    engine.dispose()


def test_the_migration_matches_the_schema_and_comes_back_down(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diff if any(word in repr(d) for word in MINE)] == []
    with engine.begin() as conn:
        queue_notices(conn, [NewNotice("acme", 1, Notice.PAGE, Medium.SMS, "0")], NOW)
        command.downgrade(alembic_config(conn), "0014")
        assert current_revision(conn) == "0014"
        # Only the page e-mails of new bills fit the old schema: the SMS is gone.
        assert conn.execute(select(notifications.c.id)).all() == []
    assert migrate(engine)[1] is not None


def test_a_notice_is_queued_once_and_claimed_by_its_medium(engine: Engine) -> None:
    page_sms = NewNotice("acme", 1, Notice.PAGE, Medium.SMS, "0")
    page_email = NewNotice("acme", 1, Notice.PAGE, Medium.EMAIL, "0")
    reissued = NewNotice("acme", 1, Notice.PAGE, Medium.SMS, "1")
    with engine.begin() as conn:
        assert queue_notices(conn, [page_sms, page_email], NOW) == 2
        assert queue_notices(conn, [page_sms, reissued], NOW) == 1
        sms = claim(conn, NOW, timedelta(seconds=30), 10, (Medium.SMS,))
        assert [(c.kind, c.medium, c.ref, c.recipient) for c in sms] == [
            (Notice.PAGE, Medium.SMS, "0", "09012345678"),
            (Notice.PAGE, Medium.SMS, "1", "09012345678"),
        ]
        assert claim(conn, NOW, timedelta(seconds=30), 10, (Medium.SMS,)) == []  # leased
        (mail,) = claim(conn, NOW, timedelta(seconds=30), 10)  # e-mail by default
        assert mail.recipient == "a@example.jp"
        finish(
            conn,
            [
                Finished(sms[0].notification_id, "sent", provider_id="p-1"),
                Finished(sms[1].notification_id, "pending", "busy", NOW + timedelta(minutes=1)),
                Finished(mail.notification_id, "sent"),
            ],
            NOW,
        )
        charged = conn.execute(
            select(notice_charges.c.notice_key, notice_charges.c.kind).order_by(
                notice_charges.c.notice_key
            )
        ).all()
        assert [tuple(r) for r in charged] == [
            (f"email:{mail.notification_id}", "email"),
            (f"sms:{sms[0].notification_id}", "sms"),
        ]
        counted = sent_counts(conn, "acme", NOW, NOW + timedelta(days=1))
        assert counted == {("sms", "page"): 1, ("email", "page"): 1}
        assert sent_counts(conn, "acme", NOW + timedelta(seconds=1), NOW + timedelta(days=1)) == {}
        # The lease runs out: the retry is claimed again when it is due, not before.
        assert (
            claim(conn, NOW + timedelta(seconds=59), timedelta(seconds=30), 10, (Medium.SMS,)) == []
        )
        (retry,) = claim(conn, NOW + timedelta(minutes=1), timedelta(seconds=30), 10, (Medium.SMS,))
        assert (retry.ref, retry.attempts) == ("1", 2)


@pytest.mark.skipif(not on_postgres(), reason="SKIP LOCKED is PostgreSQL's (SQLite: one writer)")
def test_two_daemons_claiming_at_once_take_different_notices(engine: Engine) -> None:
    """Two daemons' sending rounds at the same moment (two connections, the first one's
    transaction still open): the second skips what the first has locked and takes the rest, so
    no notice is sent by both."""
    queued = [NewNotice("acme", 1, Notice.PAGE, Medium.EMAIL, str(ref)) for ref in range(6)]
    with engine.begin() as conn:
        assert queue_notices(conn, queued, NOW) == 6
    lease = timedelta(seconds=30)
    with engine.connect() as a, engine.connect() as b, a.begin():
        first = claim(a, NOW, lease, 3)
        with b.begin():
            second = claim(b, NOW, lease, 10)  # while the first daemon's rows are locked
    assert (len(first), len(second)) == (3, 3)
    assert {c.ref for c in first} | {c.ref for c in second} == {str(ref) for ref in range(6)}
    with engine.begin() as conn:  # all six leased: nothing left for a third round
        assert claim(conn, NOW, lease, 10) == []


def test_opt_outs_are_per_customer_of_a_biller(engine: Engine) -> None:
    with engine.begin() as conn:
        assert get_optout(conn, "acme", "C1") == OptOut("acme", "C1", False, False, None)
        set_optout(conn, OptOut("acme", "C1", False, True, None), NOW)
        set_optout(conn, OptOut("acme", "C1", True, True, None), NOW + timedelta(seconds=1))
        found = get_optout(conn, "acme", "C1")
        assert (found.email, found.sms) == (True, True)
        assert found.refuses(Medium.SMS) and found.refuses(Medium.EMAIL)
        assert get_optout(conn, "beta", "C1").sms is False
        assert set(optouts_of(conn, "acme", ["C1", "C2"])) == {"C1"}
        queue_notices(conn, [NewNotice("acme", 1, Notice.PAGE, Medium.SMS, "0")], NOW)
        (claimed,) = claim(conn, NOW, timedelta(seconds=30), 10, (Medium.SMS,))
        assert claimed.opted_out


def test_the_cursors_start_at_zero_and_move_with_the_job(engine: Engine) -> None:
    with engine.begin() as conn:
        for _ in range(3):
            append_event(
                conn, biller_id="acme", event_id=f"evt_{_}", type="bill.created", data={}, now=NOW
            )
        assert billers_behind(conn) == [("acme", 3)]
        assert lock_cursor(conn, "acme") == 0
        move_cursor(conn, "acme", 3)
        assert billers_behind(conn) == []
        assert lock_cursor(conn, "acme") == 3


def test_one_fallback_per_failed_debit_of_a_bill(engine: Engine) -> None:
    record: dict[str, Any] = {
        "bill_id": 1,
        "biller_id": "acme",
        "debit_date": date(2026, 12, 7),
        "result_code": "1",
        "action": "redebit",
        "redebit_date": date(2026, 12, 14),
    }
    with engine.begin() as conn:
        assert record_fallback(conn, FallbackRecord(**record), NOW)
        assert not record_fallback(conn, FallbackRecord(**{**record, "action": "reissue"}), NOW)
        record["debit_date"] = date(2026, 12, 14)
        assert record_fallback(conn, FallbackRecord(**record), NOW)
