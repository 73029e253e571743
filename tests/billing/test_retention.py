"""The retention purge (gateway/billing/retention.py): what it removes, what it keeps, its
audit rows.

The pure parts (the cutoff, the redaction of a Zengin data record, the scrub of an event) are
tested alone, the record against the spec's result vector. The job is tested against the real
store: bills, mandates, debits and their results go in through the merchant API of the
in-process daemon, ``gateway-admin`` and the simulated bank, as in production; the job under test
has a store of its own on the same database and a ``task.Clock`` set about four months ahead of
today (what it does is read back from the API, the pages and the tables). On PostgreSQL
(GATEWAY_TEST_DATABASE_URL) the same tests run there, with two daemons purging at once and a
bill locked by another transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from twisted.internet import task
from twisted.internet.defer import gatherResults

from gateway.billing.expiry import ExpiryJob
from gateway.billing.retention import (
    PurgeReport,
    RetentionJob,
    months_before,
    purge_bills_batch,
    redact_data_record,
    retention_service,
    scrub_event_data,
)
from gateway.mappers.fields import parse_fields
from gateway.mappers.files import split_records
from gateway.mappers.zengin.records import DATA
from gateway.model import JST, MessageKind, transfer_key
from gateway.store import Store, create_db_engine
from gateway.store.schema import (
    bills,
    collection_messages,
    data_purges,
    events,
    mandates,
    refund_cases,
    zengin_request_items,
)
from simulators.zengin import SimulatedBank
from tests.billing.test_payments_api import pay
from tests.conftest import Biller, Running, jst_today, logged, on_postgres
from tests.networks.test_zengin_transfer import (
    bill,
    consignor,
    debit_day,
    mandate,
    read_request,
    run_admin,
)
from tests.render.test_payment_page import get, local, open_page
from tests.render.test_receipts import text_of, write
from tests.test_api import bill_body

FIXTURES = Path(__file__).parent.parent / "fixtures" / "zengin"
PERSONAL = ("山田", "ﾔﾏﾀﾞ", "taro@example.jp", "09012345678")
BILL_FIELDS = ["customer_name", "customer_kana", "customer_email", "customer_phone"]


# --- the pure parts --------------------------------------------------------------------------


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST)


def test_the_cutoff_is_calendar_months_on_the_jst_calendar() -> None:
    assert months_before(jst(2026, 12, 3, 10, 0), 3) == jst(2026, 9, 3, 10, 0)
    assert months_before(jst(2026, 5, 31, 23, 59, 59), 3) == jst(2026, 2, 28, 23, 59, 59)
    assert months_before(jst(2028, 5, 31, 12, 0), 3) == jst(2028, 2, 29, 12, 0)  # leap year
    assert months_before(jst(2026, 2, 15, 0, 0), 3) == jst(2025, 11, 15, 0, 0)
    assert months_before(jst(2026, 1, 31, 8, 0), 1) == jst(2025, 12, 31, 8, 0)
    assert months_before(jst(2026, 3, 31, 8, 0), 1) == jst(2026, 2, 28, 8, 0)
    assert months_before(jst(2027, 7, 10, 8, 0), 12) == jst(2026, 7, 10, 8, 0)
    # 2026-11-30T16:00Z is already 1 December in Japan: the JST date is the one that counts.
    utc = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert months_before(utc, 3) == jst(2026, 9, 1, 1, 0)
    assert months_before(utc, 3).utcoffset() == timedelta(hours=9)


def test_a_data_record_loses_its_account_number_and_holder_name_and_nothing_else() -> None:
    records = split_records((FIXTURES / "result_91.txt").read_bytes())
    data = [r for r in records if r[:1] == b"2"]
    assert len(data) == 3
    for raw in data:
        before, errors = parse_fields(DATA, raw, network="zengin", record=2)
        assert not errors and before["account_number"] != "0000000" and before["holder_name"]
        redacted = redact_data_record(raw)
        assert len(redacted) == 120
        after, errors = parse_fields(DATA, redacted, network="zengin", record=2)
        assert not errors
        assert after["account_number"] == "0000000" and after["holder_name"] == ""
        kept = {k: v for k, v in before.items() if k not in ("account_number", "holder_name")}
        assert {k: after[k] for k in kept} == kept  # bank, branch, amount, 顧客番号, result...
        # spec/zengin.md: 口座番号 at 44 (7 bytes), 預金者名 at 51 (30 bytes)
        assert redacted[43:50] == b"0000000" and redacted[50:80] == b" " * 30
        assert redacted[:43] == raw[:43] and redacted[80:] == raw[80:]
        assert before["account_number"].encode() not in redacted
        assert before["holder_name"].encode("cp932") not in redacted
        assert redact_data_record(redacted) == redacted
    # Nothing else is a data record: nothing of it is kept.
    header, *_, trailer, end = records
    for other in (header, trailer, end, data[0][:119], data[0] + b"\r\n", b"", b"2" * 3):
        assert redact_data_record(other) == b""


def test_an_event_keeps_only_the_customer_number() -> None:
    data = {
        "bill": {
            "bill_no": "B-1",
            "amount": 5400,
            "customer": {"customer_no": "C1", "name": "山田 太郎", "email": "taro@example.jp"},
        },
        "payment": {"amount": 5400},
    }
    assert scrub_event_data(data) == {
        "bill": {"bill_no": "B-1", "amount": 5400, "customer": {"customer_no": "C1"}},
        "payment": {"amount": 5400},
    }
    assert data["bill"]["customer"]["name"] == "山田 太郎"  # (a copy: the input is unchanged)
    nameless = {"bill": {"customer": {"phone": "09012345678"}}}
    assert scrub_event_data(nameless) == {"bill": {"customer": {}}}
    for clean in (
        {"bill": {"customer": {"customer_no": "C1"}}},
        {"bill": {"customer": {}}},
        {"bill": None, "settlement": {}},
        {"bill": {"bill_no": "B-1"}},
        [],
    ):
        assert scrub_event_data(clean) is None


# --- the job ---------------------------------------------------------------------------------


def clock_at(moment: datetime) -> task.Clock:
    clock = task.Clock()
    clock.advance(moment.timestamp())
    return clock


@pytest.fixture
def stores() -> Iterator[list[Store]]:
    made: list[Store] = []
    yield made
    for store in made:
        store.stop()


def new_store(stores: list[Store], url: str) -> Store:
    from twisted.internet import reactor  # noqa: TID251 - the store's threads need the reactor

    store = Store.from_url(url, reactor, 2)
    store.start()
    stores.append(store)
    return store


@pytest.fixture
def engine(gateway: Running) -> Iterator[Engine]:
    made = create_db_engine(gateway.config.database.url, 2)
    yield made
    made.dispose()


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def bill_doc(running: Running, who: Biller, bill_no: str) -> dict[str, Any]:
    status, doc, _ = await running.request("GET", f"/v1/bills/{bill_no}", who)
    assert status == 200, doc
    return dict(doc)


async def payments_of(running: Running, who: Biller, bill_no: str) -> list[dict[str, Any]]:
    status, listed, _ = await running.request("GET", f"/v1/bills/{bill_no}/payments", who)
    assert status == 200, listed
    return list(listed["data"])


def touch(engine: Engine, table: Any, where: Any, moment: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(update(table).where(where).values(updated_at=moment))


def bill_id(engine: Engine, bill_no: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(bills.c.id).where(bills.c.bill_no == bill_no)).scalar_one())


def event_customers(engine: Engine) -> dict[int, dict[str, Any]]:
    """Every event's data.bill.customer (None without one), by event id."""
    with engine.connect() as conn:
        rows = conn.execute(select(events.c.id, events.c.data).order_by(events.c.id)).all()
    found = {}
    for event_id, text in rows:
        b = json.loads(text).get("bill")
        found[event_id] = b.get("customer") if isinstance(b, dict) else None
    return found


