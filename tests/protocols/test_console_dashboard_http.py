"""The console's dashboard over HTTP, through the real service (in this process): today's and
this month's payments received, confirmed, voided and paid twice per channel, a biller's user
seeing its own biller's only, a center user every biller's or one's, and the server-side SVG
chart of daily collections per channel (no script, no inline style)."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from functools import partial
from typing import Any

import pytest_twisted

from gateway.billing.bills import bill_json
from gateway.ingest import Ingest, Received
from gateway.model import JST, MessageKind
from gateway.networks.issuer import Issuer
from gateway.networks.registry import REGISTRY
from gateway.store import create_db_engine
from tests.conftest import Running, jst_today
from tests.helpers import cvs_event
from tests.protocols.test_console_http import logged_in
from tests.test_api import bill_body

TODAY = jst_today()


def at(hour: int, minute: int = 0, days: int = 0) -> datetime:
    return datetime.combine(TODAY + timedelta(days=days), time(hour, minute), JST)


def store_message(
    gateway: Running, barcode: str, kind: MessageKind, paid_at: datetime, store: str = "0110002"
) -> None:
    """One store message, received at ``paid_at`` (through the ingest core)."""
    config = gateway.config
    ingest = Ingest(
        None,
        None,
        partial(bill_json, public_url=config.api.public_url, issuer=Issuer(config)),
        REGISTRY.finders(config),
    )
    event = cvs_event(barcode, kind, paid_at, store=store, transfer_date=paid_at.date())
    engine = create_db_engine(config.database.url, 1)
    with engine.begin() as conn:
        assert ingest.apply(conn, Received(event), paid_at, paid_at.date()) == "applied"
    engine.dispose()


async def barcode_of(gateway: Running, who: Any, bill_no: str) -> str:
    status, bill, _ = await gateway.request("POST", "/v1/bills", who, bill_body(bill_no))
    assert status == 201, bill
    return str(bill["cvs"]["barcode"])


def figures(page: str, row: str) -> list[tuple[int, str]]:
    """(count, yen) of received, confirmed, voided, double in the row ``row`` of the page."""
    found = re.search(rf'<tr id="{row}"[^>]*>(.*?)</tr>', page, re.S)
    assert found, row
    cells = re.findall(
        r'<span class="count">(\d+)件</span><br><span class="amount">([^<]+)</span>',
        found.group(1),
    )
    return [(int(n), amount) for n, amount in cells]


@pytest_twisted.ensureDeferred
async def test_the_dashboard(gateway: Running) -> None:
    acme, beta = gateway.onboard("acme"), gateway.onboard("beta")
    confirmed = await barcode_of(gateway, acme, "A-1")
    voided = await barcode_of(gateway, acme, "A-2")
    twice = await barcode_of(gateway, acme, "A-3")
    last_month = await barcode_of(gateway, acme, "A-4")
    theirs = await barcode_of(gateway, beta, "B-1")
    store_message(gateway, confirmed, MessageKind.PRELIMINARY, at(0, 1))
    store_message(gateway, confirmed, MessageKind.CONFIRMATION, at(0, 1))
    store_message(gateway, voided, MessageKind.PRELIMINARY, at(0, 2))
    store_message(gateway, voided, MessageKind.VOID, at(0, 2))
    store_message(gateway, twice, MessageKind.PRELIMINARY, at(0, 3))
    store_message(gateway, twice, MessageKind.PRELIMINARY, at(0, 4), store="0220003")
    first = TODAY.replace(day=1)
    store_message(
        gateway, last_month, MessageKind.PRELIMINARY, at(12, days=(first - TODAY).days - 1)
    )
    store_message(gateway, theirs, MessageKind.PRELIMINARY, at(0, 5))

    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")
    status, page, _ = await clerk.get("/console/dashboard?biller=beta")
    assert status == 200 and 'name="biller"' not in page
    # received, confirmed, voided, double: today, at convenience stores, acme's only
    assert figures(page, "day-cvs") == [(4, "¥21,600"), (1, "¥5,400"), (1, "¥5,400"), (1, "¥5,400")]
    assert figures(page, "day-payeasy") == [(0, "¥0")] * 4
    assert figures(page, "day-total") == figures(page, "day-cvs")
    assert figures(page, "month-cvs") == figures(page, "day-cvs")  # not last month's

    svg = re.search(r'<svg [^>]*id="chart-svg".*?</svg>', page, re.S)
    assert svg and 'role="img"' in svg.group(0) and "<title" in svg.group(0)
    tips = re.findall(r'<rect class="bar"[^>]*><title>([^<]+)</title>', svg.group(0))
    # live payments made today: twice (A-2 was voided)
    assert tips == [f"{TODAY.month}/{TODAY.day} コンビニ ¥16,200（3件）"]
    assert "style=" not in svg.group(0) and "<script" not in page.split("</head>")[1]
    assert f'<th scope="row">{TODAY.isoformat()}</th>' in page  # the same figures as a table

    desk = await logged_in(gateway, "desk", "support", None)
    _, page, _ = await desk.get("/console/dashboard")
    assert 'name="biller"' in page
    assert figures(page, "day-cvs")[0] == (5, "¥27,000")  # acme's and beta's
    _, page, _ = await desk.get("/console/dashboard?biller=beta")
    assert figures(page, "day-cvs") == [(1, "¥5,400"), (0, "¥0"), (0, "¥0"), (0, "¥0")]
    assert (await desk.get("/console/dashboard?biller=nobody"))[0] == 404
    books = await logged_in(gateway, "books", "finance", None)
    assert (await books.get("/console/dashboard"))[0] == 200
