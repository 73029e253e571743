"""The daemon's request schedule on a driven clock, and files that survive a crash.

The network runs on a store whose interactions complete at once (the same transaction functions
on a real database, without the thread pool), so ``task.Clock`` drives everything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from gateway.config import load_config
from gateway.ingest import Ingest
from gateway.mappers.zengin.mapper import build_file, parse_file
from gateway.model import (
    JST,
    BankAccount,
    BillTerms,
    Channel,
    Consignor,
    Customer,
    Mandate,
    MandateStatus,
    Tax,
)
from gateway.networks.zengin import (
    TransferBills,
    ZenginNetwork,
    prepare_requests,
    publish_staged,
    stage_pending,
)
from gateway.store import create_db_engine
from gateway.store.billers import create_biller
from gateway.store.bills import Identifiers, NewBill, insert_bill
from gateway.store.schema import zengin_requests
from gateway.store.zengin import insert_mandate, save_consignor
from tests.conftest import config_text

ACCOUNT = BankAccount("0005", "ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ", "135", "ｼﾌﾞﾔ", "1", "7654321")
TUESDAY = date(2026, 12, 1)  # + 3 bank days: Friday 2026-12-04, then a weekend


class ImmediateStore:
    """``run_interaction`` in the caller's thread, one transaction each."""

    def __init__(self, url: str) -> None:
        self.engine = create_db_engine(url, 1)

    def run_interaction(self, desc: str, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        try:
            with self.engine.begin() as conn:
                return succeed(fn(conn, *args))
        except Exception:
            return fail()


def at(day: date, hour: int, minute: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=JST).timestamp()


@pytest.fixture
def network(tmp_path: Path, migrated_url: str) -> Iterator[tuple[ZenginNetwork, Clock, Path]]:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(migrated_url, extra='request_at = "10:00"\n'), encoding="utf-8")
    config = load_config(path)
    assert config.zengin is not None
    store = ImmediateStore(migrated_url)
    now = datetime(2026, 11, 20, 9, 0, tzinfo=JST)
    with store.engine.begin() as conn:
        create_biller(
            conn,
            biller_id="acme",
            name="ACME",
            kana="ｱｸﾒ",
            channels=frozenset(Channel),
            payeasy_institution_code=None,
            now=now,
        )
        save_consignor(conn, Consignor("acme", "1234567890", "ｱｸﾒ", ACCOUNT), now)
        active = MandateStatus.ACTIVE
        mandate = Mandate("acme", "C1", ACCOUNT, "ﾔﾏﾀﾞ", active, None, "1", False, 1, now, now)
        insert_mandate(conn, mandate)
        for bill_no, due_date in [
            ("FRI", date(2026, 12, 4)),
            ("SAT", date(2026, 12, 5)),  # debited on the Friday before
            ("MON", date(2026, 12, 7)),
        ]:
            terms = BillTerms(
                bill_no, 5000, due_date, frozenset({Channel.TRANSFER}), Customer("C1"), Tax(), None
            )
            new = NewBill("acme", terms, f"token-{bill_no}")
            insert_bill(conn, new, now, lambda _: Identifiers(None, None))
    clock = Clock()
    ingest = Ingest(None, clock, lambda b: {}, [TransferBills()])
    yield ZenginNetwork(config.zengin, store, ingest, clock), clock, config.zengin.outbox  # type: ignore[arg-type]
    store.engine.dispose()


def outbox_files(outbox: Path) -> list[Path]:
    return sorted(p for p in outbox.glob("*") if not p.name.startswith("."))