def purge_table(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(data_purges).order_by(data_purges.c.id)))


def transfer_raws(engine: Engine, item_key: str) -> list[bytes]:
    m = collection_messages.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(m.raw).where(
                m.channel == "transfer",
                (m.event_key == item_key) | m.event_key.startswith(item_key + ":"),
            )
        )
        return [bytes(r.raw) for r in rows]


def item_of(engine: Engine, bill_no: str) -> Any:
    i = zengin_request_items.c
    with engine.connect() as conn:
        return conn.execute(
            select(zengin_request_items).where(i.bill_id == bill_id(engine, bill_no))
        ).one()


def mandate_row(engine: Engine, customer_no: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(mandates).where(mandates.c.customer_no == customer_no)).one()


ACCOUNTS = {
    "C1": ("1000001", "ｱｵｷ ｲﾁﾛｳ"),  # active, debited: kept
    "C2": ("2000002", "ｲﾉｳｴ ｼﾞﾛｳ"),  # revoked 4 months before the run: purged
    "C3": ("3000003", "ｳｴﾀﾞ ｻﾌﾞﾛｳ"),  # 振替結果コード 2: invalid, purged; its bill stays open
    "C4": ("4000004", "ｴﾝﾄﾞｳ ｼﾛｳ"),  # 振替結果コード 3: suspended, kept; its bill is paid
    "C6": ("6000006", "ｵｵﾉ ﾛｸﾛｳ"),  # revoked 2 months before the run: kept
}


