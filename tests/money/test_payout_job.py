"""The daemon's payout job on an injected clock (gateway/money/payout_service.py): the file of the
day at ``[payouts] at`` on bank business days only, once a day, paid out on its transfer date;
the returns inbox's handler, all records or none; and a returned payout carried into the next
settlement, closed by the settlement job on the same clock, and paid by one file only."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import func, select
from twisted.internet import task

from gateway.clock import today as clock_today
from gateway.config.payouts import PayoutsConfig
from gateway.fee_model import LineKind, PayoutState, Settlement
from gateway.mappers.zengin.payouts import build_payout_file, customer_code, parse_payout_file
from gateway.model import JST
from gateway.money.payout_service import PayoutService
from gateway.money.settlement import SettlementJob
from gateway.store import Store
from gateway.store.payouts import list_payout_files
from gateway.store.schema import billers, settlements
from gateway.store.settlements import get_settlement
from simulators.zengin_payouts import PayoutBank
from tests.money.test_payouts import BOX, november, payouts_config, set_acct, stored
from tests.money.test_settlement import World, at, standard_plan, world

ACCOUNT_BODY = {
    "bank_code": "0005",
    "branch_code": "135",
    "account_type": "1",
    "account_number": "7654321",
    "holder_kana": "ｶ)ｱｸﾒ",
}

__all__ = ["world"]


def clock_at(moment: datetime) -> task.Clock:
    clock = task.Clock()
    clock.advance(moment.timestamp())
    return clock


@pytest.fixture
def config(tmp_path: Path) -> PayoutsConfig:
    return dataclasses.replace(payouts_config(tmp_path), at=datetime(2000, 1, 1, 9, 0).time())


@pytest_twisted.ensureDeferred
async def test_the_file_of_the_day_is_written_at_its_time_on_business_days_once(
    world: World, config: PayoutsConfig
) -> None:
    from twisted.internet import reactor  # noqa: TID251 - the store's threads need the reactor

    acme = november(world, "acme", [5_400])
    other = november(world, "other", [3_000])
    set_acct(world, "acme")
    set_acct(world, "other", number="1234")
    url = world.engine.url.render_as_string(hide_password=False)
    store = Store.from_url(url, reactor, 1)
    store.start()
    try:
        # Saturday 2026-12-05 at 10:00: no bank business day, no file
        saturday = PayoutService(
            config, store, clock_at(datetime(2026, 12, 5, 10, tzinfo=JST)), BOX
        )
        await saturday.scheduled()
        assert await store.run_interaction("files", list_payout_files) == []

        clock = clock_at(datetime(2026, 12, 3, 8, 59, tzinfo=JST))  # Thursday, the payout date
        job = PayoutService(config, store, clock, BOX)
        await job.scheduled()
        assert await store.run_interaction("files", list_payout_files) == []  # before 09:00
        clock.advance(60)
        await job.scheduled()
        (made,) = await store.run_interaction("files", list_payout_files)
        assert (made.transfer_date.isoformat(), made.records, made.status) == (
            "2026-12-03",
            2,
            "written",
        )
        assert made.total == acme.totals.payout + other.totals.payout
        # the transfer date is today: paid out at once
        assert stored(world, acme).payout_status.state is PayoutState.PAID_OUT
        clock.advance(3600)
        await job.scheduled()  # the same day again: nothing more
        assert len(await store.run_interaction("files", list_payout_files)) == 1

        # the bank's 振込不能 file through the inbox's handler: all or nothing
        payout = parse_payout_file((config.outbox / made.file_name).read_bytes())
        back = [dataclasses.replace(t, return_code="3") for t in payout.transfers[:1]]
        returns = build_payout_file(payout.header, back)
        accepted, report = await job.apply_file("RETURN_1.txt", returns)
        assert accepted and report.startswith("applied: 1 returned transfer(s)")
        assert "名義相違" in report
        bad = build_payout_file(payout.header, [dataclasses.replace(back[0], amount=1)])
        accepted, report = await job.apply_file("RETURN_2.txt", bad)
        assert not accepted and "refused" in report and "amount" in report
        accepted, report = await job.apply_file("junk.txt", b"not a file")
        assert not accepted and "refused" in report
        states = {stored(world, s).payout_status.state for s in (acme, other)}
        assert states == {PayoutState.PAID_OUT, PayoutState.PAYOUT_RETURNED}
    finally:
        store.stop()


# --- a returned payout carried forward, on the injected clock -----------------------------------


def biller_code(world: World, biller: str) -> str:
    with world.engine.connect() as conn:
        return str(
            conn.execute(select(billers.c.code).where(billers.c.biller_id == biller)).one()[0]
        )


def settlements_of(world: World, biller: str) -> list[Settlement]:
    with world.engine.connect() as conn:
        ids_ = conn.execute(
            select(settlements.c.settlement_id)
            .where(settlements.c.biller_id == biller)
            .order_by(settlements.c.period_start)
        ).scalars()
        found = [get_settlement(conn, biller, i) for i in ids_]
    return [s for s in found if s is not None]


def records(data: bytes) -> list[bytes]:
    """The 120-byte records of a payout file (each ended by CRLF: the configured separator)."""
    assert data.endswith(b"\r\n")
    out = data[:-2].split(b"\r\n")
    assert all(len(r) == 120 for r in out), [len(r) for r in out]
    return out


@pytest_twisted.ensureDeferred
async def test_a_returned_payout_is_paid_once_by_the_next_settlement_closed_on_the_clock(
    world: World, config: PayoutsConfig, tmp_path: Path
) -> None:
    """November is settled and paid out; the bank returns acme's transfer (振込不能); the clock
    runs on through December (the operator corrects the account) to the close of the period:
    December's settlement carries the returned amount as 前回振込不能分, its payout file pays
    it once with the corrected account, and nothing after carries it again. Only the injected
    clock moves; the daemon's two jobs run as their timers would."""
    from twisted.internet import reactor  # noqa: TID251 - the store's threads need the reactor

    for biller, amounts in (("acme", [5_400, 60_000]), ("other", [3_000])):
        world.plan(standard_plan(), biller)
        for n, amount in enumerate(amounts):
            bill = world.bill(f"{biller}-{n}", amount, biller=biller)
            world.confirm(bill, at(11, 5 + n), at(11, 8 + n))
    set_acct(world, "acme")
    set_acct(world, "other", number="1234")
    url = world.engine.url.render_as_string(hide_password=False)
    store = Store.from_url(url, reactor, 1)
    store.start()
    clock = clock_at(datetime(2026, 11, 30, 0, 5, tzinfo=JST))  # before November's close
    settle, payouts = SettlementJob(store, clock), PayoutService(config, store, clock, BOX)
    bank_work = tmp_path / "bank"
    acme_code = biller_code(world, "acme")

    async def run_to(last: date) -> None:
        """Each day up to ``last``: the timers' runs at 00:05 and at [payouts] at (09:00)."""
        day = clock_today(clock)
        while day <= last:
            for moment in (time(0, 5), time(9, 0)):
                when = datetime.combine(day, moment, JST).timestamp()
                if when > clock.seconds():
                    clock.advance(when - clock.seconds())
                await settle.tick()
                await payouts.tick()
            day += timedelta(days=1)

    async def files() -> list[Any]:
        return list(await store.run_interaction("files", list_payout_files))

    try:
        await run_to(date(2026, 11, 30))
        assert settlements_of(world, "acme") == []  # November is not over
        await run_to(date(2026, 12, 2))
        (nov,) = settlements_of(world, "acme")
        assert nov.payout_date == date(2026, 12, 3) and await files() == []  # not due yet
        await run_to(date(2026, 12, 3))
        (first,) = await files()
        assert (first.transfer_date, first.records) == (date(2026, 12, 3), 2)

        # The bank returns acme's transfer (口座なし) into the inbox; the handler applies it.
        code1, code2 = customer_code(acme_code, date(2026, 11, 1))
        bank = PayoutBank(
            config.outbox, config.inbox, bank_work, mix={"0": 100},
            overrides={code1 + code2: "1"}, today=date(2026, 12, 3),
        )  # fmt: skip
        (returned,) = bank.process_once()
        accepted, report = await payouts.apply_file(returned.name, returned.read_bytes())
        assert accepted, report
        assert stored(world, nov).payout_status.state is PayoutState.PAYOUT_RETURNED
        assert [e.amount for e in bank.returned()] == [nov.totals.payout]

        # December: acme collects again; the operator gives the corrected account on 12-10.
        world.confirm(world.bill("acme-dec", 2_000, biller="acme"), at(12, 5), at(12, 8))
        await run_to(date(2026, 12, 9))
        fixed = {**ACCOUNT_BODY, "account_number": "7654322"}
        status, _ = await payouts.put_account("cli:test", "acme", date(2026, 12, 10), fixed)
        assert status == 201
        await run_to(date(2026, 12, 31))
        assert len(await files()) == 1  # the returned amount waits for the next settlement

        # The period closes on the clock: December's settlement takes the returned payout.
        await run_to(date(2027, 1, 1))
        nov_again, dec = settlements_of(world, "acme")
        (line,) = [x for x in dec.lines if x.kind is LineKind.RETURNED_PAYOUT]
        assert (line.quantity, line.amount) == (1, nov.totals.payout)
        assert dec.totals.returned_in == nov.totals.payout
        assert nov_again.payout_status.carried_into == dec.settlement_id
        assert sum(x.amount for x in dec.lines) == dec.totals.payout > nov.totals.payout
        await run_to(dec.payout_date)
        second = (await files())[-1]
        assert (second.transfer_date, second.records) == (dec.payout_date, 1)
        again = await payouts.request(dec.payout_date)  # the same date again: nothing left
        assert again["file"] is None

        # Read back byte by byte: one data record paying December's payout (returned amount
        # included) to the corrected account, 顧客コード naming December's settlement.
        data = (config.outbox / second.file_name).read_bytes()
        header, record, trailer, end = records(data)
        assert header[:4] == b"1210" and header[54:58] == dec.payout_date.strftime("%m%d").encode()
        assert record[:1] == b"2"
        assert (record[1:5], record[20:23], record[42:43]) == (b"0005", b"135", b"1")
        assert record[43:50] == b"7654322"  # the corrected account, not the returned one
        assert record[80:90] == f"{dec.totals.payout:010d}".encode()
        assert record[91:101] == acme_code.zfill(10).encode()
        assert record[101:111] == b"2026120100"
        assert trailer[:19] == b"8" + b"000001" + f"{dec.totals.payout:012d}".encode()
        assert end == b"9" + b" " * 119
        parsed = parse_payout_file(data)
        assert [t.amount for t in parsed.transfers] == [dec.totals.payout]
        assert build_payout_file(parsed.header, parsed.transfers) == data  # to the byte

        bank = PayoutBank(
            config.outbox, config.inbox, bank_work, mix={"0": 100}, today=dec.payout_date
        )
        assert bank.process_once() == []  # paid

        # January closes too: nothing is carried twice, no file pays it again.
        await run_to(date(2027, 2, 10))
        jan = settlements_of(world, "acme")[-1]
        assert jan.period_start == date(2027, 1, 1)
        assert not [x for x in jan.lines if x.kind is LineKind.RETURNED_PAYOUT]
        acme_paid = [e for e in bank.record() if e.customer_code.startswith(acme_code.zfill(10))]
        assert [(e.amount, e.paid) for e in acme_paid] == [
            (nov.totals.payout, False),
            (dec.totals.payout, True),
        ]
        # what the bank credited acme is what it is owed: November's payout once, and
        # December's own (its payout less what it carried)
        owed = nov.totals.payout + (dec.totals.payout - dec.totals.returned_in)
        assert sum(e.amount for e in acme_paid if e.paid) == owed
        with world.engine.connect() as conn:
            returned_in = conn.execute(
                select(func.sum(settlements.c.returned_in)).where(settlements.c.biller_id == "acme")
            ).scalar_one()
        assert returned_in == nov.totals.payout
        assert len(await files()) == 2
    finally:
        store.stop()
