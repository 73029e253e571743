"""The network registry: a fourth network, defined here and registered through the registry,
receives events end to end (its service → ingest → ledger → outbox) and describes its payments
(the payment's JSON in the outbox, the receipt's 支払方法 and 支払場所) with no core file knowing
it.

The channels are a closed enum (``gateway.model.Channel``; the store records messages and
payments under its values), so a new network needs a migration to bring a channel of its own.
The registry is keyed by network, not by channel, and holds at most one network per channel:
the test network records under an existing channel value (``payeasy``) with its own identifier
scheme, in a registry without the network that owns that channel.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import select
from sqlalchemy.engine import Connection, Row
from twisted.application.service import Service
from twisted.internet.defer import Deferred

from gateway.billing.pages import PageService
from gateway.config import Config, load_config
from gateway.ingest import Ingest, Received
from gateway.model import (
    JST,
    Biller,
    BillTerms,
    Channel,
    CollectionEvent,
    Customer,
    MessageKind,
    Payment,
    PaymentStatus,
    Principal,
    Tax,
)
from gateway.networks.base import Started, Wiring
from gateway.networks.registry import REGISTRY, Registry
from gateway.store import Store, create_db_engine
from gateway.store.billers import create_biller
from gateway.store.bills import BillMatch, Identifiers, NewBill, get_bill, insert_bill
from gateway.store.events import list_events
from gateway.store.schema import bills, payments
from gateway.views import install_descriptions, payment_json
from tests.conftest import config_text
from tests.render.test_receipts import text_of, write

NOW = datetime.now(JST).replace(microsecond=0)


@dataclass(frozen=True)
class KioskBills:
    """A kiosk slip names its bill by the biller's own bill number."""

    channel: Channel = Channel.PAYEASY

    def lookup(self, event: CollectionEvent) -> tuple[str, str] | None:
        return ("kiosk", event.bill_key)

    def match(self, conn: Connection, events: Sequence[CollectionEvent]) -> BillMatch | None:
        def keys_of(r: Row[Any]) -> Sequence[tuple[str, str]]:
            return [("kiosk", r.bill_no)]

        return BillMatch(bills.c.bill_no.in_(sorted({e.bill_key for e in events})), keys_of)

    def billers(self, conn: Connection, events: Sequence[CollectionEvent]) -> dict[str, str]:
        return {}


@dataclass(frozen=True)
class KioskPayments:
    """A kiosk payment's place is the terminal it was made at."""

    wording: str = "キオスク端末"

    def detail(self, store: str) -> dict[str, Any]:
        return {"kiosk": {"terminal": store}}

    def place(self, store: str) -> str:
        return f"端末 {store}"


class KioskCounter(Service):
    """The kiosk network's one service: a counter that reports each payment as a line
    ``BILL_NO,AMOUNT,RECEIPT,TERMINAL``."""

    def __init__(self, ingest: Ingest) -> None:
        self.commits = ingest.committer("kiosk.commit")

    def report(self, line: str) -> Deferred[str]:
        bill_no, amount, receipt, terminal = line.split(",")
        event = CollectionEvent(
            channel=Channel.PAYEASY,
            kind=MessageKind.CONFIRMATION,
            event_key=f"kiosk-{receipt}",
            amount=int(amount),
            paid_at=NOW,
            received_at=NOW,
            source="link:kiosk",
            raw=line.encode(),
            bill_key=bill_no,
            transfer_date=NOW.date(),
            store=terminal,
        )
        return self.commits.submit(Received(event))


class Kiosk:
    name = "kiosk"
    channel = Channel.PAYEASY
    description = KioskPayments()

    def __init__(self) -> None:
        self.counter: KioskCounter | None = None

    def enabled(self, config: Config) -> bool:
        return True

    def limit(self, config: Config) -> int:
        return 300_000

    def identify(
        self,
        config: Config,
        randbelow: Callable[[int], int],
        biller: Biller,
        serial: int,
        terms: BillTerms,
        today: date,
    ) -> Identifiers:
        return Identifiers(None, None)  # a kiosk slip carries the biller's own bill number

    def finder(self, config: Config) -> KioskBills:
        return KioskBills()

    def start(self, wiring: Wiring) -> Started:
        self.counter = KioskCounter(wiring.ingest)
        return Started([self.counter], lambda: {"kiosk": "open"})


def test_one_network_per_channel_and_name() -> None:
    registry = Registry(REGISTRY)
    with pytest.raises(ValueError, match="channel payeasy is 'mpn'"):
        registry.register(Kiosk())
    with pytest.raises(ValueError, match="'cvs' is registered already"):
        registry.register(next(n for n in REGISTRY if n.name == "cvs"))