@pytest_twisted.ensureDeferred
async def test_a_run_purges_old_customer_data_keeps_the_money_and_audits_it(
    gateway: Running, stores: list[Store], engine: Engine, tmp_path: Path
) -> None:
    acme = gateway.onboard("acme")
    consignor(gateway, acme)
    for customer_no, (number, holder) in ACCOUNTS.items():
        await mandate(gateway, acme, customer_no, account_number=number, holder_kana=holder)
    for customer_no in ("C2", "C6"):
        assert (await gateway.request("DELETE", f"/v1/mandates/{customer_no}", acme))[0] == 200

    # Account transfer: DEBITED is debited, OPEN-FAILED (C3) fails, PAID-LATER (C4) fails and
    # is then paid at a store.
    day = debit_day()
    amounts = {"DEBITED": 5400, "OPEN-FAILED": 7000, "PAID-LATER": 8000}
    codes = {"DEBITED": "0", "OPEN-FAILED": "2", "PAID-LATER": "3"}
    made = {}
    for (bill_no, amount), customer_no in zip(amounts.items(), ("C1", "C3", "C4"), strict=True):
        made[bill_no] = await bill(gateway, acme, bill_no, customer_no, amount, day)
    written = await run_admin(gateway.config_path, "zengin", "request", "--date", str(day))
    (request,) = written["files"]
    by_amount = {d.amount: d.customer_number for d in read_request(request["file"]).debits}
    overrides = {by_amount[amounts[b]]: code for b, code in codes.items()}
    outbox = Path(request["file"]).parent
    bank = SimulatedBank(outbox, tmp_path / "bank-out", tmp_path / "bank", overrides=overrides)
    (result_path,) = bank.process_once()
    summary = await run_admin(gateway.config_path, "import", "zengin-result", str(result_path))
    assert summary["matched"] == 3
    assert pay(gateway, made["PAID-LATER"]["cvs"]["barcode"], MessageKind.CONFIRMATION) == (
        "applied"
    )

    # The other ways a bill ends, and one that does not.
    for bill_no in ("OPEN", "PAID", "CANCELLED", "AT-CUTOFF", "BEFORE-CUTOFF"):
        made[bill_no] = await gateway_bill(gateway, acme, bill_no)
    assert pay(gateway, made["PAID"]["cvs"]["barcode"], MessageKind.PRELIMINARY) == "applied"
    for bill_no in ("AT-CUTOFF", "BEFORE-CUTOFF"):
        assert pay(gateway, made[bill_no]["cvs"]["barcode"], MessageKind.CONFIRMATION) == (
            "applied"
        )
    assert (await gateway.request("POST", "/v1/bills/CANCELLED/cancel", acme))[0] == 200
    tomorrow = jst_today() + timedelta(days=1)
    made["EXPIRED"] = await gateway_bill(gateway, acme, "EXPIRED", due_date=tomorrow.isoformat())
    expiry_clock = clock_at(datetime.combine(tomorrow + timedelta(days=1), time(0, 1), JST))
    expiry = ExpiryJob(new_store(stores, gateway.config.database.url), expiry_clock, render)
    assert await expiry.run() == 1

    # The run is about four months from now; RECENT was paid two months before it.
    run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=125)
    cutoff = months_before(run_at, 3)
    with engine.connect() as conn:
        last_old_event = int(
            conn.execute(select(events.c.id).order_by(events.c.id.desc())).scalar()
        )
    made["RECENT"] = await gateway_bill(gateway, acme, "RECENT")
    assert pay(gateway, made["RECENT"]["cvs"]["barcode"], MessageKind.CONFIRMATION) == "applied"
    two_months = months_before(run_at, 2)
    touch(engine, bills, bills.c.bill_no == "RECENT", two_months)
    with engine.begin() as conn:
        conn.execute(
            update(events).where(events.c.id > last_old_event).values(created_at=two_months)
        )
    touch(engine, bills, bills.c.bill_no == "AT-CUTOFF", cutoff)
    touch(engine, bills, bills.c.bill_no == "BEFORE-CUTOFF", cutoff - timedelta(seconds=1))
    touch(engine, mandates, mandates.c.customer_no == "C6", two_months)

    docs = {b: await bill_doc(gateway, acme, b) for b in made}
    paid = {b: await payments_of(gateway, acme, b) for b in made}
    assert docs["DEBITED"]["status"] == "confirmed" and docs["PAID-LATER"]["status"] == "confirmed"
    assert docs["OPEN-FAILED"]["status"] == "open" and docs["EXPIRED"]["status"] == "expired"
    assert docs["DEBITED"]["customer"]["name"] == "山田 太郎"
    customers_before = event_customers(engine)
    named = [i for i, c in customers_before.items() if c and set(c) - {"customer_no"}]
    assert any(i > last_old_event for i in named)  # RECENT's bill.created

    purged_before = counter("gateway_retention_bills_purged_total")
    store = new_store(stores, gateway.config.database.url)
    clock = clock_at(run_at)
    job = RetentionJob(store, clock, batch_size=2)  # several batches of each kind
    with logged() as lines:
        report = await job.run()

    gone = ["DEBITED", "PAID-LATER", "PAID", "CANCELLED", "EXPIRED", "BEFORE-CUTOFF"]
    kept = ["OPEN", "OPEN-FAILED", "AT-CUTOFF", "RECENT"]
    old_named = [i for i in named if i <= last_old_event]
    assert (report.bills, report.mandates, report.request_items, report.messages) == (6, 2, 2, 2)
    assert report.events == len(old_named) and report.last_event_id == last_old_event
    assert report.cutoff == cutoff and report.ran_at == run_at and report.months == 3
    assert report.billers == {"acme": 6}
    assert counter("gateway_retention_bills_purged_total") - purged_before == 6

    # Bills: the customer's data is gone, the money and the keys stay, nothing else moved.
    for bill_no in gone:
        doc = await bill_doc(gateway, acme, bill_no)
        assert doc["customer"] == {"customer_no": docs[bill_no]["customer"]["customer_no"]}
        assert {**doc, "customer": None} == {**docs[bill_no], "customer": None}
        assert await payments_of(gateway, acme, bill_no) == paid[bill_no]
    assert (await bill_doc(gateway, acme, "DEBITED"))["amount"] == 5400
    assert [p["amount"] for p in paid["DEBITED"]] == [5400]
    for bill_no in kept:
        assert await bill_doc(gateway, acme, bill_no) == docs[bill_no]

    with engine.connect() as conn:
        rows = {r.bill_no: r for r in conn.execute(select(bills))}
    (audit,) = purge_table(engine)
    for bill_no in gone:
        row = rows[bill_no]
        assert [getattr(row, f) for f in BILL_FIELDS] == [None] * 4
        assert row.purge_id == audit.id
    for bill_no in kept:
        assert rows[bill_no].purge_id is None and rows[bill_no].customer_name == "山田 太郎"

    # Account numbers: the purged bills' debits and their result records.
    for bill_no, customer_no in (("DEBITED", "C1"), ("PAID-LATER", "C4"), ("OPEN-FAILED", "C3")):
        number, holder = ACCOUNTS[customer_no]
        item = item_of(engine, bill_no)
        key = transfer_key(item.consignor_code, item.debit_date, item.customer_number)
        (raw,) = transfer_raws(engine, key)
        assert len(raw) == 120
        if bill_no == "OPEN-FAILED":  # still open: nothing of it is purged
            assert (item.account_number, item.holder_kana) == (number, holder)
            assert number.encode() in raw and holder.encode("cp932") in raw
            continue
        assert (item.account_number, item.holder_kana) == ("0000000", "")
        assert number.encode() not in raw and holder.encode("cp932") not in raw
        values, errors = parse_fields(DATA, raw, network="zengin", record=2)
        assert not errors and values["amount"] == amounts[bill_no]
        assert values["customer_number"] == item.customer_number
        assert (values["account_number"], values["holder_name"]) == ("0000000", "")

    # Mandates: revoked or invalid and old go; active, suspended or recent stay.
    for customer_no, (number, holder) in ACCOUNTS.items():
        row = mandate_row(engine, customer_no)
        if customer_no in ("C2", "C3"):
            assert (row.account_number, row.holder_kana, row.purge_id) == ("0000000", "", audit.id)
        else:
            assert (row.account_number, row.holder_kana, row.purge_id) == (number, holder, None)
    assert mandate_row(engine, "C2").version == 2  # (its revocation's; the purge adds none)

    # Events before the cutoff keep only the customer number; RECENT's keep everything.
    customers = event_customers(engine)
    for event_id, customer in customers.items():
        if event_id <= last_old_event and customer is not None:
            assert set(customer) <= {"customer_no"}
        else:
            assert customer == customers_before[event_id]
    _, feed, _ = await gateway.request("GET", "/v1/events?limit=500", acme)
    for event in feed["data"]:  # what the biller reads back (and a redelivery sends)
        text = json.dumps(event, ensure_ascii=False)
        recent = (event["data"].get("bill") or {}).get("bill_no") == "RECENT"
        assert recent or not [p for p in PERSONAL if p in text], text

    # The audit row.
    assert (audit.bills, audit.mandates, audit.request_items, audit.messages) == (6, 2, 2, 2)
    assert (audit.events, audit.last_event_id) == (report.events, last_old_event)
    assert (audit.ran_at, audit.cutoff, audit.id) == (run_at, cutoff, report.purge_id)
    detail = json.loads(audit.detail)
    assert detail == {
        "fields": {
            "bills": BILL_FIELDS,
            "mandates": ["account_number", "holder_kana"],
            "request_items": ["account_number", "holder_kana"],
            "messages": ["raw.account_number", "raw.holder_name"],
            "events": ["data.bill.customer"],
            "payout_accounts": ["account_number", "holder_kana"],
        },
        "billers": {"acme": 6},
        "months": 3,
        "payout_accounts": 0,  # acme has not ended
    }

    # The logs say how much, never whose.
    text = "\n".join(lines)
    assert f"Retention run {audit.id}" in text
    secrets = [*PERSONAL, *(n for n, _ in ACCOUNTS.values()), *(h for _, h in ACCOUNTS.values())]
    assert not [s for s in secrets if s in text]

    # The pages: a purged bill's are gone (retention_days has not passed); the biller's receipt
    # stays, made out to 上様.
    for bill_no in ("DEBITED", "CANCELLED", "EXPIRED", "PAID"):
        await open_page(gateway, made[bill_no]["page_url"], 410)
    status, body, _ = await get(local(gateway, made["DEBITED"]["page_url"]) + "/receipt.pdf")
    assert status == 410 and b"%PDF" not in body
    for bill_no in ("OPEN", "RECENT", "AT-CUTOFF"):
        await open_page(gateway, made[bill_no]["page_url"], 200)
    status, pdf, _ = await get(gateway.api + "/v1/bills/DEBITED/receipt.pdf", acme.headers)
    assert status == 200
    receipt = text_of(write(tmp_path, pdf))
    assert "上様" in receipt and "山田" not in receipt and "¥5,400-" in receipt

    # A purged bill cannot come back to life by a reissue: its customer is gone.
    status, problem, _ = await gateway.request("POST", "/v1/bills/EXPIRED/reissue", acme, {})
    assert status == 409 and "retention" in problem["detail"]

    # Again at the same time: nothing to do, no audit row.
    again = await job.run()
    assert not again.purged and (again.bills, again.mandates, again.events) == (0, 0, 0)
    assert len(purge_table(engine)) == 1

    # C2 is registered again and revoked again; 40 days later RECENT, AT-CUTOFF, C2 (a second
    # time), C6 and RECENT's events go, in a second audit row.
    await mandate(gateway, acme, "C2", account_number="2222229", holder_kana="ｲﾉｳｴ ｼﾞﾛｳ")
    assert mandate_row(engine, "C2").purge_id is None  # a new account: not the purged one
    assert (await gateway.request("DELETE", "/v1/mandates/C2", acme))[0] == 200
    clock.advance(40 * 86400)
    later = await job.run()
    assert (later.bills, later.mandates, later.request_items, later.messages) == (2, 2, 0, 0)
    assert later.billers == {"acme": 2}
    assert later.events == len(named) - len(old_named)
    assert later.last_event_id == max(event_customers(engine))
    first, second = purge_table(engine)
    assert (first.bills, second.bills, second.id) == (6, 2, later.purge_id)
    assert mandate_row(engine, "C2").purge_id == second.id
    assert mandate_row(engine, "C2").account_number == "0000000"
    assert mandate_row(engine, "C6").purge_id == second.id
    assert all(set(c) <= {"customer_no"} for c in event_customers(engine).values() if c)
    await open_page(gateway, made["RECENT"]["page_url"], 410)


