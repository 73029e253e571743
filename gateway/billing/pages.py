"""What customers see: the payment page and the e-receipt of a bill.

``GET /p/{token}`` (no authentication: the token is the secret) shows the bill as
:mod:`gateway.render.payment_page` renders it. ``GET /p/{token}/receipt.pdf`` and, for the biller,
``GET /v1/bills/{bill_no}/receipt.pdf`` give the e-receipt
(:func:`gateway.render.receipts.render_receipt`) of the payment that settled a confirmed bill.

Retention: the page and the receipt of a bill that is paid, confirmed, expired or cancelled, and
has not changed for ``[bills] retention_days``, answer 410 Gone, and so do those of a bill whose
customer data the retention job (:mod:`gateway.billing.retention`) has purged, whatever
``retention_days`` says. The biller's own receipt route is not limited by either (a purged
bill's receipt is made out to 上様: the name is gone).

The receipt is built from the payment, so it is the same document every time: its number is
``R-`` and the first 16 hex digits of the payment id, its date of issue the moment the payment
was confirmed. It is rendered on the reactor's thread pool (ReportLab and the bank master take
milliseconds to seconds), never on the reactor thread. How and where the payment was made
(支払方法, 支払場所) is its network's to say: the composition root hands :class:`PageService` the
networks' payment descriptions (``gateway.networks.registry``, ``Registry.descriptions``), and
the human-readable form of a CVS barcode (``Issuer.human_readable``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool

from gateway.billing.chains import paying_chains
from gateway.clock import now as clock_now
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.infra.secretbox import token_hash
from gateway.model import (
    BillStatus,
    Channel,
    Payment,
    PaymentStatus,
    Principal,
    business_date,
)
from gateway.render.barcode_svg import barcode_svg
from gateway.render.payment_page import PageState, PageView, page_state, render_page
from gateway.render.receipts import Receipt, render_receipt
from gateway.store import Store
from gateway.store.pages import BillView, view_by_bill_no, view_by_token_hash
from gateway.views import Descriptions, description

T = TypeVar("T")

# Tokens are 32 URL-safe characters (gateway.infra.secretbox; before migration 0009
# secrets.token_urlsafe(24)); anything unlike a token is not looked up.
TOKEN = re.compile(r"[A-Za-z0-9_\-]{16,64}")
_SETTLED = frozenset(
    {BillStatus.PAID, BillStatus.CONFIRMED, BillStatus.EXPIRED, BillStatus.CANCELLED}
)
BARCODE_HEIGHT = 120  # SVG units at 2 per module: about 1/5 of the symbol's width, for scanners


class PageGone(GatewayError):
    """The bill is past the retention period: its page and receipt answer 410."""


def receipt_number(payment_id: str) -> str:
    """``R-XXXX-XXXX-XXXX-XXXX``: the first 16 hex digits of the payment id (a digest of it for
    an id of another shape), so a payment always gets the same number."""
    _, _, tail = payment_id.partition("_")
    digits = tail.lower() if re.fullmatch(r"[0-9a-f]{16,}", tail.lower()) else ""
    digits = (digits or hashlib.sha256(payment_id.encode()).hexdigest())[:16].upper()
    return "R-" + "-".join(digits[i : i + 4] for i in range(0, 16, 4))


def payment_place(payment: Payment, descriptions: Descriptions) -> str:
    """Where the payment was made, as a receipt prints it (its network's description: the
    chain and store code, or the bank and branch, or how the customer paid); ``—`` when its
    message did not say."""
    if not payment.store:
        return "—"
    return description(payment.channel, descriptions).place(payment.store)


def receipt_payment(view: BillView) -> Payment:
    """The payment a confirmed bill's receipt is for: its oldest confirmed payment that is not
    to be refunded. :class:`Conflict` when the bill is not confirmed."""
    if view.bill.status is not BillStatus.CONFIRMED:
        raise Conflict(
            f"bill {view.bill.bill_no} is {view.bill.status.value}: a receipt is issued once "
            "its payment is confirmed"
        )
    for payment in view.payments:
        if payment.status is PaymentStatus.CONFIRMED and payment.payment_id not in view.refunded:
            return payment
    raise Conflict(f"bill {view.bill.bill_no} has no confirmed payment to issue a receipt for")


def build_receipt(view: BillView, descriptions: Descriptions) -> Receipt:
    payment = receipt_payment(view)
    bill = view.bill
    tax = min(bill.tax.tax_amount, payment.amount) if bill.tax.taxable else 0
    return Receipt(
        receipt_no=receipt_number(payment.payment_id),
        issued_at=payment.confirmed_at or payment.paid_at,
        biller_name=view.biller_name,
        customer_name=bill.customer.name,
        bill_no=bill.bill_no,
        description=bill.description,
        amount=payment.amount,
        tax_amount=tax,
        method=description(payment.channel, descriptions).wording,
        paid_at=payment.paid_at,
        place=payment_place(payment, descriptions),  # (on a pool thread: the bank master)
    )


def paying_payment(view: BillView) -> Payment | None:
    """The first live payment that is not to be refunded: the one the page says paid it."""
    live = [p for p in view.payments if p.live and p.payment_id not in view.refunded]
    return live[0] if live else None


class PageService:
    def __init__(
        self,
        store: Store,
        clock: IReactorTime,
        retention_days: int,
        *,
        descriptions: Descriptions,
        barcode_text: Callable[[str], str],
    ) -> None:
        """``clock`` is the reactor: its time, and its thread pool for the PDFs (a test clock
        without threads renders them inline). ``descriptions``: how each channel's payments
        read on a receipt; ``barcode_text``: a CVS barcode's human-readable form, printed
        under it on the page."""
        self.store = store
        self.clock = clock
        self.retention = timedelta(days=retention_days)
        self.descriptions = descriptions
        self.barcode_text = barcode_text

    def _now(self) -> datetime:
        return clock_now(self.clock)

    async def _by_token(self, token: str) -> BillView:
        if not TOKEN.fullmatch(token):
            raise NotFound("page")
        # Looked up by its SHA-256: the database keeps no page token.
        view = await self.store.run_interaction(
            "pages.by_token", view_by_token_hash, token_hash(token)
        )
        if view is None:
            raise NotFound("page")
        bill = view.bill
        if view.purged:
            raise PageGone("the customer data of the bill is purged")
        if bill.status in _SETTLED and self._now() - bill.updated_at > self.retention:
            raise PageGone("the page is past the retention period")
        return view

    async def page(self, token: str) -> str:
        """The page's HTML. :class:`NotFound` for an unknown token, :class:`PageGone` past the
        retention period."""
        view = await self._by_token(token)
        bill, now = view.bill, self._now()
        state = page_state(bill.status, bill.due_date, business_date(now), view.debit_in_flight)
        svg = text = None
        if state is PageState.PAYABLE and bill.slip is not None:
            svg = barcode_svg(bill.slip.barcode, height=BARCODE_HEIGHT)
            text = self.barcode_text(bill.slip.barcode)
        paying = paying_payment(view)
        chains = paying_chains(view.chain_rules)
        return render_page(
            PageView(
                token=token,
                biller_name=view.biller_name,
                bill_no=bill.bill_no,
                amount=bill.amount,
                due_date=bill.due_date,
                description=bill.description,
                state=state,
                double_paid=bill.double_paid,
                barcode_svg=svg,
                barcode_text=text,
                payeasy=bill.payeasy if state is PageState.PAYABLE else None,
                transfer=Channel.TRANSFER in bill.channels,
                paid_at=paying.paid_at if paying is not None else None,
                rendered_at=now,
                amount_range=(
                    (bill.min_amount, bill.max_amount)
                    if bill.min_amount is not None and bill.max_amount is not None
                    else None
                ),
                chain_stores=chains.stores,
                chain_apps=chains.apps,
                chain_others=chains.others,
                chains_limited=chains.limited,
            )
        )

    async def receipt_by_token(self, token: str) -> tuple[str, bytes]:
        """(file name, PDF) for the customer: NotFound, PageGone, or Conflict (not confirmed)."""
        view = await self._by_token(token)
        return await self._render(view)

    async def receipt_for_bill(self, principal: Principal, bill_no: str) -> tuple[str, bytes]:
        """(file name, PDF) for the biller; another biller's bill is NotFound."""
        view = await self.store.run_interaction(
            "pages.by_bill_no", view_by_bill_no, principal.biller_id or "", bill_no
        )
        if view is None:
            raise NotFound(f"bill {bill_no}")
        return await self._render(view)

    async def _render(self, view: BillView) -> tuple[str, bytes]:
        payment = receipt_payment(view)  # Conflict before any thread is used
        name = f"receipt-{receipt_number(payment.payment_id)}.pdf"
        return name, await self._in_thread(self._receipt_pdf, view)

    def _receipt_pdf(self, view: BillView) -> bytes:
        return render_receipt(build_receipt(view, self.descriptions))

    def _in_thread(self, fn: Callable[[BillView], T], view: BillView) -> Deferred[T]:
        reactor: Any = self.clock
        if IReactorThreads.providedBy(reactor):
            return deferToThreadPool(reactor, reactor.getThreadPool(), fn, view)
        return Deferred.fromCoroutine(_now(fn, view))  # a test clock without threads


async def _now(fn: Callable[[BillView], T], view: BillView) -> T:
    return fn(view)