def test_every_registered_network_describes_its_payments() -> None:
    assert {n.channel: n.description for n in REGISTRY} == REGISTRY.descriptions()
    assert set(REGISTRY.descriptions()) == set(Channel)  # every channel's payments read
    registry = Registry(n for n in REGISTRY if n.channel is not Channel.PAYEASY)
    registry.register(Kiosk())
    assert registry.descriptions()[Channel.PAYEASY] == KioskPayments()

    paid = Payment(
        "pay_1", "acme", "K-1", Channel.PAYEASY, "kiosk-R1", 5400, NOW,
        PaymentStatus.CONFIRMED, NOW, store="T07",
    )  # fmt: skip
    doc = payment_json(paid, registry.descriptions())
    assert list(doc)[-1] == "kiosk" and doc["kiosk"] == {"terminal": "T07"}
    assert payment_json(paid)["bank"] == {"bank_code": "T07", "channel": ""}  # mpn's
    with pytest.raises(LookupError, match="no network describes payeasy payments"):
        payment_json(paid, Registry(n for n in REGISTRY if n.name == "cvs").descriptions())
    assert "kiosk" not in payment_json(dataclasses.replace(paid, store=None))


@pytest.fixture
def kiosk_registry() -> Iterator[Registry]:
    """The registry without the network that owns the channel, and the kiosk registered; its
    descriptions installed for the callers the composition root hands none (as importing
    gateway.networks.registry installs REGISTRY's), and REGISTRY's again afterwards."""
    registry = Registry(n for n in REGISTRY if n.channel is not Channel.PAYEASY)
    registry.register(Kiosk())
    install_descriptions(registry.descriptions())
    try:
        yield registry
    finally:
        install_descriptions(REGISTRY.descriptions())


@pytest_twisted.ensureDeferred
async def test_a_registered_test_network_receives_events_end_to_end(
    tmp_path: Path, migrated_url: str, kiosk_registry: Registry
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    path = tmp_path / "gateway.toml"
    path.write_text(config_text(migrated_url), encoding="utf-8")
    config = load_config(path)
    engine = create_db_engine(migrated_url, 1)
    with engine.begin() as conn:
        create_biller(
            conn,
            biller_id="acme",
            name="Acme",
            kana="ｱｸﾒ",
            channels=frozenset({Channel.PAYEASY}),
            payeasy_institution_code=None,
            now=NOW,
        )
        terms = BillTerms(
            "K-1",
            5400,
            NOW.date() + timedelta(days=10),
            frozenset({Channel.PAYEASY}),
            Customer("C1"),
            Tax(),
            None,
        )
        insert_bill(conn, NewBill("acme", terms, "tok-K-1"), NOW, lambda _: Identifiers(None, None))

    registry = kiosk_registry
    kiosk = next(n for n in registry if isinstance(n, Kiosk))
    assert [n.name for n in registry] == ["cvs", "zengin", "kiosk"]
    assert registry.limits(config)[Channel.PAYEASY] == 300_000

    # Wired as the composition root wires every network (gateway.app.service).
    store = Store.from_url(migrated_url, reactor, 2)
    store.start()
    try:
        ingest = Ingest(store, reactor, lambda b: {"bill_no": b.bill_no}, registry.finders(config))
        started = kiosk.start(Wiring(config, store, ingest, reactor))
        assert started.services == [kiosk.counter] and started.readiness is not None
        assert kiosk.counter is not None
        assert await kiosk.counter.report("K-1,5400,R1,T07") == "applied"
        assert await kiosk.counter.report("K-1,5400,R1,T07") == "duplicate"  # a resend
        assert await kiosk.counter.report("K-404,5400,R2,T07") == "unknown_bill"

        # Its receipt says how and where, as the kiosk describes it.
        pages = PageService(
            store,
            reactor,
            30,
            descriptions=registry.descriptions(),
            barcode_text=lambda digits: digits,
        )
        _, pdf = await pages.receipt_for_bill(Principal("key", "acme", False), "K-1")
        text = text_of(write(tmp_path, pdf))
        assert re.search(r"支払方法\s+キオスク端末", text)
        assert re.search(r"支払場所\s+端末 T07", text)
    finally:
        store.stop()

    with engine.connect() as conn:
        found = get_bill(conn, "acme", "K-1")
        assert found is not None
        assert found[1].status.value == "confirmed"
        (payment,) = conn.execute(select(payments).where(payments.c.event_key == "kiosk-R1")).all()
        assert (payment.channel, payment.event_key, payment.amount) == (
            "payeasy",
            "kiosk-R1",
            5400,
        )
        (confirmed,) = [
            e for e in list_events(conn, "acme", 0, 100) if e.type == "payment.confirmed"
        ]
        paid = confirmed.data["payment"]
        assert paid["kiosk"] == {"terminal": "T07"} and "bank" not in paid and "store" not in paid
    engine.dispose()