async def gateway_bill(running: Running, who: Biller, bill_no: str, **over: Any) -> dict[str, Any]:
    status, made, _ = await running.request("POST", "/v1/bills", who, bill_body(bill_no, **over))
    assert status == 201, made
    return dict(made)


def render(bill: Any) -> dict[str, Any]:
    return {"bill_no": bill.bill_no, "status": bill.status.value}


def unmatched_raws(engine: Engine) -> dict[str, bytes]:
    """The raw record of each transfer result that matched no request, by 顧客番号."""
    m = collection_messages.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(m.event_key, m.raw).where(m.channel == "transfer", m.outcome == "unknown_bill")
        )
        return {r.event_key.split(":")[2]: bytes(r.raw) for r in rows}


@pytest_twisted.ensureDeferred
async def test_results_that_matched_no_request_lose_their_account_once_nothing_needs_it(
    gateway: Running, stores: list[Store], engine: Engine
) -> None:
    """result_91.txt: 顧客番号 1 debited (a refund case: the money goes back to that account), 2
    and 3 failed (no payment); this center asked for none of them, so no bill purges them."""
    acme = gateway.onboard("acme")
    vector = (FIXTURES / "result_91.txt").read_bytes()
    consignor(gateway, acme, "0000012345", "0005-135-1-1234567")
    summary = await run_admin(
        gateway.config_path, "import", "zengin-result", str(FIXTURES / "result_91.txt")
    )
    assert summary["outcomes"] == {"unknown_bill": 3}
    before = unmatched_raws(engine)
    as_received = {r[91:111].decode(): r for r in split_records(vector) if r[:1] == b"2"}
    assert before == as_received  # (each as the bank sent it)
    _, cases, _ = await gateway.request("GET", "/v1/refund-cases", acme)
    (case,) = cases["data"]
    assert (case["reason"], case["amount"], case["status"]) == ("unknown_bill", 5500, "open")
    debit, *failures = sorted(before)

    store = new_store(stores, gateway.config.database.url)
    run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=125)
    cutoff = months_before(run_at, 3)

    # A month from now nothing is old enough.
    soon = await RetentionJob(store, clock_at(run_at - timedelta(days=95))).run()
    assert not soon.purged and unmatched_raws(engine) == before

    # Four months on: the failures lose the account; the debit keeps it while its case is open.
    report = await RetentionJob(store, clock_at(run_at), batch_size=1).run()
    assert (report.messages, report.bills, report.request_items) == (2, 0, 0)
    after = unmatched_raws(engine)
    assert after[debit] == before[debit]
    for number in failures:
        values, errors = parse_fields(DATA, after[number], network="zengin", record=2)
        assert not errors and (values["account_number"], values["holder_name"]) == ("0000000", "")
        assert after[number] == redact_data_record(before[number])
        assert after[number][111:112] == before[number][111:112] != b"0"  # its 振替結果コード

    # Refunded two months before the run: kept another month. Refunded before the cutoff: gone.
    path = f"/v1/refund-cases/{case['case_id']}/resolve"
    resolved = await gateway.request("POST", path, acme, {"resolution": "refunded"})
    assert resolved[0] == 200
    for resolved_at, purged in ((months_before(run_at, 2), 0), (cutoff - timedelta(seconds=1), 1)):
        with engine.begin() as conn:
            conn.execute(update(refund_cases).values(resolved_at=resolved_at))
        again = await RetentionJob(store, clock_at(run_at)).run()
        assert again.messages == purged and again.purged == bool(purged)
    record = unmatched_raws(engine)[debit]
    assert record == redact_data_record(before[debit]) and b"7654321" not in record
    values, errors = parse_fields(DATA, record, network="zengin", record=2)
    assert not errors and (values["amount"], values["result_code"]) == (5500, "0")

    # The money stays: the payment and its case. Nothing is left to do, so no more audit rows.
    _, cases, _ = await gateway.request("GET", "/v1/refund-cases", acme)
    assert [(c["amount"], c["status"]) for c in cases["data"]] == [(5500, "resolved")]
    last = await RetentionJob(store, clock_at(run_at + timedelta(days=30))).run()
    assert not last.purged
    audits = purge_table(engine)
    assert [a.messages for a in audits] == [2, 1]