def test_the_schedule_writes_the_requests_lead_days_ahead_once_a_business_day(
    network: tuple[ZenginNetwork, Clock, Path],
) -> None:
    zengin, clock, outbox = network
    clock.advance(at(TUESDAY, 9, 59))
    Deferred.fromCoroutine(zengin.scheduled())
    assert outbox_files(outbox) == []  # before request_at

    clock.advance(at(TUESDAY, 10, 0) - clock.seconds())
    Deferred.fromCoroutine(zengin.scheduled())
    (written,) = outbox_files(outbox)
    assert "_20261204_" in written.name  # Tuesday + 3 bank business days = Friday
    debits = parse_file(written.read_bytes()).debits
    assert len(debits) == 2  # FRI and SAT; MON waits for its own debit date

    clock.advance(3600)
    Deferred.fromCoroutine(zengin.scheduled())
    assert len(outbox_files(outbox)) == 1  # once a day

    # Wednesday + 3 bank days = Monday 12-07: MON's day.
    clock.advance(at(date(2026, 12, 2), 10, 0) - clock.seconds())
    Deferred.fromCoroutine(zengin.scheduled())
    files = outbox_files(outbox)
    assert len(files) == 2 and "_20261207_" in files[1].name
    assert [d.amount for d in parse_file(files[1].read_bytes()).debits] == [5000]

    clock.advance(at(date(2026, 12, 5), 10, 0) - clock.seconds())
    Deferred.fromCoroutine(zengin.scheduled())
    assert len(outbox_files(outbox)) == 2  # nothing on a bank holiday


def test_a_request_left_pending_by_a_crash_is_written_with_the_same_bytes(
    network: tuple[ZenginNetwork, Clock, Path],
) -> None:
    zengin, clock, outbox = network
    clock.advance(at(TUESDAY, 11, 0))
    store = zengin.store
    assert isinstance(store, ImmediateStore)
    # The transaction that chose the bills committed; the daemon died before the file.
    with store.engine.begin() as conn:
        (made,) = prepare_requests(conn, date(2026, 12, 4), datetime.now(JST))
    assert outbox_files(outbox) == []
    Deferred.fromCoroutine(zengin.write_pending())
    (first,) = outbox_files(outbox)
    data = first.read_bytes()
    # Left pending (the run was cut before it staged the file, so it was never published): it
    # is written again, identically.
    with store.engine.begin() as conn:
        conn.execute(update(zengin_requests).values(status="pending", written_at=None))
    first.unlink()
    Deferred.fromCoroutine(zengin.write_pending())
    (again,) = outbox_files(outbox)
    assert again.name == made.file_name and again.read_bytes() == data
    with store.engine.begin() as conn:
        statuses = conn.execute(select(zengin_requests.c.status)).scalars().all()
    assert statuses == ["written"]
    assert not list(outbox.glob(".*.tmp")) and not list(outbox.glob(".*.staged"))
    assert made.records == 2


def _cut_after_staging(zengin: ZenginNetwork, outbox: Path) -> bytes:
    """A request staged and marked ``sending``, its run cut before the file was published (the
    publishing transaction lost); the staged bytes."""
    store = zengin.store
    assert isinstance(store, ImmediateStore)
    with store.engine.begin() as conn:
        prepare_requests(conn, date(2026, 12, 4), datetime.now(JST))
    with store.engine.begin() as conn:
        (staged,) = stage_pending(conn, zengin.config)
    with store.engine.begin() as conn:
        assert conn.execute(select(zengin_requests.c.status)).scalars().all() == ["sending"]
    assert outbox_files(outbox) == []  # the bank sees nothing yet
    return (outbox / f".{staged.file_name}.staged").read_bytes()


def test_a_staged_request_of_a_cut_run_is_published_once(
    network: tuple[ZenginNetwork, Clock, Path],
) -> None:
    zengin, clock, outbox = network
    clock.advance(at(TUESDAY, 11, 0))
    data = _cut_after_staging(zengin, outbox)
    Deferred.fromCoroutine(zengin.write_pending())
    (published,) = outbox_files(outbox)
    assert published.read_bytes() == data
    Deferred.fromCoroutine(zengin.write_pending())  # nothing left to do
    assert outbox_files(outbox) == [published]
    assert isinstance(zengin.store, ImmediateStore)
    with zengin.store.engine.begin() as conn:
        assert conn.execute(select(zengin_requests.c.status)).scalars().all() == ["written"]


