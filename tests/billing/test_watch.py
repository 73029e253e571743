"""The operator's watch (gateway.billing.watch, gateway.store.watch) on a real ledger: what it
counts is what the ledger holds — pending payments and the oldest of them, open refund cases,
debits whose date has passed with no result, deliveries waiting per endpoint — and the gauges
say the same; its two queries go through the indexes of migration 0012."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest_twisted
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from prometheus_client import REGISTRY
from sqlalchemy import text
from twisted.internet.task import deferLater

from gateway.billing.watch import publish
from gateway.model import JST, MessageKind
from gateway.store import create_db_engine
from gateway.store.schema import metadata
from gateway.store.watch import WatchFigures, watch_figures
from tests.billing.test_payments_api import NOW, pay
from tests.conftest import Running, jst_today, on_postgres
from tests.deploy.promserver import reactor, samples, scrape
from tests.networks.test_zengin_transfer import bill, consignor, debit_day, mandate, run_admin


def figures(running: Running, days_later: int = 0) -> WatchFigures:
    engine = create_db_engine(running.config.database.url, 1)
    try:
        with engine.begin() as conn:
            return watch_figures(conn, jst_today() + timedelta(days=days_later))
    finally:
        engine.dispose()


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


@pytest_twisted.ensureDeferred
async def test_the_watch_counts_what_the_ledger_holds(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    made = []
    for n in range(3):
        status, doc, _ = await gateway.request(
            "POST",
            "/v1/bills",
            acme,
            {
                "bill_no": f"W-{n}",
                "amount": 1000 + n,
                "due_date": debit_day(8).isoformat(),
                "channels": ["cvs"],
            },
        )
        assert status == 201, doc
        made.append(doc["cvs"]["barcode"])
    pending, confirmed, twice = made
    assert pay(gateway, pending, MessageKind.PRELIMINARY) == "applied"
    assert pay(gateway, confirmed, MessageKind.PRELIMINARY) == "applied"
    assert pay(gateway, confirmed, MessageKind.CONFIRMATION) == "applied"
    assert pay(gateway, twice, MessageKind.PRELIMINARY, store="0110002") == "applied"
    assert pay(gateway, twice, MessageKind.PRELIMINARY, store="0220003", minutes=5) == "applied"

    # Account transfer: two debits asked of the bank for a date three business days ahead.
    consignor(gateway, acme)
    day = debit_day()
    await mandate(gateway, acme, "C1")
    await bill(gateway, acme, "T1", "C1", 5400, day)
    await bill(gateway, acme, "T2", "C1", 3000, day)
    await run_admin(gateway.config_path, "zengin", "request", "--date", day.isoformat())

    # Webhooks: an endpoint whose deliveries cannot be made (its name does not resolve).
    status, endpoint, _ = await gateway.request(
        "POST",
        "/v1/webhook-endpoints",
        acme,
        {"url": "https://hooks.acme.invalid/gw", "events": ["*"]},
    )
    assert status == 201, endpoint
    await gateway.request(
        "POST",
        "/v1/bills",
        acme,
        {
            "bill_no": "W-hook",
            "amount": 1000,
            "due_date": debit_day(8).isoformat(),
            "channels": ["cvs"],
        },
    )
    deadline = reactor().seconds() + 30
    while not figures(gateway).webhook_backlog:
        assert reactor().seconds() < deadline, "no webhook delivery was made"
        await deferLater(reactor(), 0.1)

    seen = figures(gateway)
    assert seen.pending == {"cvs": 3}  # the 速報 alone, and both 速報 of the double payment
    assert seen.oldest_pending["cvs"] == NOW  # pay() pays at NOW (minutes later for the 2nd)
    assert seen.open_cases == {"double_payment": 1}
    assert seen.oldest_open_case is not None
    assert seen.unanswered_debits == 0  # the debit date is ahead
    assert seen.webhook_backlog == {endpoint["id"]: seen.webhook_backlog[endpoint["id"]]}
    assert seen.webhook_backlog[endpoint["id"]] >= 1

    # A day after the debit date, no result has come: both debits are waiting for one.
    late = figures(gateway, days_later=(day - jst_today()).days + 1)
    assert late.unanswered_debits == 2 and late.oldest_unanswered_debit == day

    # The gauges say the same, with ages as of two days after the debit date began.
    now = datetime.combine(day + timedelta(days=2), time(), JST)
    publish(late, now)
    assert gauge("gateway_ledger_pending_payments", channel="cvs") == 3
    assert gauge("gateway_ledger_pending_payments", channel="payeasy") == 0
    age = gauge("gateway_ledger_pending_max_age_seconds", channel="cvs")
    assert age == (now - NOW).total_seconds()
    assert gauge("gateway_ledger_pending_max_age_seconds", channel="transfer") == 0
    assert gauge("gateway_refund_cases_open", reason="double_payment") == 1
    assert gauge("gateway_refund_cases_open", reason="unknown_bill") == 0
    assert gauge("gateway_zengin_unanswered_debits") == 2
    assert gauge("gateway_zengin_unanswered_max_age_seconds") == 2 * 86400
    assert gauge("gateway_webhook_endpoint_backlog", endpoint=endpoint["id"]) >= 1

    # Nothing left: ages go back to 0, and the endpoint's backlog series goes away.
    publish(WatchFigures(), now)
    assert gauge("gateway_ledger_pending_max_age_seconds", channel="cvs") == 0
    assert gauge("gateway_refund_cases_open_max_age_seconds") == 0
    assert gauge("gateway_webhook_endpoint_backlog", endpoint=endpoint["id"]) is None

    # The daemon runs the watch: its gauges and failure counter are on /metrics.
    metrics = await scrape(gateway.metrics)
    assert samples(metrics, "gateway_watch_run_failures_total") == {(): 0.0}
    assert set(samples(metrics, "gateway_ledger_pending_payments")) == {
        (("channel", c),) for c in ("cvs", "payeasy", "transfer")
    }


def test_the_watch_reads_pending_payments_and_waiting_debits_by_index(migrated_url: str) -> None:
    engine = create_db_engine(migrated_url, 1)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            assert [d for d in diff if "status_channel_paid_at" in repr(d)] == []
            assert [d for d in diff if "result_code_debit_date" in repr(d)] == []
            if on_postgres():
                return
            plans = [
                " ".join(str(v) for v in row)
                for query in (
                    "SELECT channel, count(*), min(paid_at) FROM payments"
                    " WHERE status = 'pending' GROUP BY channel",
                    "SELECT count(*), min(debit_date) FROM zengin_request_items"
                    " WHERE result_code IS NULL AND debit_date < '2026-01-01'",
                )
                for row in conn.execute(text("EXPLAIN QUERY PLAN " + query))
            ]
    finally:
        engine.dispose()
    assert any("ix_payments_status_channel_paid_at" in p for p in plans), plans
    assert any("ix_zengin_request_items_result_code_debit_date" in p for p in plans), plans