@pytest_twisted.ensureDeferred
async def test_two_daemons_purging_at_once_purge_each_bill_once(
    gateway: Running, stores: list[Store], engine: Engine
) -> None:
    acme, rival = gateway.onboard("acme"), gateway.onboard("rival")
    for i in range(12):
        who = acme if i % 3 else rival
        await gateway_bill(gateway, who, f"M-{i:02d}")
        assert (await gateway.request("POST", f"/v1/bills/M-{i:02d}/cancel", who))[0] == 200
    named = [i for i, c in event_customers(engine).items() if c and set(c) - {"customer_no"}]
    assert len(named) == 24  # created and cancelled
    clock = clock_at(datetime.now(UTC) + timedelta(days=100))
    url = gateway.config.database.url
    one = RetentionJob(new_store(stores, url), clock, batch_size=3)
    two = RetentionJob(new_store(stores, url), clock, batch_size=3)
    reports = await gatherResults([one.tick(), two.tick(), one.tick(), two.tick()])
    assert all(isinstance(r, PurgeReport) for r in reports)
    assert sum(r.bills for r in reports) == 12
    assert sum(r.events for r in reports) == 24
    rows = purge_table(engine)
    assert sum(r.bills for r in rows) == 12 and sum(r.events for r in rows) == 24
    billers: dict[str, int] = {}
    for row in rows:
        for biller_id, n in json.loads(row.detail)["billers"].items():
            billers[biller_id] = billers.get(biller_id, 0) + n
    assert billers == {"acme": 8, "rival": 4}
    with engine.connect() as conn:
        assert conn.execute(select(bills.c.purge_id).where(bills.c.purge_id.is_(None))).all() == []
    assert all(set(c) <= {"customer_no"} for c in event_customers(engine).values() if c)


