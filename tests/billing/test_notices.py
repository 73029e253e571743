"""Notices by SMS and e-mail through the real service (make_service in this process), the
simulated SMS provider (simulators.sms) and the store: the page URL of a new bill and of a
reissue, the receipt notice, opt-outs, retries and refusals visible to the biller, reminders,
and what the per-notice fees count."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import select, update
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from gateway.billing.notices import NoticeJob
from gateway.model import JST, MessageKind
from gateway.networks.issuer import Issuer
from gateway.store import create_db_engine
from gateway.store.notices import sent_counts
from gateway.store.schema import bills, notice_charges, notifications
from simulators.sms import SmsProvider
from tests.billing.test_payments_api import pay_at_store
from tests.conftest import Biller, Running, admin, jst_today, logged
from tests.test_api import bill_body

SMS_KEY = "sms-test-key-0123456789"


@pytest.fixture
def sms() -> Iterator[SmsProvider]:
    provider = SmsProvider(SMS_KEY).start()
    yield provider
    provider.stop()


@pytest.fixture
def gateway_extra(sms: SmsProvider) -> str:
    return (
        f'\n[sms]\nendpoint = "{sms.url}"\napi_key = "{SMS_KEY}"\nsender = "GATEWAY"\n'
        'allowed_networks = ["127.0.0.0/8"]\npoll_interval = 0.1\nretry_base = 0.1\n'
        "retry_cap = 0.2\nmax_attempts = 4\ntimeout = 5\n"
        "\n[notices]\npoll_interval = 0.1\n"
    )


async def until(check: Any, timeout: float = 20.0) -> Any:
    from twisted.internet import reactor  # noqa: TID251 - tests drive the real reactor

    for _ in range(int(timeout / 0.05)):
        found = check()
        if found:
            return found
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError("timed out")


def rows(running: Running) -> list[Any]:
    engine = create_db_engine(running.config.database.url, 1)
    with engine.connect() as conn:
        found = conn.execute(select(notifications).order_by(notifications.c.id)).all()
    engine.dispose()
    return list(found)


def settings(running: Running, who: Biller, *flags: str) -> dict[str, Any]:
    return admin(running.config_path, "biller", "set", "--id", who.biller_id, *flags)


async def notices(running: Running, who: Biller, query: str = "") -> list[dict[str, Any]]:
    status, page, _ = await running.request("GET", f"/v1/notices{query}", who)
    assert status == 200, page
    return list(page["data"])


@pytest_twisted.ensureDeferred
async def test_the_page_url_goes_by_sms_on_a_new_bill_and_on_a_reissue(
    gateway: Running, sms: SmsProvider
) -> None:
    acme = gateway.onboard("acme")
    made = settings(gateway, acme, "--page-notice", "sms")
    assert made["notices"]["page"] == ["sms"]

    status, bill, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("S-1"))
    assert status == 201
    (first,) = await deferToThread(sms.wait_for, 1)
    assert first.to == "09012345678" and first.sender == "GATEWAY"
    assert first.text == (
        f"【acme 株式会社】ご請求 ¥5,400（期限 {jst_day(bill['due_date'])}）のお支払いはこちら "
        f"{bill['page_url']}"
    )

    status, again, _ = await gateway.request(
        "POST", "/v1/bills/S-1/reissue", acme, {"amount": 6000}
    )
    assert status == 200 and again["reissue"] == 1
    second = (await deferToThread(sms.wait_for, 2))[1]
    assert "¥6,000" in second.text and bill["page_url"] in second.text

    listed = await until(
        lambda: (
            [n for n in rows(gateway) if n.status == "sent"]
            if len([n for n in rows(gateway) if n.status == "sent"]) == 2
            else None
        )
    )
    assert [(n.kind, n.medium, n.ref) for n in listed] == [
        ("page", "sms", "0"),
        ("page", "sms", "1"),
    ]
    shown = await notices(gateway, acme, "?bill_no=S-1")
    assert [(n["kind"], n["medium"], n["reissue"], n["status"]) for n in shown] == [
        ("page", "sms", 0, "sent"),
        ("page", "sms", 1, "sent"),
    ]
    assert shown[0]["recipient"] == "090****5678" and shown[0]["attempts"] == 1
    # Each SMS is counted once for the per-notice fee, by its own key.
    engine = create_db_engine(gateway.config.database.url, 1)
    with engine.connect() as conn:
        charged = conn.execute(
            select(notice_charges.c.notice_key, notice_charges.c.kind).order_by(notice_charges.c.id)
        ).all()
        day = datetime.now(JST).replace(hour=0, minute=0, second=0, microsecond=0)
        counted = sent_counts(conn, "acme", day, day + timedelta(days=1))
    engine.dispose()
    assert [(k, kind) for k, kind in charged] == [(f"sms:{n.id}", "sms") for n in listed]
    assert counted == {("sms", "page"): 2}


@pytest_twisted.ensureDeferred
async def test_a_long_sms_is_sent_whole_and_counted_per_segment_as_the_biller_sees(
    gateway: Running, sms: SmsProvider
) -> None:
    acme = gateway.onboard("acme")
    settings(gateway, acme, "--page-notice", "sms")
    op = Biller("operator", "", admin(gateway.config_path, "key", "create", "--admin")["key"])
    lengths = [70, 71, 134, 135]
    for n, length in enumerate(lengths, 1):
        # The biller's own words, of exactly ``length`` characters once filled.
        template = "{bill_no}" + "あ" * (length - len(f"S-{n}"))
        status, _, _ = await gateway.request(
            "PATCH", "/v1/billers/acme", op, {"notices": {"templates": {"sms.page": template}}}
        )
        assert status == 200
        assert (await gateway.request("POST", "/v1/bills", acme, bill_body(f"S-{n}")))[0] == 201
        await deferToThread(sms.wait_for, n)  # sent with these words before they change
    # Over the carriers' limit of a long SMS: refused whole, never cut, and not charged.
    status, _, _ = await gateway.request(
        "PATCH", "/v1/billers/acme", op, {"notices": {"templates": {"sms.page": "あ" * 661}}}
    )
    assert status == 200
    assert (await gateway.request("POST", "/v1/bills", acme, bill_body("S-5")))[0] == 201
    await until(lambda: len(rows(gateway)) == 5 and rows(gateway)[-1].status == "failed")

    taken = sms.wait_for(4)
    assert [len(m.text) for m in taken] == lengths  # each sent whole, as one (long) SMS
    await until(lambda: all(n.status in ("sent", "failed") for n in rows(gateway)))
    shown = await notices(gateway, acme)
    assert [(n["bill_no"], n["status"], n["segments"]) for n in shown] == [
        ("S-1", "sent", 1),
        ("S-2", "sent", 2),
        ("S-3", "sent", 2),
        ("S-4", "sent", 3),
        ("S-5", "failed", None),
    ]
    assert shown[-1]["last_error"] == "the message is longer than one long SMS"
    assert len(sms.wait_for(4)) == 4  # the provider never saw it
    engine = create_db_engine(gateway.config.database.url, 1)
    with engine.connect() as conn:
        charged = conn.execute(
            select(notice_charges.c.kind, notice_charges.c.quantity).order_by(notice_charges.c.id)
        ).all()
    engine.dispose()
    assert [tuple(c) for c in charged] == [("sms", 1), ("sms", 2), ("sms", 2), ("sms", 3)]


def jst_day(iso: str) -> str:
    y, m, d = (int(x) for x in iso.split("-"))
    return f"{y}年{m}月{d}日"


@pytest_twisted.ensureDeferred
async def test_no_sms_to_a_landline_nor_to_a_customer_who_opted_out(
    gateway: Running, sms: SmsProvider
) -> None:
    acme = gateway.onboard("acme")
    settings(gateway, acme, "--page-notice", "sms", "--received-notice", "sms")
    body = bill_body("L-1")
    body["customer"] = {**body["customer"], "phone": "0312345678", "customer_no": "C9"}
    assert (await gateway.request("POST", "/v1/bills", acme, body))[0] == 201

    status, optout, _ = await gateway.request(
        "PUT", "/v1/customers/C0001/opt-out", acme, {"email": False, "sms": True}
    )
    assert status == 200 and optout["sms"] is True and optout["email"] is False
    assert (await gateway.request("GET", "/v1/customers/C0001/opt-out", acme))[1]["sms"] is True
    status, bill, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("O-1"))
    assert status == 201
    # A third bill of another customer does get its SMS: the job has read all three by then.
    other = bill_body("N-1")
    other["customer"] = {**other["customer"], "customer_no": "C2"}
    assert (await gateway.request("POST", "/v1/bills", acme, other))[0] == 201
    (only,) = await deferToThread(sms.wait_for, 1)
    assert only.to == "09012345678"
    assert {r.bill_id for r in rows(gateway)} == {3}  # N-1's

    # The opted-out customer pays: no receipt notice either (the job has read the payment
    # once it has read the next bill's creation).
    assert pay_at_store(gateway.config.database.url, bill["cvs"]["barcode"]) == "applied"
    later = bill_body("N-2")
    later["customer"] = {**later["customer"], "customer_no": "C3"}
    assert (await gateway.request("POST", "/v1/bills", acme, later))[0] == 201
    await deferToThread(sms.wait_for, 2)
    assert {r.bill_id for r in rows(gateway)} == {3, 4}


@pytest_twisted.ensureDeferred
async def test_a_provider_outage_is_retried_and_a_refusal_is_final_both_shown(
    gateway: Running, sms: SmsProvider
) -> None:
    acme = gateway.onboard("acme")
    settings(gateway, acme, "--page-notice", "sms")
    sms.fail_first = 2  # 503, 503, then taken
    await gateway.request("POST", "/v1/bills", acme, bill_body("R-1"))
    await deferToThread(sms.wait_for, 1)
    (done,) = await until(lambda: [n for n in rows(gateway) if n.status == "sent"])
    assert done.attempts == 3 and done.provider_id == "sim-000001"

    sms.key = "rotated"  # the gateway's key is refused (401): no retry changes that
    with logged() as lines:
        body = bill_body("R-2")
        body["customer"] = {**body["customer"], "customer_no": "C2"}
        await gateway.request("POST", "/v1/bills", acme, body)
        await until(lambda: rows(gateway)[-1].status == "failed")
    failed = rows(gateway)[-1]
    assert failed.attempts == 1 and failed.last_error == "refused by the provider (HTTP 401)"
    shown = await notices(gateway, acme, "?status=failed")
    assert [(n["bill_no"], n["attempts"], n["last_error"]) for n in shown] == [
        ("R-2", 1, "refused by the provider (HTTP 401)")
    ]
    text = "\n".join(lines)
    assert "failed after 1 attempt(s)" in text
    for secret in (SMS_KEY, "09012345678", "5678", sms.url):
        assert secret not in text


@pytest_twisted.ensureDeferred
async def test_a_payment_at_a_store_sends_the_receipt_notice_once(
    gateway: Running, sms: SmsProvider
) -> None:
    acme = gateway.onboard("acme")
    settings(gateway, acme, "--page-notice", "none", "--received-notice", "sms")
    _, bill, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("P-1"))
    url = gateway.config.database.url
    assert pay_at_store(url, bill["cvs"]["barcode"]) == "applied"
    assert pay_at_store(url, bill["cvs"]["barcode"], MessageKind.CONFIRMATION) == "applied"
    (message,) = await deferToThread(sms.wait_for, 1)
    assert message.text.startswith("【acme 株式会社】¥5,400のお支払いを受け付けました（")
    await until(lambda: rows(gateway) and rows(gateway)[0].status == "sent")
    assert [(r.kind, r.medium) for r in rows(gateway)] == [("received", "sms")]


@pytest_twisted.ensureDeferred
async def test_the_reminder_goes_to_bills_due_in_n_days_that_existed_on_their_reminder_day(
    gateway: Running, sms: SmsProvider
) -> None:
    acme = gateway.onboard("acme")
    settings(gateway, acme, "--page-notice", "none", "--reminder-notice", "sms")
    today = jst_today()
    for n, days in enumerate((3, 2, 2, 10), 1):
        body = bill_body(f"D-{n}", due_date=(today + timedelta(days=days)).isoformat())
        body["customer"] = {**body["customer"], "customer_no": f"C{n}"}
        assert (await gateway.request("POST", "/v1/bills", acme, body))[0] == 201
    engine = create_db_engine(gateway.config.database.url, 1)
    with engine.begin() as conn:  # D-3 was made two days ago: it missed yesterday's reminder
        conn.execute(
            update(bills)
            .where(bills.c.bill_no == "D-3")
            .values(created_at=datetime.now(JST) - timedelta(days=2))
        )
    job = NoticeJob(None, None, gateway.config, Issuer(gateway.config), lambda b: {})  # type: ignore[arg-type]
    with engine.begin() as conn:
        assert job.remind(conn, datetime.now(JST)) == 2
    with engine.begin() as conn:
        assert job.remind(conn, datetime.now(JST)) == 0  # once per due date
    engine.dispose()
    sent = await deferToThread(sms.wait_for, 2)
    assert sorted(m.text.split("（")[1].split("）")[0] for m in sent) == sorted(
        [
            jst_day((today + timedelta(days=3)).isoformat()),
            jst_day((today + timedelta(days=2)).isoformat()),
        ]
    )
    assert all("が近づいています" in m.text for m in sent)
