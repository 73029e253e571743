"""The bill/payment state machine (DESIGN.md §4) as pure functions.

Nothing here does I/O or reads a clock: ``now`` (an aware timestamp) and ``today`` (the JST business
date) are parameters, and new ids come from an injected ``new_id(prefix)`` (``"pay"``, ``"rc"``).
Every function returns an :class:`LedgerChange`: the bill after the change, the payments created or
changed, the refund cases opened, the anomalies found and the outbox events, in the order they
happened. The store applies an outcome in one transaction: upsert the payments by ``payment_id``,
replace the bill when ``bill_changed``, insert the cases, anomalies and events.

Rules
-----

Biller actions: ``cancel_bill`` (open or expired → cancelled; cancelling twice is a duplicate; a
paid bill cannot be cancelled), ``reissue_bill`` (open or expired → open with a new amount, due date
and slip, ``reissue`` + 1, at most 9) and ``expire_bill`` (open → expired once the due date has
passed, i.e. ``due_date < today``).

Collection messages are about one real payment, named by ``(channel, event_key)``:

- PRELIMINARY (CVS 速報, MPN 消込): a new payment, ``pending``. The same message again is a
  duplicate (whatever the payment's status since); one with the same key but another amount is a
  ``CONFLICTING_DUPLICATE`` anomaly.
- CONFIRMATION (CVS 確報, MPN day close, transfer result 0): ``pending → confirmed``; without a
  preliminary it creates a ``confirmed`` payment directly.
- VOID (CVS 速報取消, MPN 取消): ``pending → voided``.
- FAILURE (a transfer result other than 0): no money moved; only a ``transfer.failed`` event.

A void after a confirmation, a confirmation after a void and a void of a payment never received are
anomalies: returned to be recorded and counted, never applied. A message already applied is a
duplicate: nothing changes, and the sender is told "success".

A new payment (preliminary or direct confirmation) is checked against its bill, first match wins:

1. no such bill → refund case ``UNKNOWN_BILL``;
2. the bill is cancelled → refund case ``PAID_AFTER_CANCEL``;
3. the amount differs from the slip that was used (the slip whose reissue is the message's
   ``slip_reissue``; without one, the bill's current amount) → refund case ``AMOUNT_MISMATCH``;
   for a bill whose amount the payer chooses, an amount outside ``min_amount..max_amount``;
4. the bill already has a payment that pays it → the new one pays it too: the bill becomes
   ``double_paid`` and the new payment gets a refund case ``DOUBLE_PAYMENT``;
5. otherwise the payment pays the bill (``late`` on both when the bill was expired).

The payments of cases 4 and 5 that are still live (pending or confirmed) are the bill's *paying*
payments; the payments of cases 1-3 wait to be returned and never change the bill. The bill's state
is derived from its paying payments after every message:

- a cancelled bill stays cancelled (it has no paying payment);
- ``confirmed`` when one of them is confirmed, else ``paid`` when there is one;
- when none is left, a paid or confirmed bill is reopened: ``open`` while ``today <= due_date`` (or
  without a due date), else ``expired``, and ``late`` is cleared;
- ``late`` is set when an expired bill becomes paid;
- ``double_paid`` is exactly "two or more paying payments": set by a second paying payment (event
  ``bill.double_paid`` each time it turns on), cleared by a void that leaves fewer than two.

Every change of a bill raises its ``version`` by one (``Bill.changed``); an outcome that leaves the
bill as it was returns the same object with ``bill_changed=False``.

Which existing payments are paying is recomputed from the payments themselves: a live payment of a
bill that is not cancelled, whose amount is one the bill asked for (its current amount or the amount
of one of its slips; any amount of its range when the payer chooses it), and that the caller does
not name as ``refunded`` (a payment the ledger judged
not to pay the bill — amount mismatch, paid after cancel — has a refund case saying so; its amount
may still be one the bill asked for, e.g. another slip's, so the amount alone cannot tell).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from gateway.errors import TransitionError
from gateway.model import (
    Anomaly,
    AnomalyKind,
    Bill,
    BillStatus,
    CollectionEvent,
    EventType,
    MessageKind,
    Payment,
    PaymentStatus,
    RefundCase,
    RefundReason,
    Slip,
)

__all__ = [
    "MAX_REISSUE",
    "LedgerChange",
    "OutboxEvent",
    "apply_message",
    "cancel_bill",
    "expire_bill",
    "paying",
    "reissue_bill",
]

MAX_REISSUE = 9  # the barcode's 再発行区分 is one digit

_PAID = frozenset({BillStatus.PAID, BillStatus.CONFIRMED})
_REISSUABLE = frozenset({BillStatus.OPEN, BillStatus.EXPIRED})


@dataclass(frozen=True)
class OutboxEvent:
    """What happened, for webhooks and the events feed; the store adds ``seq`` and the snapshots."""

    type: EventType
    payment_id: str | None = None
    case_id: str | None = None
    detail: Mapping[str, str] = field(default_factory=dict)  # e.g. transfer result code


@dataclass(frozen=True)
class LedgerChange:
    """The result of one transition, to be stored in one transaction."""

    duplicate: bool  # already applied: nothing changes, the sender is told "success"
    bill: Bill | None  # the bill after the change; the same object when nothing changed
    bill_changed: bool
    payments: tuple[Payment, ...]  # payments created or changed (to upsert by payment_id)
    refund_cases: tuple[RefundCase, ...]  # cases opened
    anomalies: tuple[Anomaly, ...]
    events: tuple[OutboxEvent, ...]  # in the order they happened


def _unchanged(
    bill: Bill | None,
    *,
    duplicate: bool = False,
    anomalies: tuple[Anomaly, ...] = (),
    events: tuple[OutboxEvent, ...] = (),
) -> LedgerChange:
    return LedgerChange(
        duplicate=duplicate,
        bill=bill,
        bill_changed=False,
        payments=(),
        refund_cases=(),
        anomalies=anomalies,
        events=events,
    )


def _bill_changed(bill: Bill, event: EventType) -> LedgerChange:
    return LedgerChange(
        duplicate=False,
        bill=bill,
        bill_changed=True,
        payments=(),
        refund_cases=(),
        anomalies=(),
        events=(OutboxEvent(event),),
    )


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("naive datetime: every timestamp in the gateway is timezone-aware")


# --- biller actions -------------------------------------------------------------------------


def cancel_bill(bill: Bill, *, now: datetime) -> LedgerChange:
    """The biller cancels a bill: open or expired → cancelled.

    Cancelling a cancelled bill is a duplicate; a paid or confirmed bill cannot be cancelled (its
    money has to be refunded through the biller's own process).
    """
    _require_aware(now)
    if bill.status is BillStatus.CANCELLED:
        return _unchanged(bill, duplicate=True)
    if bill.status in _PAID:
        raise TransitionError("bill", bill.status.value, "cancel", "the bill is already paid")
    return _bill_changed(bill.changed(now, status=BillStatus.CANCELLED), EventType.BILL_CANCELLED)


def reissue_bill(
    bill: Bill,
    *,
    slip: Slip | None,
    amount: int,
    due_date: date | None,
    today: date,
    now: datetime,
) -> LedgerChange:
    """The biller reissues an open or expired bill with a new amount, due date and slip.

    ``reissue`` goes up by one (the barcode's reissue digit allows 9 reissues); ``slip`` is the new
    CVS slip, built by the caller with that reissue number and the new amount, or ``None`` for a
    bill that has no CVS slip. The bill is open again. Old slips keep matching the bill.
    """
    _require_aware(now)
    status = bill.status.value
    if bill.status in _PAID:
        raise TransitionError("bill", status, "reissue", "the bill is already paid")
    if bill.status not in _REISSUABLE:
        raise TransitionError("bill", status, "reissue", "the bill is cancelled")
    reissue = bill.reissue + 1
    if reissue > MAX_REISSUE:
        raise TransitionError("bill", status, "reissue", "a barcode has one reissue digit (0-9)")
    if due_date is not None and due_date < today:
        raise TransitionError("bill", status, "reissue", "the new due date is in the past")
    if slip is None and bill.slip is not None:
        raise ValueError("the bill has a CVS slip: a reissue needs the new one")
    if slip is not None:
        if slip.reissue != reissue:
            raise ValueError(f"the new slip has reissue {slip.reissue}, expected {reissue}")
        if slip.amount != amount:
            raise ValueError(f"the new slip is for {slip.amount} yen, the bill for {amount} yen")
    reissued = bill.changed(
        now,
        reissue=reissue,
        amount=amount,
        due_date=due_date,
        slip=slip,
        status=BillStatus.OPEN,
        late=False,
        double_paid=False,
    )
    return _bill_changed(reissued, EventType.BILL_REISSUED)


def expire_bill(bill: Bill, *, today: date, now: datetime) -> LedgerChange:
    """An open bill whose due date has passed (``due_date < today``) becomes expired.

    Anything else is left as it is (no change, not a duplicate, no event), so the expiry job can
    run over any bill as often as it likes.
    """
    _require_aware(now)
    if bill.status is not BillStatus.OPEN or bill.due_date is None or bill.due_date >= today:
        return _unchanged(bill)
    return _bill_changed(bill.changed(now, status=BillStatus.EXPIRED), EventType.BILL_EXPIRED)


# --- deriving the bill from its payments ----------------------------------------------------


def _asked_amounts(bill: Bill, slips: Iterable[Slip]) -> frozenset[int]:
    amounts = {bill.amount, *(s.amount for s in slips)}
    if bill.slip is not None:
        amounts.add(bill.slip.amount)
    return frozenset(amounts)


def _paying(
    bill: Bill | None,
    payments: Iterable[Payment],
    slips: Sequence[Slip],
    refunded: Collection[str] = frozenset(),
) -> list[Payment]:
    """The live payments that pay ``bill`` (rather than wait to be refunded)."""
    if bill is None or bill.status is BillStatus.CANCELLED:
        return []
    asked = _asked_amounts(bill, slips)
    return [
        p
        for p in payments
        if p.live
        and p.bill_no == bill.bill_no
        and (bill.in_range(p.amount) if bill.payer_chooses else p.amount in asked)
        and p.payment_id not in refunded
    ]


def paying(
    bill: Bill | None,
    payments: Iterable[Payment],
    slips: Sequence[Slip],
    refunded: Collection[str] = frozenset(),
) -> list[Payment]:
    """The live payments that pay ``bill`` (the others wait to be refunded), in their order."""
    return _paying(bill, payments, slips, refunded)


def _expected_amount(bill: Bill, message: CollectionEvent, slips: Sequence[Slip]) -> int:
    """The amount the payer was asked for: that of the slip used, else the bill's current one."""
    if message.slip_reissue is not None:
        known = [*slips, bill.slip] if bill.slip is not None else list(slips)
        for slip in known:
            if slip.reissue == message.slip_reissue:
                return slip.amount
    return bill.amount


def _settle(bill: Bill, paying: Sequence[Payment], *, today: date, now: datetime) -> Bill:
    """The bill as its paying payments make it; the same object when nothing changes."""
    if bill.status is BillStatus.CANCELLED:
        return bill
    status, late = bill.status, bill.late
    if any(p.status is PaymentStatus.CONFIRMED for p in paying):
        status = BillStatus.CONFIRMED
    elif paying:
        status = BillStatus.PAID
    elif bill.status in _PAID:
        due = bill.due_date
        status = BillStatus.OPEN if due is None or due >= today else BillStatus.EXPIRED
        late = False
    if bill.status is BillStatus.EXPIRED and status in _PAID:
        late = True
    wanted = {"status": status, "late": late, "double_paid": len(paying) >= 2}
    changes = {k: v for k, v in wanted.items() if getattr(bill, k) != v}
    return bill.changed(now, **changes) if changes else bill


def _double_paid_event(
    before: Bill | None, after: Bill | None, payment_id: str
) -> list[OutboxEvent]:
    if before is not None and after is not None and after.double_paid and not before.double_paid:
        return [OutboxEvent(EventType.BILL_DOUBLE_PAID, payment_id=payment_id)]
    return []


# --- collection messages --------------------------------------------------------------------


def apply_message(
    bill: Bill | None,
    payments: Sequence[Payment],
    message: CollectionEvent,
    *,
    biller_id: str | None,
    slips: Sequence[Slip] = (),
    today: date,
    now: datetime,
    new_id: Callable[[str], str],
    refunded: Collection[str] = frozenset(),
) -> LedgerChange:
    """Apply one collection message to a bill (``None`` when no bill matches it).

    ``payments`` are all the existing payments of the bill (for an unknown bill: the existing
    payments with the message's event key); ``slips`` every slip ever issued for it; ``biller_id``
    names the biller when the bill is unknown but its biller is (e.g. by the CVS company code);
    ``refunded`` the ids of its payments that have a refund case other than a double payment
    (they do not pay the bill, whatever their amount).
    """
    _require_aware(now)
    if message.kind is MessageKind.FAILURE:
        detail = dict(message.detail)
        return _unchanged(bill, events=(OutboxEvent(EventType.TRANSFER_FAILED, detail=detail),))

    payment = next(
        (p for p in payments if p.channel is message.channel and p.event_key == message.event_key),
        None,
    )
    if payment is None:
        if message.kind is MessageKind.VOID:
            return _anomaly(bill, message, AnomalyKind.VOID_WITHOUT_PAYMENT, "no such payment")
        return _new_payment(
            bill,
            payments,
            message,
            biller_id=biller_id,
            slips=slips,
            today=today,
            now=now,
            new_id=new_id,
            refunded=refunded,
        )

    if message.kind is MessageKind.PRELIMINARY:
        if message.amount != payment.amount:
            return _anomaly(
                bill,
                message,
                AnomalyKind.CONFLICTING_DUPLICATE,
                f"payment {payment.payment_id} is for {payment.amount} yen, "
                f"the message for {message.amount} yen",
            )
        return _unchanged(bill, duplicate=True)

    if message.kind is MessageKind.CONFIRMATION:
        if payment.status is PaymentStatus.CONFIRMED:
            return _unchanged(bill, duplicate=True)
        if payment.status is PaymentStatus.VOIDED:
            return _anomaly(
                bill,
                message,
                AnomalyKind.CONFIRMATION_AFTER_VOID,
                f"payment {payment.payment_id} was voided",
            )
        changed = dataclasses.replace(
            payment,
            status=PaymentStatus.CONFIRMED,
            confirmed_at=now,
            transfer_date=message.transfer_date,
        )
        return _payment_changed(
            bill,
            payments,
            changed,
            EventType.PAYMENT_CONFIRMED,
            slips=slips,
            today=today,
            now=now,
            refunded=refunded,
        )

    # MessageKind.VOID
    if payment.status is PaymentStatus.VOIDED:
        return _unchanged(bill, duplicate=True)
    if payment.status is PaymentStatus.CONFIRMED:
        return _anomaly(
            bill,
            message,
            AnomalyKind.VOID_AFTER_CONFIRMATION,
            f"payment {payment.payment_id} is confirmed",
        )
    changed = dataclasses.replace(payment, status=PaymentStatus.VOIDED, voided_at=now)
    return _payment_changed(
        bill,
        payments,
        changed,
        EventType.PAYMENT_VOIDED,
        slips=slips,
        today=today,
        now=now,
        refunded=refunded,
    )


def _anomaly(
    bill: Bill | None, message: CollectionEvent, kind: AnomalyKind, detail: str
) -> LedgerChange:
    found = Anomaly(kind=kind, channel=message.channel, event_key=message.event_key, detail=detail)
    return _unchanged(bill, anomalies=(found,))


def _payment_changed(
    bill: Bill | None,
    payments: Sequence[Payment],
    changed: Payment,
    event: EventType,
    *,
    slips: Sequence[Slip],
    today: date,
    now: datetime,
    refunded: Collection[str],
) -> LedgerChange:
    """An existing payment was confirmed or voided: store it and settle the bill again."""
    after = bill
    if bill is not None:
        others = [p for p in payments if p.payment_id != changed.payment_id]
        paying = _paying(bill, [*others, changed], slips, refunded)
        after = _settle(bill, paying, today=today, now=now)
    events = [OutboxEvent(event, payment_id=changed.payment_id)]
    events += _double_paid_event(bill, after, changed.payment_id)
    return LedgerChange(
        duplicate=False,
        bill=after,
        bill_changed=after is not bill,
        payments=(changed,),
        refund_cases=(),
        anomalies=(),
        events=tuple(events),
    )


def _refund_reason(
    bill: Bill | None,
    paying: Sequence[Payment],
    message: CollectionEvent,
    slips: Sequence[Slip],
) -> RefundReason | None:
    """Why a new payment must be returned, or ``None`` when it simply pays its bill."""
    if bill is None:
        return RefundReason.UNKNOWN_BILL
    if bill.status is BillStatus.CANCELLED:
        return RefundReason.PAID_AFTER_CANCEL
    if bill.payer_chooses:
        if not bill.in_range(message.amount):
            return RefundReason.AMOUNT_MISMATCH
    elif message.amount != _expected_amount(bill, message, slips):
        return RefundReason.AMOUNT_MISMATCH
    if paying:
        return RefundReason.DOUBLE_PAYMENT
    return None


def _new_payment(
    bill: Bill | None,
    payments: Sequence[Payment],
    message: CollectionEvent,
    *,
    biller_id: str | None,
    slips: Sequence[Slip],
    today: date,
    now: datetime,
    new_id: Callable[[str], str],
    refunded: Collection[str],
) -> LedgerChange:
    """A preliminary, or a confirmation without one: record the payment, then judge it."""
    paying = _paying(bill, payments, slips, refunded)
    reason = _refund_reason(bill, paying, message, slips)
    pays_bill = reason in (None, RefundReason.DOUBLE_PAYMENT)
    confirmed = message.kind is MessageKind.CONFIRMATION
    owner = bill.biller_id if bill is not None else biller_id
    payment = Payment(
        payment_id=new_id("pay"),
        # Payment.biller_id is not optional: "" when not even the biller is known.
        biller_id=owner or "",
        bill_no=bill.bill_no if bill is not None else None,
        channel=message.channel,
        event_key=message.event_key,
        amount=message.amount,
        paid_at=message.paid_at,
        status=PaymentStatus.CONFIRMED if confirmed else PaymentStatus.PENDING,
        created_at=now,
        confirmed_at=now if confirmed else None,
        transfer_date=message.transfer_date if confirmed else None,
        late=bill is not None and bill.status is BillStatus.EXPIRED and reason is None,
        store=message.store,
        agency=message.agency,
    )
    kind = EventType.PAYMENT_CONFIRMED if confirmed else EventType.PAYMENT_PRELIMINARY
    events = [OutboxEvent(kind, payment_id=payment.payment_id)]

    after = bill
    if bill is not None and pays_bill:
        after = _settle(bill, [*paying, payment], today=today, now=now)
        events += _double_paid_event(bill, after, payment.payment_id)

    cases: tuple[RefundCase, ...] = ()
    if reason is not None:
        case = RefundCase(
            case_id=new_id("rc"),
            biller_id=owner,
            bill_no=payment.bill_no,
            payment_id=payment.payment_id,
            reason=reason,
            amount=payment.amount,
            opened_at=now,
        )
        cases = (case,)
        events.append(
            OutboxEvent(
                EventType.REFUND_CASE_OPENED,
                payment_id=payment.payment_id,
                case_id=case.case_id,
                detail={"reason": reason.value},
            )
        )
    return LedgerChange(
        duplicate=False,
        bill=after,
        bill_changed=after is not bill,
        payments=(payment,),
        refund_cases=cases,
        anomalies=(),
        events=tuple(events),
    )