@pytest.mark.parametrize("taken", [False, True])
def test_a_request_published_by_a_cut_run_is_never_written_again(
    network: tuple[ZenginNetwork, Clock, Path], taken: bool
) -> None:
    """Seed 8964 of the simulation: the file was published, the transaction that marks the
    request written was lost (a dropped connection), and the bank took the file before the
    next run; that run wrote it again, the bank took the copy as a second request and tried to
    debit the customer twice. Now a ``sending`` request whose file is no longer staged is
    marked written and never written again, whether the file still waits in the outbox or the
    bank has taken it."""
    zengin, clock, outbox = network
    clock.advance(at(TUESDAY, 11, 0))
    store = zengin.store
    assert isinstance(store, ImmediateStore)
    with store.engine.begin() as conn:
        prepare_requests(conn, date(2026, 12, 4), datetime.now(JST))
    with store.engine.begin() as conn:
        staged = stage_pending(conn, zengin.config)
    with pytest.raises(RuntimeError), store.engine.begin() as conn:
        publish_staged(conn, zengin.config, staged, datetime.now(JST))
        raise RuntimeError("the connection is lost before the commit")
    (sent,) = outbox_files(outbox)  # published: the rename is not rolled back
    if taken:
        sent.rename(outbox.parent / sent.name)  # the bank took it
    Deferred.fromCoroutine(zengin.write_pending())
    assert outbox_files(outbox) == ([] if taken else [sent])
    with store.engine.begin() as conn:
        assert conn.execute(select(zengin_requests.c.status)).scalars().all() == ["written"]
    Deferred.fromCoroutine(zengin.write_pending())
    assert outbox_files(outbox) == ([] if taken else [sent])


def test_a_link_planted_at_the_staged_name_is_replaced_not_followed(
    network: tuple[ZenginNetwork, Clock, Path], tmp_path: Path
) -> None:
    zengin, clock, outbox = network
    clock.advance(at(TUESDAY, 11, 0))
    store = zengin.store
    assert isinstance(store, ImmediateStore)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    with store.engine.begin() as conn:
        (made,) = prepare_requests(conn, date(2026, 12, 4), datetime.now(JST))
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / f".{made.file_name}.staged").symlink_to(victim)
    Deferred.fromCoroutine(zengin.write_pending())
    (published,) = outbox_files(outbox)
    assert victim.read_bytes() == b"keep me"
    assert not published.is_symlink() and published.read_bytes().startswith(b"1")


def test_a_pending_request_the_bank_has_answered_is_not_written_again(
    network: tuple[ZenginNetwork, Clock, Path],
) -> None:
    """The file was written, marking it written failed (a full disk), and the bank answered
    it: the result marks the request written, so no second copy reaches the bank."""
    zengin, clock, outbox = network
    clock.advance(at(TUESDAY, 11, 0))
    store = zengin.store
    assert isinstance(store, ImmediateStore)
    with store.engine.begin() as conn:
        prepare_requests(conn, date(2026, 12, 4), datetime.now(JST))
    Deferred.fromCoroutine(zengin.write_pending())
    (sent,) = outbox_files(outbox)
    with store.engine.begin() as conn:
        conn.execute(update(zengin_requests).values(status="pending", written_at=None))
    sent.rename(outbox.parent / sent.name)  # the bank took it
    request = parse_file((outbox.parent / sent.name).read_bytes())
    failed = [replace(d, result_code="2") for d in request.debits]
    result = build_file(request.header, failed, results=True)
    applied = []
    zengin.apply_file("RESULT_" + sent.name, result).addCallback(applied.append)
    assert len(applied) == 1
    with store.engine.begin() as conn:
        statuses = conn.execute(select(zengin_requests.c.status)).scalars().all()
    assert statuses == ["written"]
    Deferred.fromCoroutine(zengin.write_pending())
    assert outbox_files(outbox) == []