@pytest.mark.skipif(not on_postgres(), reason="FOR UPDATE SKIP LOCKED is PostgreSQL's")
@pytest_twisted.ensureDeferred
async def test_a_locked_bill_is_skipped_not_waited_for(gateway: Running, engine: Engine) -> None:
    acme = gateway.onboard("acme")
    for bill_no in ("L-1", "L-2", "L-3"):
        await gateway_bill(gateway, acme, bill_no)
        await gateway.request("POST", f"/v1/bills/{bill_no}/cancel", acme)
    run_at = datetime.now(UTC) + timedelta(days=100)
    report = PurgeReport(ran_at=run_at, cutoff=months_before(run_at, 3), months=3)
    with engine.connect() as holder:
        tx = holder.begin()  # a payment or the biller holds L-2
        holder.execute(select(bills.c.id).where(bills.c.bill_no == "L-2").with_for_update()).one()
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")  # fail, never hang
            report, rows, _ = purge_bills_batch(conn, report, 0, 10)
            assert rows == 2 and report.bills == 2
        tx.rollback()
    with engine.begin() as conn:
        purged = dict(conn.execute(select(bills.c.bill_no, bills.c.purge_id)).all())
        assert purged["L-2"] is None and purged["L-1"] == purged["L-3"] == report.purge_id
        report, rows, _ = purge_bills_batch(conn, report, 0, 10)  # once released
        assert rows == 1 and report.bills == 3
    (audit,) = purge_table(engine)
    assert audit.bills == 3 and json.loads(audit.detail)["billers"] == {"acme": 3}


