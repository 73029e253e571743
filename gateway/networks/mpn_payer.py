"""Reusable payer numbers on the MPN link: a customer's lasting お客様番号 pays their bills in
turn (docs/networks/mpn.md, "Reusable payer numbers").

Rules
-----

- An お客様番号 of 18 digits is a payer number (gateway.mappers.mpn.numbers.payer_number; a
  bill's has 16). Its 確認番号 is checked, and wrong ones counted by the brute-force guard, as a
  bill's are (:meth:`gateway.networks.mpn.MpnNetwork._guarded`).
- The bills it pays are the customer's bills of its biller (the same ``customer_no``) that carry
  Pay-easy numbers. The one it answers is the *oldest open* one: open, due on the business day
  or later, the earliest due date first, then the first registered. An expired bill is skipped
  (its own number answers ``1003``; the biller may reissue it).
- 照会 answers ``0000`` with that bill's amount (``0`` when the payer chooses it: the 消込
  carries the amount), due date and the biller's kana, and the number keeps that bill for the
  business day. With nothing open the answer is :func:`nothing_open`'s: ``1003`` when one of
  the customer's bills is past its due date unpaid, else ``1002`` when one is paid, else
  ``1005`` when one is cancelled, else ``1001`` (no bill at all).
- 消込 (and a 再送確認 not yet stored) pays the bill the number's last 照会 of the same business
  day answered — what the ATM showed the payer, even if it was paid meanwhile (recorded all the
  same: the ledger flags the double payment and opens its refund case, as for a bill's own
  number). Without such a 照会, the oldest open bill now; with none, :func:`nothing_open`'s
  refusal. An amount the bill does not ask for (another amount, or outside the payer's range)
  is refused ``1004``.
- The 消込 is then stored under the bill's own numbers (its event names the bill's お客様番号),
  so that the ledger, the 閉局's confirmations and a later 取消 treat it as the bill's; the
  message's bytes are kept as received. A 取消 naming the payer number is applied to the bill
  its 消込 paid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from datetime import date

from sqlalchemy.engine import Connection

from gateway.mappers.mpn.mapper import (
    Inquiry,
    InquiryAnswer,
    Key,
    Message,
    PaymentNotice,
    response_for,
)
from gateway.model import Bill, BillStatus, CollectionEvent, PayerNumber
from gateway.store.payer_numbers import (
    bill_by_id,
    customer_bill_states,
    numbers_of_payment,
    oldest_open_bill,
    payer_by_number,
    set_asked,
)

Guard = Callable[[Connection, Key, date, str], str | None]
Apply = Callable[[Connection, CollectionEvent], object]


def nothing_open(states: Collection[BillStatus]) -> str:
    """The refusal of a payer number with no open bill, from its customer's bills' states (an
    open bill past its due date counted as expired): past due, else paid, else cancelled, else
    no bill at all."""
    if BillStatus.EXPIRED in states:
        return "1003"
    if BillStatus.PAID in states or BillStatus.CONFIRMED in states:
        return "1002"
    if BillStatus.CANCELLED in states:
        return "1005"
    return "1001"


def asks_for(bill: Bill, amount: int) -> bool:
    """Whether ``amount`` pays ``bill``: its amount, or one of its range."""
    return bill.in_range(amount) if bill.payer_chooses else amount == bill.amount


class PayerAnswers:
    """The 照会, 消込 and 取消 of payer numbers, inside the MPN network's transactions.

    ``guarded(conn, key, day, secret)`` is the network's check of a 確認番号 (None: right and
    let through, else the refusal code); ``apply(conn, event)`` stores a 消込 or 取消 through the
    ingest."""

    def __init__(self, guarded: Guard, apply: Apply) -> None:
        self.guarded = guarded
        self.apply = apply

    def _known(self, conn: Connection, key: Key, day: date) -> tuple[PayerNumber, str] | str:
        found = payer_by_number(conn, key.institution_code, key.customer_number)
        if found is None:
            return "1001"
        payer, kana = found
        refusal = self.guarded(conn, key, day, payer.confirmation_number)
        return refusal if refusal is not None else (payer, kana)

    def inquiry(self, conn: Connection, request: Message) -> Message:
        body = request.body
        assert isinstance(body, Inquiry)
        day = request.header.business_date
        known = self._known(conn, body.key, day)
        if isinstance(known, str):
            return response_for(request, known)
        payer, kana = known
        found = oldest_open_bill(conn, payer, day)
        set_asked(conn, payer.payer_id, found[0] if found else None, day)
        if found is None:
            return response_for(request, nothing_open(customer_bill_states(conn, payer, day)))
        bill = found[1]
        amount = 0 if bill.payer_chooses else bill.amount
        return response_for(request, "0000", InquiryAnswer(body.key, amount, bill.due_date, kana))

    def _paid_bill(self, conn: Connection, payer: PayerNumber, day: date) -> Bill | str:
        """The bill a 消込 of ``day`` pays: the one that day's last 照会 answered, else the
        oldest open one; or the refusal code."""
        if payer.asked_on == day and payer.asked_bill_id is not None:
            asked = bill_by_id(conn, payer.asked_bill_id)
            if asked is not None:
                return asked
        found = oldest_open_bill(conn, payer, day)
        if found is None:
            return nothing_open(customer_bill_states(conn, payer, day))
        return found[1]

    def payment(
        self,
        conn: Connection,
        request: Message,
        payment: PaymentNotice,
        event: CollectionEvent,
    ) -> Message:
        """A 消込 (or 再送確認) not stored yet: stored on the bill it pays before ``0000``."""
        day = request.header.business_date
        known = self._known(conn, payment.key, day)
        if isinstance(known, str):
            return response_for(request, known)
        bill = self._paid_bill(conn, known[0], day)
        if isinstance(bill, str):
            return response_for(request, bill)
        if not asks_for(bill, payment.amount):
            return response_for(request, "1004")
        assert bill.payeasy is not None, "a payer number pays bills with Pay-easy numbers"
        numbers = bill.payeasy
        self.apply(conn, on_bill(event, numbers.institution_code, numbers.customer_number))
        return response_for(request, "0000")

    def cancelled(self, conn: Connection, event: CollectionEvent) -> CollectionEvent:
        """A 取消 naming a payer number, as the 消込 it voids was stored: on its bill."""
        numbers = numbers_of_payment(conn, event.event_key)
        return event if numbers is None else on_bill(event, *numbers)


def on_bill(event: CollectionEvent, institution: str, number: str) -> CollectionEvent:
    """``event`` naming the bill of these Pay-easy numbers (the ingest finds bills by them)."""
    detail = {**event.detail, "institution_code": institution, "via": "payer_number"}
    return dataclasses.replace(event, bill_key=number, detail=detail)
