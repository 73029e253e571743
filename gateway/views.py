"""How payments and refund cases look in the API, the events feed and webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.model import JST, Channel, Payment, RefundCase

PAYEASY_CHANNELS = {"1": "atm", "2": "internet", "3": "mobile"}  # spec/mpn.md 消込 channel


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(JST).isoformat(timespec="seconds")


def payment_json(payment: Payment) -> dict[str, Any]:
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
    if payment.store and payment.channel is Channel.CVS:
        chain, _, store_code = payment.store.partition("-")
        doc["store"] = {"chain": chain, "store_code": store_code}
    elif payment.store and payment.channel is Channel.PAYEASY:
        bank_code, _, how = payment.store.partition("-")
        doc["bank"] = {"bank_code": bank_code, "channel": PAYEASY_CHANNELS.get(how, how)}
    elif payment.store and payment.channel is Channel.TRANSFER:
        bank_code, _, branch_code = payment.store.partition("-")
        doc["bank"] = {"bank_code": bank_code, "branch_code": branch_code}
    elif payment.store:
        doc["bank"] = {"bank_code": payment.store}
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