@pytest_twisted.ensureDeferred
async def test_the_timer_runs_the_job_and_a_failed_run_is_counted(migrated_url: str) -> None:
    from twisted.internet import reactor  # noqa: TID251 - the store's threads need the reactor

    clock = clock_at(datetime(2026, 12, 3, 1, 0, tzinfo=UTC))
    store = Store.from_url(migrated_url, reactor, 1)
    job = RetentionJob(store, clock, months=6)
    service = retention_service(job, 3600, clock)
    assert service.name == "retention"
    failures = counter("gateway_retention_run_failures_total")
    service.startService()  # runs at once: the store is not started, so the run fails
    try:
        first = job.running
        assert first is not None and await first is None
        assert counter("gateway_retention_run_failures_total") - failures == 1
        store.start()
        clock.advance(3599)
        assert job.running is first  # not before the interval
        clock.advance(1)
        second = job.running
        assert second is not first
        report = await second
        assert isinstance(report, PurgeReport) and not report.purged
        assert report.cutoff == datetime(2026, 6, 3, 11, 0, tzinfo=JST)  # 6 months, JST
        assert counter("gateway_retention_run_failures_total") - failures == 1
    finally:
        await service.stopService()
        store.stop()
    with pytest.raises(ValueError, match="months"):
        RetentionJob(store, clock, months=0)
