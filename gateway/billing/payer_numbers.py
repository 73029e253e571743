"""Reusable payer numbers: one lasting Pay-easy お客様番号 per customer of a biller.

``PUT /v1/customers/{customer_no}/payer-number`` gives the customer one (201), or answers the
one they have (200): a number never changes, so that the customer can type it month after month.
``GET`` reads it; ``GET …/card.pdf`` is the printable card (gateway.render.payer_card). The MPN
link answers a 照会 with it from the customer's oldest open bill (gateway.networks.mpn_payer).

``DELETE`` revokes it (a card lost, a number seen by someone else, a customer who leaves): from
its commit a 照会 or 消込 with it is answered ``1001`` as an unknown number, ``GET`` and the card
are 404, and the next ``PUT`` gives a new number — never the revoked one (its row is kept, its
digits stay taken). The answer is the revoked number with ``revoked_at`` and ``revoked_by`` (the
API key's id): the record of who revoked it and when, kept with the number. Revoking again
answers the same (200, nothing changes); a customer who never had a number is 404. No event:
giving a number emits none either. Bills and their own numbers are not touched, nor a payment
made with the number before (a 取消 of it still reaches its bill).

Rules: the gateway must have Pay-easy (``[mpn]``) and the biller the ``payeasy`` channel (else
422 naming ``customer_no``, as for mandates); a suspended biller gets no new number. The number
is 18 digits (gateway.mappers.mpn.numbers.payer_number: the biller code, the number's serial
under ``[mpn] number_key``, a check digit), the 確認番号 random (``[mpn] confirmation_digits``),
both shown to the biller like a bill's and never logged. The customer's bills it pays are those
of the same ``customer_no`` with ``payeasy`` among their channels, registered before or after.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool

from gateway.billing.actors import key_actor
from gateway.billing.bills import CUSTOMER_NO
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.config import Config
from gateway.errors import FieldError, InvalidRequest, NotFound
from gateway.mappers.mpn import numbers
from gateway.model import Channel, Outcome, PayerNumber, Principal, business_date
from gateway.render.payer_card import PayerCard, render_card
from gateway.store import Store
from gateway.store.billers import active_biller, get_biller
from gateway.store.payer_numbers import (
    customer_name,
    get_payer_number,
    insert_payer_number,
    oldest_open_bill,
    revoke_payer_number,
)
from gateway.validation import Fields
from gateway.views import iso

T = TypeVar("T")


def _customer_no(customer_no: str) -> str:
    if not re.fullmatch(CUSTOMER_NO, customer_no):
        raise NotFound(f"payer number of customer {customer_no[:64]}")
    return customer_no


class PayerNumberService:
    def __init__(
        self,
        store: Store,
        clock: IReactorTime,
        config: Config,
        randbelow: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.randbelow = randbelow

    def card_url(self, customer_no: str) -> str:
        return f"{self.config.api.public_url}/v1/customers/{customer_no}/payer-number/card.pdf"

    def _json(self, conn: Connection, payer: PayerNumber) -> dict[str, Any]:
        """The number as the API shows it, with the bill a 照会 would answer today (none, and
        no card, for a revoked number)."""
        live = payer.revoked_at is None
        found = oldest_open_bill(conn, payer, clock_today(self.clock)) if live else None
        return {
            "customer_no": payer.customer_no,
            "institution_code": payer.institution_code,
            "customer_number": payer.customer_number,
            "confirmation_number": payer.confirmation_number,
            "next_bill_no": found[1].bill_no if found else None,
            "card_url": self.card_url(payer.customer_no) if live else None,
            "created_at": iso(payer.created_at),
            "revoked_at": iso(payer.revoked_at),
            "revoked_by": payer.revoked_by,
        }

    async def put(
        self, principal: Principal, customer_no: str, body: object
    ) -> tuple[Outcome, dict[str, Any]]:
        """Give the customer a payer number (created), or answer the one they have (done)."""
        customer_no = _customer_no(customer_no)
        if body is not None:  # nothing to send: an empty object at most
            f = Fields(body)
            f.finish()
            f.raise_if_invalid()
        mpn = self.config.mpn
        now = clock_now(self.clock)

        def txn(conn: Connection) -> tuple[Outcome, dict[str, Any]]:
            assert principal.biller_id is not None
            biller = active_biller(conn, principal.biller_id)
            if mpn is None or Channel.PAYEASY not in biller.channels:
                off = "Pay-easy is not enabled for this biller"
                raise InvalidRequest([FieldError("customer_no", off)])
            payer, created = insert_payer_number(
                conn,
                biller.biller_id,
                customer_no,
                biller.payeasy_institution_code or mpn.institution_code,
                numbers.confirmation_number(self.randbelow, mpn.confirmation_digits),
                now,
                lambda serial: numbers.payer_number(biller.code, serial, mpn.number_key),
            )
            return (Outcome.CREATED if created else Outcome.DONE), self._json(conn, payer)

        return await self.store.run_interaction("payer_numbers.put", txn)

    def _found(self, conn: Connection, principal: Principal, customer_no: str) -> PayerNumber:
        assert principal.biller_id is not None
        found = get_payer_number(conn, principal.biller_id, customer_no)
        if found is None:
            raise NotFound(f"payer number of customer {customer_no}")
        return found

    async def get(self, principal: Principal, customer_no: str) -> dict[str, Any]:
        customer_no = _customer_no(customer_no)

        def txn(conn: Connection) -> dict[str, Any]:
            return self._json(conn, self._found(conn, principal, customer_no))

        return await self.store.run_interaction("payer_numbers.get", txn)

    async def revoke(self, principal: Principal, customer_no: str) -> dict[str, Any]:
        """Revoke the customer's number (see the module's docstring); NotFound when the
        customer never had one."""
        customer_no = _customer_no(customer_no)
        now = clock_now(self.clock)

        def txn(conn: Connection) -> dict[str, Any]:
            assert principal.biller_id is not None
            found = revoke_payer_number(
                conn, principal.biller_id, customer_no, now, key_actor(principal)
            )
            if found is None:
                raise NotFound(f"payer number of customer {customer_no}")
            return self._json(conn, found[0])

        return await self.store.run_interaction("payer_numbers.revoke", txn)

    async def card(self, principal: Principal, customer_no: str) -> tuple[str, bytes]:
        """(file name, PDF) of the customer's card; NotFound without a number."""
        customer_no = _customer_no(customer_no)

        def txn(conn: Connection) -> PayerCard:
            payer = self._found(conn, principal, customer_no)
            biller = get_biller(conn, payer.biller_id)
            return PayerCard(
                biller_name=biller.name,
                customer_no=payer.customer_no,
                customer_name=customer_name(conn, payer),
                institution_code=payer.institution_code,
                customer_number=payer.customer_number,
                confirmation_number=payer.confirmation_number,
                issued_on=business_date(payer.created_at),
            )

        card = await self.store.run_interaction("payer_numbers.card", txn)
        return f"payer-number-{customer_no}.pdf", await self._in_thread(render_card, card)

    def _in_thread(self, fn: Callable[[PayerCard], T], card: PayerCard) -> Deferred[T]:
        reactor: Any = self.clock
        if IReactorThreads.providedBy(reactor):
            return deferToThreadPool(reactor, reactor.getThreadPool(), fn, card)
        return Deferred.fromCoroutine(_now(fn, card))  # a test clock without threads


async def _now(fn: Callable[[PayerCard], T], card: PayerCard) -> T:
    return fn(card)
