"""The fallback after a failed debit through the in-process service: the simulated bank answers
a debit with 振替結果コード 1 (or 3), the result file is loaded with ``gateway-admin``, and the
biller's fallback (``gateway-admin biller set --fallback …``) debits again on a later date or
reissues the bill for the store and Pay-easy, tells the customer by SMS, and the bill is never
in a request file again. Dates are real bank business days from today."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import select
from twisted.internet.task import deferLater

from gateway import calendar
from gateway.store import create_db_engine
from gateway.store.schema import bill_fallbacks, zengin_request_items
from simulators.sms import SmsProvider
from simulators.zengin import SimulatedBank
from tests.billing.test_notices import SMS_KEY, settings
from tests.billing.test_payments_api import pay_at_store
from tests.conftest import Biller, Running, jst_today
from tests.networks.test_zengin_transfer import (
    bill,
    consignor,
    debit_day,
    mandate,
    read_request,
    run_admin,
)


@pytest.fixture
def sms() -> Iterator[SmsProvider]:
    provider = SmsProvider(SMS_KEY).start()
    yield provider
    provider.stop()


@pytest.fixture
def gateway_extra(sms: SmsProvider) -> str:
    return (
        f'\n[sms]\nendpoint = "{sms.url}"\napi_key = "{SMS_KEY}"\n'
        'allowed_networks = ["127.0.0.0/8"]\npoll_interval = 0.1\nretry_base = 0.1\n'
        "retry_cap = 0.2\n\n[notices]\npoll_interval = 0.1\n"
    )


async def debit(
    running: Running, day: date, codes: dict[int, str], tmp: Path, name: str
) -> dict[str, Any]:
    """Request the debits of ``day``; the bank answers each (by amount) with its code; the
    result file loaded. The request file's debits and the load's summary."""
    made = await run_admin(running.config_path, "zengin", "request", "--date", day.isoformat())
    (written,) = made["files"]
    request = read_request(written["file"])
    overrides = {d.customer_number: codes[d.amount] for d in request.debits}
    bank = SimulatedBank(
        Path(written["file"]).parent, tmp / f"{name}-out", tmp / name, overrides=overrides
    )
    (result,) = bank.process_once()
    summary = await run_admin(running.config_path, "import", "zengin-result", str(result))
    return {"debits": [d.amount for d in request.debits], **summary}


async def get(running: Running, who: Biller, bill_no: str) -> dict[str, Any]:
    status, found, _ = await running.request("GET", f"/v1/bills/{bill_no}", who)
    assert status == 200
    return dict(found)


async def events(running: Running, who: Biller, kind: str) -> list[dict[str, Any]]:
    _, feed, _ = await running.request("GET", "/v1/events?limit=500", who)
    return [e["data"] for e in feed["data"] if e["type"] == kind]


def requested(running: Running, bill_no: str) -> list[date]:
    """Every debit date a request file asked for the bill."""
    engine = create_db_engine(running.config.database.url, 1)
    from gateway.store.schema import bills

    with engine.connect() as conn:
        found = conn.execute(
            select(zengin_request_items.c.debit_date)
            .join(bills, bills.c.id == zengin_request_items.c.bill_id)
            .where(bills.c.bill_no == bill_no)
            .order_by(zengin_request_items.c.debit_date)
        ).scalars()
        days = list(found)
    engine.dispose()
    return days


def phone_bill(customer_no: str) -> dict[str, Any]:
    return {
        "channels": ["transfer"],
        "customer": {"customer_no": customer_no, "name": "山田 太郎", "phone": "09012345678"},
    }


@pytest_twisted.ensureDeferred
async def test_a_failed_debit_reissues_the_bill_for_the_store_and_pay_easy(
    gateway: Running, sms: SmsProvider, tmp_path: Path
) -> None:
    water = gateway.onboard("water")
    consignor(gateway, water)
    made = settings(gateway, water, "--fallback", "cvs,payeasy", "--fallback-notice", "sms")
    assert made["fallback"]["ways"] == ["cvs", "payeasy"]
    day = debit_day()
    await mandate(gateway, water, "W1")
    await mandate(gateway, water, "W2")
    await bill(gateway, water, "F-1", "W1", 4400, day, **phone_bill("W1"))
    await bill(gateway, water, "F-2", "W2", 3300, day, **phone_bill("W2"))

    summary = await debit(gateway, day, {4400: "1", 3300: "0"}, tmp_path, "bank")
    assert summary["debited"]["count"] == 1 and summary["failed"]["count"] == 1

    (after,) = await eventually(lambda: events(gateway, water, "bill.fallback_issued"))
    assert after["bill"]["bill_no"] == "F-1"
    assert after["fallback"] == {
        "failed_debit_date": day.isoformat(),
        "result_code": "1",
        "channels_added": ["cvs", "payeasy"],
        "channels_removed": ["transfer"],
    }
    f1 = await get(gateway, water, "F-1")
    assert f1["channels"] == ["cvs", "payeasy"] and f1["reissue"] == 1
    assert f1["status"] == "open"
    assert f1["due_date"] == (jst_today() + timedelta(days=14)).isoformat()
    assert f1["cvs"]["barcode"][29] == "1"  # the reissue digit
    assert f1["payeasy"]["customer_number"]

    (message,) = await _sms(sms, 1)
    assert message.text.startswith("【water 株式会社】口座振替ができませんでした。¥4,400を")
    assert "コンビニ・ペイジーでお支払いください" in message.text
    assert message.text.endswith(f1["page_url"])

    # The page shows the barcode and the Pay-easy numbers, and nothing of a debit.
    page = await _page(gateway, f1["page_url"])
    assert 'id="cvs"' in page and 'id="payeasy"' in page and 'id="transfer"' not in page
    assert f1["payeasy"]["customer_number"] in page

    # No request file takes it again, whatever the date.
    for later in _debit_dates(day, f1["due_date"]):
        await run_admin(gateway.config_path, "zengin", "request", "--date", later.isoformat())
    assert requested(gateway, "F-1") == [day]

    # Paid at a store with the new slip: paid, and still never debited.
    assert pay_at_store(gateway.config.database.url, f1["cvs"]["barcode"]) == "applied"
    assert (await get(gateway, water, "F-1"))["status"] == "paid"
    assert requested(gateway, "F-1") == [day]
    assert [e["bill"]["bill_no"] for e in await events(gateway, water, "bill.fallback_issued")] == [
        "F-1"
    ]


@pytest_twisted.ensureDeferred
async def test_a_failed_debit_is_debited_again_once_then_reissued(
    gateway: Running, sms: SmsProvider, tmp_path: Path
) -> None:
    water = gateway.onboard("water")
    consignor(gateway, water)
    settings(gateway, water, "--fallback", "cvs,redebit", "--redebit-days", "20")
    day = debit_day()
    for n, amount in ((1, 1000), (2, 2000)):
        await mandate(gateway, water, f"W{n}")
        await bill(gateway, water, f"R-{n}", f"W{n}", amount, day, **phone_bill(f"W{n}"))

    # R-1 short of funds: debited again; R-2 stopped by its payer (3): no second debit.
    await debit(gateway, day, {1000: "1", 2000: "3"}, tmp_path, "bank-1")
    (redebit,) = await eventually(lambda: events(gateway, water, "bill.redebit_scheduled"))
    again = calendar.next_business_day(day)
    assert redebit["redebit"] == {
        "failed_debit_date": day.isoformat(),
        "result_code": "1",
        "debit_date": again.isoformat(),
    }
    r1 = await get(gateway, water, "R-1")
    assert r1["due_date"] == again.isoformat() and r1["channels"] == ["transfer"]
    r2 = await eventually(lambda: with_channel(gateway, water, "R-2", "cvs"))
    assert r2["channels"] == ["cvs"] and r2["reissue"] == 1
    page = await _page(gateway, r1["page_url"])
    assert 'id="transfer"' in page and 'id="cvs"' not in page  # only the debit is live

    # The 再振替 date's request takes R-1 (and only it); it fails again: reissued for the store.
    second = await debit(gateway, again, {1000: "1"}, tmp_path, "bank-2")
    assert second["debits"] == [1000]
    r1 = await eventually(lambda: with_channel(gateway, water, "R-1", "cvs"))
    assert r1["channels"] == ["cvs"] and r1["reissue"] == 1 and r1["status"] == "open"
    assert requested(gateway, "R-1") == [day, again]
    engine = create_db_engine(gateway.config.database.url, 1)
    with engine.connect() as conn:
        done = conn.execute(
            select(bill_fallbacks.c.result_code, bill_fallbacks.c.action).order_by(
                bill_fallbacks.c.id
            )
        ).all()
    engine.dispose()
    assert sorted(tuple(r) for r in done) == [("1", "redebit"), ("1", "reissue"), ("3", "reissue")]
    # The fallback notice goes by e-mail and SMS by default: SMS here, [mail] is not set.
    assert len(await _sms(sms, 2)) == 2


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    """What ``check`` gives once it gives something (the notice job runs every 0.1 s)."""
    from twisted.internet import reactor  # noqa: TID251 - tests drive the real reactor

    for _ in range(int(timeout / 0.05)):
        found = await check()
        if found:
            return found
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError("timed out")


async def with_channel(running: Running, who: Biller, bill_no: str, channel: str) -> Any:
    found = await get(running, who, bill_no)
    return found if channel in found["channels"] else None


def _debit_dates(first: date, last_iso: str) -> list[date]:
    return calendar.business_days_between(
        calendar.next_business_day(first), date.fromisoformat(last_iso)
    )


async def _sms(sms: SmsProvider, count: int) -> list[Any]:
    from twisted.internet.threads import deferToThread

    found: list[Any] = await deferToThread(sms.wait_for, count)
    return found


async def _page(running: Running, url: str) -> str:
    path = url.split("/p/", 1)[1]
    status, page, _ = await running.request("GET", f"/p/{path}")
    assert status == 200
    return str(page)
