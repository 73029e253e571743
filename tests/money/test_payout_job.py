"""The daemon's payout job on an injected clock (gateway/money/payout_service.py): the file of the
day at ``[payouts] at`` on bank business days only, once a day, paid out on its transfer date;
and the returns inbox's handler, all records or none."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import task

from gateway.config.payouts import PayoutsConfig
from gateway.fee_model import PayoutState
from gateway.mappers.zengin.payouts import build_payout_file, parse_payout_file
from gateway.model import JST
from gateway.money.payout_service import PayoutService
from gateway.store import Store
from gateway.store.payouts import list_payout_files
from tests.money.test_payouts import BOX, november, payouts_config, set_acct, stored
from tests.money.test_settlement import World, world

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
