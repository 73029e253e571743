"""Bills registered by a bulk file get the customer e-mail a bill from POST /v1/bills gets."""

from __future__ import annotations

import pytest
import pytest_twisted
from sqlalchemy import select

from gateway.store import create_db_engine
from gateway.store.schema import bills, notifications
from tests.billing.test_bulk_api import csv_text, line, post_csv
from tests.conftest import Running


@pytest.fixture
def gateway_extra() -> str:
    # A relay nobody listens on: the e-mails stay queued, which is what is looked at here.
    return '[mail]\nrelay = "tcp:127.0.0.1:9"\nsender = "billing@example.jp"\npoll_interval = 60\n'


@pytest_twisted.ensureDeferred
async def test_each_new_bill_with_an_address_is_queued_for_its_e_mail(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    text = csv_text(line("M-1"), line("M-2", email=""), line("M-3", email="c@example.jp"))
    status, summary, _ = await post_csv(gateway, acme, text.encode())
    assert status == 201, summary
    again = csv_text(line("M-1"))  # existing: no second e-mail
    status, summary, _ = await post_csv(gateway, acme, again.encode())
    assert status == 201 and summary["existing"] == 1
    engine = create_db_engine(gateway.config.database.url, 1)
    with engine.connect() as conn:
        queued = conn.execute(
            select(bills.c.bill_no, notifications.c.status)
            .join(bills, bills.c.id == notifications.c.bill_id)
            .order_by(bills.c.bill_no)
        ).all()
    engine.dispose()
    assert [tuple(r) for r in queued] == [("M-1", "pending"), ("M-3", "pending")]
