"""How payments and refund cases look in the API, the events feed and webhooks.

A payment's ``store`` is where it was made, written as its network writes it (a CVS chain and
store code, a bank and how or where the customer paid): each network describes its own payments
(:class:`PaymentDescription`, one per channel), and nothing here knows a channel. The
composition root hands the networks' descriptions (``gateway.networks.registry``,
``Registry.descriptions``) to what it builds; callers it does not reach yet (gateway.ingest,
gateway.billing.payments) read the one table :func:`install_descriptions` fills, which
``gateway.networks.registry`` does with its ``REGISTRY`` when it is imported (as the
composition root and gateway-admin do).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from gateway.model import JST, Channel, Payment, RefundCase


class PaymentDescription(Protocol):
    """How one network's payments read, to people and programs. ``store`` is never empty."""

    @property
    def wording(self) -> str:
        """How the customer paid, as a receipt's 支払方法 prints it."""
        ...

    def detail(self, store: str) -> dict[str, Any]:
        """Where the payment was made, as the payment's JSON carries it (merged into it)."""
        ...

    def place(self, store: str) -> str:
        """Where the payment was made, as a receipt's 支払場所 prints it."""
        ...


Descriptions = Mapping[Channel, PaymentDescription]

_installed: dict[Channel, PaymentDescription] = {}


def install_descriptions(descriptions: Descriptions) -> None:
    """Make ``descriptions`` the table read by callers that are handed none."""
    _installed.clear()
    _installed.update(descriptions)


def description(channel: Channel, descriptions: Descriptions | None = None) -> PaymentDescription:
    """How ``channel``'s payments read: from ``descriptions``, else from the installed table.
    :class:`LookupError` when no network describes the channel."""
    table = _installed if descriptions is None else descriptions
    try:
        return table[channel]
    except KeyError:
        raise LookupError(
            f"no network describes {channel.value} payments (gateway.networks.registry "
            "installs every registered network's description when it is imported)"
        ) from None


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(JST).isoformat(timespec="seconds")


def payment_json(payment: Payment, descriptions: Descriptions | None = None) -> dict[str, Any]:
    """A payment as the API, the events feed and webhooks show it; where it was made as its
    channel's network describes it (``descriptions``, else the installed table)."""
    doc: dict[str, Any] = {
        "payment_id": payment.payment_id,
        "bill_no": payment.bill_no,
        "channel": payment.channel.value,
        "status": payment.status.value,
        "amount": payment.amount,
        "paid_at": iso(payment.paid_at),
        "confirmed_at": iso(payment.confirmed_at),
        "voided_at": iso(payment.voided_at),
        "transfer_date": payment.transfer_date.isoformat() if payment.transfer_date else None,
        "late": payment.late,
    }
    if payment.store:
        doc.update(description(payment.channel, descriptions).detail(payment.store))
    if payment.agency is not None:
        doc["agency"] = payment.agency  # the CVS agency whose 確報 and remittance it is
    if payment.chain_accepted is not None:
        doc["chain_accepted"] = payment.chain_accepted  # false: a chain the biller does not take
    return doc


def refund_case_json(case: RefundCase) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "bill_no": case.bill_no,
        "payment_id": case.payment_id,
        "reason": case.reason.value,
        "amount": case.amount,
        "status": case.status.value,
        "opened_at": iso(case.opened_at),
        "resolution": case.resolution,
        "note": case.note,
    }
