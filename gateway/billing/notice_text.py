"""What a notice says and whether it is still to be sent: pure functions over a claimed notice.

Who gets a notice (:func:`media_for`): the media the biller lists for its kind, that the
gateway can send (``[mail]``, ``[sms]``), that the customer's details allow (an e-mail address;
a mobile number for SMS) and that the customer has not opted out of.

Whether a claimed notice still goes (:func:`skip_reason`, checked when it is sent, as the bill
may have changed since it was queued): the customer has not opted out since, the biller still
sends that kind by that medium, and

- ``page`` and ``fallback``: the bill is open and has not been reissued since (a reissue queues
  its own notice);
- ``reminder``: the bill is open, still due on the day the reminder was for, and no debit of it
  is in flight;
- ``received``: the payment is still live (not voided by the network).

The words are the biller's templates (or the defaults) of gateway.notice_rules, filled with the
bill as it is when the notice is sent; no personal data beyond the customer's own name and bill.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from gateway.config import MailConfig
from gateway.model import JST, BillStatus, Channel
from gateway.notice_rules import (
    SMS_MAX,
    Medium,
    Notice,
    NoticeRules,
    fill,
    is_mobile,
    sms_length,
)
from gateway.store.notify import Claimed

WAYS = {Channel.CVS: "コンビニ", Channel.PAYEASY: "ペイジー"}


def media_for(
    rules: NoticeRules,
    kind: Notice,
    *,
    email: str | None,
    phone: str | None,
    opted_out: Collection[Medium],
    configured: Collection[Medium],
) -> list[Medium]:
    """The media a notice of ``kind`` goes by to a customer with these details."""
    found = []
    for medium in sorted(rules.media(kind) & frozenset(configured)):
        if medium in opted_out:
            continue
        if medium is Medium.EMAIL and not email:
            continue
        if medium is Medium.SMS and not is_mobile(phone):
            continue
        found.append(medium)
    return found


def skip_reason(c: Claimed, today: date) -> str | None:
    """Why a claimed notice is no longer to be sent (None: send it)."""
    bill = c.bill
    if c.opted_out:
        return f"the customer opted out of {c.medium.value} notices"
    if c.medium not in c.rules.media(c.kind):
        return f"the biller no longer sends {c.kind.value} notices by {c.medium.value}"
    if not c.recipient:
        return "no e-mail address" if c.medium is Medium.EMAIL else "no phone number"
    if c.medium is Medium.SMS and not is_mobile(c.recipient):
        return "not a mobile number"
    if c.kind is not Notice.RECEIVED and bill.status is not BillStatus.OPEN:
        return f"bill is {bill.status.value}"
    if c.kind in (Notice.PAGE, Notice.FALLBACK) and c.ref != str(bill.reissue):
        return "the bill was reissued since"
    if c.kind is Notice.REMINDER:
        if bill.due_date is None or c.ref != bill.due_date.isoformat():
            return "the due date changed since"
        if bill.due_date < today:
            return "the due date has passed"
    if c.kind is Notice.RECEIVED and (c.payment is None or not c.payment.live):
        return "the payment was voided"
    return None


def _day(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def _moment(at: datetime) -> str:
    local = at.astimezone(JST)
    return f"{_day(local.date())} {local:%H:%M}"


def values(c: Claimed, page_url: str) -> dict[str, str]:
    """The placeholders' values for this notice (gateway.notice_rules.PLACEHOLDERS)."""
    bill = c.bill
    if c.kind is Notice.RECEIVED and c.payment:
        amount = f"¥{c.payment.amount:,}"
    elif bill.min_amount is not None and bill.max_amount is not None:  # the payer chooses
        amount = f"¥{bill.min_amount:,}〜¥{bill.max_amount:,}"
    else:
        amount = f"¥{bill.amount:,}"
    ways = [WAYS[ch] for ch in (Channel.CVS, Channel.PAYEASY) if ch in bill.channels]
    return {
        "biller": c.biller_name,
        "name": bill.customer.name or "お客様",
        "bill_no": bill.bill_no,
        "amount": amount,
        "due_date": _day(bill.due_date) if bill.due_date else "期限なし",
        "url": page_url,
        "ways": "・".join(ways) or "ご案内の方法",
        "paid_at": _moment(c.payment.paid_at) if c.payment else "",
    }


def sms_text(c: Claimed, page_url: str) -> str:
    """The SMS of this notice; :class:`ValueError` when it is longer than one long SMS
    (:data:`SMS_MAX` UCS-2 characters: refused, never cut)."""
    text = fill(c.rules.template(f"sms.{c.kind.value}"), values(c, page_url))
    if sms_length(text) > SMS_MAX:
        raise ValueError(f"the message is {sms_length(text)} characters, over {SMS_MAX}")
    return text


def email_message(config: MailConfig, c: Claimed, page_url: str, now: datetime) -> EmailMessage:
    """The e-mail of this notice in Japanese, UTF-8."""
    v = values(c, page_url)
    msg = EmailMessage()
    msg["From"] = Address(config.sender_name or "", addr_spec=config.sender)
    msg["To"] = c.recipient or ""
    msg["Subject"] = fill(c.rules.template(f"subject.{c.kind.value}"), v)
    msg["Message-ID"] = make_msgid(domain=config.sender.rpartition("@")[2])
    msg["Date"] = format_datetime(now)
    body = fill(c.rules.template(f"email.{c.kind.value}"), v)
    msg.set_content(body.rstrip("\n") + "\n", charset="utf-8")
    return msg
