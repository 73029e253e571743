"""Fuzz checks of what a biller hands the API: JSON request bodies, and bulk bill files (see
tests/fuzz/registry.py).

A body is read as the API reads it (``Call.json_body``: ``Problem`` for what is not a JSON
object, ``InvalidRequest`` for a NUL), then given to every body parser, each of which may only
answer ``InvalidRequest``. The parsers that live inside a service's method (cancel, reissue,
refund-case resolution, redelivery) run that method against a store that stops it at its first
transaction: reaching the store means the body was accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

from twisted.internet import task

from gateway.billing.billers import parse_biller_request
from gateway.billing.bills import BillService, parse_bill_request
from gateway.billing.bulk import check_file
from gateway.billing.mandates import parse_mandate_request
from gateway.billing.payments import PaymentService
from gateway.config import load_config
from gateway.errors import InvalidRequest
from gateway.mappers import bills_csv as bill_files
from gateway.mappers.cvs import barcode
from gateway.model import Channel, Principal
from gateway.money.fees import parse_plan
from gateway.protocols.api.http import Call, Problem
from gateway.webhooks.api import WebhookApi, parse_endpoint_request

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "conf" / "gateway.example.toml"
TODAY = date(2026, 11, 23)
LIMITS = {
    Channel.CVS: barcode.MAX_AMOUNT,
    Channel.PAYEASY: 9_999_999_999,
    Channel.TRANSFER: 9_999_999_999,
}
PRINCIPAL = Principal("key_fuzz", "fuzz-biller", False)
#: What a bulk upload may name as its charset; the last one is refused (415).
CHARSETS = (None, "utf-8", "shift_jis", "latin1")


class _Stored(Exception):
    """The service reached the store: its body was accepted."""


class _Store:
    dialect = "sqlite"

    async def run_interaction(self, *args: object, **kwargs: object) -> NoReturn:
        raise _Stored


class _Request:
    """What ``Call.json_body`` asks of a request: its Content-Type."""

    def getHeader(self, name: str) -> str | None:
        return "application/json" if name.lower() == "content-type" else None


_CONFIG = load_config(EXAMPLE)
_CLOCK = task.Clock()
_CLOCK.advance(1_795_000_000)  # 2026-11-18
_BILLS = BillService(_Store(), _CLOCK, _CONFIG, None)  # type: ignore[arg-type]
_PAYMENTS = PaymentService(_Store(), _CLOCK)  # type: ignore[arg-type]
_WEBHOOKS = WebhookApi(_Store(), _CLOCK, _CONFIG)  # type: ignore[arg-type]


def _until_store(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Run a service method up to its first transaction."""
    try:
        coroutine.send(None)
    except (_Stored, StopIteration):
        return
    coroutine.close()
    raise AssertionError("the method waited for something other than the store")


PARSERS: tuple[Callable[[object], object], ...] = (
    lambda doc: parse_bill_request(doc, limits=LIMITS, today=TODAY, max_due_days=365),
    lambda doc: _until_store(_BILLS.cancel(PRINCIPAL, "INV-1", doc, None)),
    lambda doc: _until_store(_BILLS.reissue(PRINCIPAL, "INV-1", doc, None)),
    lambda doc: parse_mandate_request(doc, check_bank_master=True),
    lambda doc: parse_mandate_request(doc, check_bank_master=False),
    lambda doc: parse_endpoint_request(doc, allow_http=False),
    lambda doc: _until_store(_WEBHOOKS.create(PRINCIPAL, doc, None)),
    lambda doc: _until_store(_WEBHOOKS.redeliver(PRINCIPAL, "evt_1", doc, None)),
    lambda doc: parse_plan(doc),
    lambda doc: parse_plan(doc, effective_from=TODAY),
    lambda doc: parse_biller_request(_CONFIG, doc),
    lambda doc: _until_store(_PAYMENTS.resolve(PRINCIPAL, "rc_1", doc)),
)


def api_json(data: bytes) -> None:
    call = Call(_Request(), {}, PRINCIPAL, data)  # type: ignore[arg-type]
    try:
        doc = call.json_body(required=False)
    except (Problem, InvalidRequest):
        return
    for parse in PARSERS:
        try:
            parse(doc)
        except InvalidRequest as e:
            assert e.errors, "InvalidRequest without a field"


def bills_csv(data: bytes) -> None:
    """A bulk bill upload: the first byte picks the charset the sender names, the rest is the
    file, checked row by row as the API checks a body; then the errors file is written."""
    charset = CHARSETS[data[0] % len(CHARSETS)] if data else None
    try:
        checked = check_file(data[1:], charset, limits=LIMITS, today=TODAY, max_due_days=365)
    except InvalidRequest as e:
        assert e.errors, "InvalidRequest without a field"
        return
    assert checked.passed + len({row for row, _, _ in checked.errors}) == checked.total
    bill_files.write_csv(bill_files.ERROR_COLUMNS, checked.errors, checked.encoding)
