"""The canonical model (DESIGN.md §3): plain, frozen values shared by every network.

Nothing here does I/O, reads a clock or imports Twisted. Money is ``int`` yen. Timestamps are
timezone-aware; business dates are ``datetime.date`` in Japan Standard Time.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from enum import Enum, StrEnum

from gateway.chain_rules import ChainRules
from gateway.notice_rules import NoticeRules

JST = timezone(timedelta(hours=9), "JST")


def business_date(at: datetime) -> date:
    """The Japanese business date of an aware timestamp."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: every timestamp in the gateway is timezone-aware")
    return at.astimezone(JST).date()


class Channel(StrEnum):
    CVS = "cvs"
    PAYEASY = "payeasy"
    TRANSFER = "transfer"


class BillStatus(StrEnum):
    OPEN = "open"
    PAID = "paid"  # a preliminary (速報 / 消込) or otherwise unconfirmed payment
    CONFIRMED = "confirmed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    VOIDED = "voided"


class MessageKind(StrEnum):
    """What a collection message says about one real payment, whatever the network."""

    PRELIMINARY = "preliminary"  # CVS 速報, MPN 消込 (and 再送確認)
    CONFIRMATION = "confirmation"  # CVS 確報, MPN day close, transfer result 0
    VOID = "void"  # CVS 速報取消, MPN 取消
    FAILURE = "failure"  # transfer result other than 0: no money moved
    CORRECTION = "correction"  # the agency corrects an amount (CSV kind 22): for review


class RefundReason(StrEnum):
    DOUBLE_PAYMENT = "double_payment"
    PAID_AFTER_CANCEL = "paid_after_cancel"
    AMOUNT_MISMATCH = "amount_mismatch"
    UNKNOWN_BILL = "unknown_bill"


class RefundStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class AnomalyKind(StrEnum):
    """Messages that contradict what the ledger knows; recorded and counted, never applied."""

    VOID_AFTER_CONFIRMATION = "void_after_confirmation"
    CONFIRMATION_AFTER_VOID = "confirmation_after_void"
    VOID_WITHOUT_PAYMENT = "void_without_payment"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"  # same event key, different content
    AMOUNT_CORRECTION = "amount_correction"  # a correction the ledger does not apply by itself


class EventType(StrEnum):
    """The outbox events of spec/merchant-api.md."""

    BILL_CREATED = "bill.created"
    BILL_REISSUED = "bill.reissued"
    BILL_CANCELLED = "bill.cancelled"
    BILL_EXPIRED = "bill.expired"
    BILL_FALLBACK_ISSUED = "bill.fallback_issued"  # reissued for other channels: a debit failed
    BILL_REDEBIT_SCHEDULED = "bill.redebit_scheduled"  # to be debited again (再振替)
    PAYMENT_PRELIMINARY = "payment.preliminary"
    PAYMENT_CONFIRMED = "payment.confirmed"
    PAYMENT_VOIDED = "payment.voided"
    TRANSFER_FAILED = "transfer.failed"
    BILL_DOUBLE_PAID = "bill.double_paid"
    REFUND_CASE_OPENED = "refund_case.opened"
    SETTLEMENT_CREATED = "settlement.created"
    SETTLEMENT_PAYOUT_REQUESTED = "settlement.payout_requested"
    SETTLEMENT_PAID_OUT = "settlement.paid_out"
    SETTLEMENT_PAYOUT_RETURNED = "settlement.payout_returned"


@dataclass(frozen=True)
class Customer:
    customer_no: str | None = None
    name: str | None = None
    kana: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class Tax:
    taxable: bool = False
    tax_amount: int = 0


@dataclass(frozen=True)
class Slip:
    """One issued convenience-store slip: a barcode and what it promises."""

    reissue: int
    barcode: str
    amount: int
    due_date: date | None
    stamp: bool


@dataclass(frozen=True)
class PayEasyNumbers:
    institution_code: str  # 収納機関番号, 5 digits
    customer_number: str  # お客様番号, up to 20 digits, unique within the institution
    confirmation_number: str  # 確認番号, 4-6 digits, random per bill


@functools.cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind))


def _fields(value: object) -> dict[str, object]:
    return {name: getattr(value, name) for name in _field_names(type(value))}  # type: ignore[arg-type]


@dataclass(frozen=True)
class BillTerms:
    """What a biller asks to collect: the fields of a new bill, as sent."""

    bill_no: str
    amount: int
    due_date: date | None  # None: no deadline (a CVS slip of an agency that takes 999999)
    channels: frozenset[Channel]
    customer: Customer
    tax: Tax
    description: str | None
    # An amount the payer chooses (``amount`` null in the API, 0 here): both set, see Bill.
    min_amount: int | None = None
    max_amount: int | None = None

    def fingerprint(self) -> str:
        """Identifies the terms, to tell a replay of a bill_no from a conflicting reuse."""
        # dataclasses.asdict, without its deep copies (bulk registration makes many of these)
        doc = _fields(self)
        if self.max_amount is None:  # as before payer-chosen amounts: stored fingerprints hold
            del doc["min_amount"], doc["max_amount"]
        doc["customer"] = _fields(self.customer)
        doc["tax"] = _fields(self.tax)
        doc["channels"] = sorted(self.channels)
        doc["due_date"] = self.due_date.isoformat() if self.due_date else None
        blob = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Bill:
    """A bill as the biller registered it, with what the gateway derived from it."""

    biller_id: str
    bill_no: str
    amount: int
    due_date: date | None
    channels: frozenset[Channel]
    customer: Customer
    tax: Tax
    description: str | None
    created_at: datetime
    updated_at: datetime
    status: BillStatus = BillStatus.OPEN
    version: int = 1
    reissue: int = 0
    double_paid: bool = False
    late: bool = False
    slip: Slip | None = None  # the current CVS slip, when the bill has the cvs channel
    payeasy: PayEasyNumbers | None = None
    page_token: str = ""
    # A bill whose amount the payer chooses (a donation, a deposit: ``amount`` null in the API,
    # 0 here): any whole amount from min_amount to max_amount pays it, through Pay-easy only
    # (a barcode and a debit carry one set amount). None: the bill asks for ``amount``.
    min_amount: int | None = None
    max_amount: int | None = None

    @property
    def payer_chooses(self) -> bool:
        """Whether the payer chooses the amount (within min_amount..max_amount)."""
        return self.min_amount is not None and self.max_amount is not None

    def in_range(self, amount: int) -> bool:
        """Whether ``amount`` is one the payer may choose (False for a bill of a set amount)."""
        if self.min_amount is None or self.max_amount is None:
            return False
        return self.min_amount <= amount <= self.max_amount

    @property
    def live(self) -> bool:
        """Whether a customer may still pay it through a channel that asks first (MPN, page)."""
        return self.status is BillStatus.OPEN

    def changed(self, now: datetime, **changes: object) -> Bill:
        """A new version of the bill: every change raises ``version`` by one."""
        return dataclasses.replace(
            self,
            version=self.version + 1,
            updated_at=now,
            **changes,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class CollectionEvent:
    """One message as received from a network, before it is applied.

    ``event_key`` identifies the real payment it is about (DESIGN.md §3); with ``channel`` and
    ``kind`` it is unique in the store, which is what makes every resend harmless.
    """

    channel: Channel
    kind: MessageKind
    event_key: str
    amount: int
    paid_at: datetime
    received_at: datetime
    source: str  # "link:cvs", "file:NAME:LINE", "poll:agency"
    raw: bytes
    bill_key: str  # how the message names its bill: CVS bill key, お客様番号, Zengin customer no
    slip_reissue: int | None = None  # the reissue digit of the slip used, for CVS
    transfer_date: date | None = None
    store: str | None = None  # chain + store code, or bank code + channel
    detail: dict[str, str] = field(default_factory=dict)
    agency: str | None = None  # the CVS agency it came from (the link, inbox or pull it used)


def transfer_key(consignor_code: str, debit_date: date, customer_number: str) -> str:
    """How a transfer result names its debit (DESIGN.md §3: 委託者コード + 引落日 + 顧客番号):
    the event key of the payment it makes, and the bill key the ingest finds its bill by."""
    return f"{consignor_code}:{debit_date:%Y%m%d}:{customer_number}"


def parse_transfer_key(key: str) -> tuple[str, date, str]:
    """The (委託者コード, 引落日, 顧客番号) of a :func:`transfer_key`."""
    consignor_code, day, customer_number = key.split(":", 2)
    return consignor_code, date(int(day[:4]), int(day[4:6]), int(day[6:8])), customer_number


@dataclass(frozen=True)
class Payment:
    payment_id: str
    biller_id: str
    bill_no: str | None  # None for a payment whose bill is unknown
    channel: Channel
    event_key: str
    amount: int
    paid_at: datetime
    status: PaymentStatus
    created_at: datetime
    confirmed_at: datetime | None = None
    voided_at: datetime | None = None
    transfer_date: date | None = None
    late: bool = False
    store: str | None = None
    agency: str | None = None  # the CVS agency whose money it is (its 確報 and remittance)
    # A CVS payment judged by its biller's chain rules (gateway.chain_rules) when it arrived:
    # whether the biller accepts the chain that took it, and whether that chain stamped the
    # receipt (the settlement's stamp charge). None: not judged (another channel, or before
    # migration 0017; the stamp then follows the slip's 印紙フラグ).
    chain_accepted: bool | None = None
    stamped: bool | None = None

    @property
    def live(self) -> bool:
        return self.status is not PaymentStatus.VOIDED


@dataclass(frozen=True)
class RefundCase:
    case_id: str
    biller_id: str | None
    bill_no: str | None
    payment_id: str
    reason: RefundReason
    amount: int
    opened_at: datetime
    status: RefundStatus = RefundStatus.OPEN
    resolution: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Anomaly:
    kind: AnomalyKind
    channel: Channel
    event_key: str
    detail: str


class MandateStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # 振替結果コード 3: the payer stopped the transfers
    INVALID = "invalid"  # 振替結果コード 2 or 4: no such account, no mandate at the bank
    REVOKED = "revoked"  # the biller revoked it


@dataclass(frozen=True)
class BankAccount:
    """A Zengin account: bank and branch (codes and half-width kana names from the bank
    master), 預金種目 and the 7-digit number. The number never appears in a repr."""

    bank_code: str  # 4 digits
    bank_name: str
    branch_code: str  # 3 digits
    branch_name: str
    account_type: str  # 1 普通, 2 当座, 9 その他
    account_number: str = field(repr=False)  # 7 digits

    @property
    def masked_number(self) -> str:
        """The number as a customer may be shown it: all but the last 3 digits hidden."""
        return "*" * (len(self.account_number) - 3) + self.account_number[-3:]


@dataclass(frozen=True)
class Mandate:
    """A customer's 口座振替依頼 to a biller (DESIGN.md §3: (biller_id, customer_no))."""

    biller_id: str
    customer_no: str
    account: BankAccount
    holder_kana: str = field(repr=False)  # 預金者名, Zengin half-width kana
    status: MandateStatus
    status_reason: str | None
    new_code: str  # 新規コード of its next debit: 1 first, 2 changed, 0 otherwise
    requested: bool  # whether a request file has carried it
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PayerNumber:
    """A reusable お客様番号 of one customer of a biller (DESIGN.md §3 (biller_id, customer_no)):
    a 照会 with it answers the customer's oldest open Pay-easy bill of that biller, a 消込 pays
    that bill (gateway.networks.mpn_payer). ``asked_bill_id`` and ``asked_on``: the bill the last
    照会 of the number answered and on which business day (a 消込 of that day pays it).
    ``revoked_at``: the biller revoked it (the customer's next number is another)."""

    payer_id: int
    biller_id: str
    customer_no: str
    institution_code: str  # 収納機関番号, 5 digits
    customer_number: str  # お客様番号, 18 digits (gateway.mappers.mpn.numbers.payer_number)
    confirmation_number: str = field(repr=False)  # 確認番号, 4-6 digits: never logged
    created_at: datetime
    asked_bill_id: int | None = None
    asked_on: date | None = None
    revoked_at: datetime | None = None  # revoked by the biller: answers nothing, never reused
    revoked_by: str | None = None  # who revoked it: ``key:<key id>``


@dataclass(frozen=True)
class Consignor:
    """A biller as 委託者 of account transfers: its code at the bank and its own account."""

    biller_id: str
    code: str  # 委託者コード, 10 digits
    name: str  # 委託者名, Zengin half-width kana
    account: BankAccount


@dataclass(frozen=True)
class Biller:
    biller_id: str
    code: str  # 5 digits: the biller's part of every barcode free field and お客様番号
    name: str
    kana: str
    channels: frozenset[Channel]
    payeasy_institution_code: str | None
    created_at: datetime
    # Its convenience-store agency ([[cvs.agencies]] id; None: [cvs] default_agency), and the
    # 5-digit code that agency assigned to it when the agency gives each biller its own.
    cvs_agency: str | None = None
    cvs_code: str | None = None
    # When the operator suspended it (gateway-admin biller suspend; None: active).
    suspended_at: datetime | None = None
    # Its convenience-store chain rules (gateway.chain_rules; the defaults: every chain).
    chain_rules: ChainRules = field(default_factory=ChainRules)
    # Its fallback after a failed debit and its notice settings (gateway.notice_rules).
    notice_rules: NoticeRules = field(default_factory=NoticeRules)


@dataclass(frozen=True)
class Principal:
    """Who an API key belongs to: one biller, or the operator (admin)."""

    key_id: str
    biller_id: str | None
    is_admin: bool
    suspended: bool = False  # a key of a suspended biller: refused (403) by the API

    @property
    def scope(self) -> str:
        """The namespace of this caller's idempotency keys."""
        return f"biller:{self.biller_id}" if self.biller_id else f"admin:{self.key_id}"


@dataclass(frozen=True)
class IdempotencyClaim:
    """A request's Idempotency-Key: the caller's scope, the key and a hash of the request."""

    scope: str
    key: str
    request_hash: str


class Outcome(Enum):
    """What a use case did, for its caller to say (the merchant API's status code for each is
    gateway.protocols.api.statuses's; a replay answers the outcome of the first answer)."""

    DONE = "done"  # the resource as it now is: changed, or found as asked
    CREATED = "created"  # a new resource
    ACCEPTED = "accepted"  # queued, to be done later (a redelivery)


@dataclass(frozen=True)
class StoredResponse:
    """An answer as it is kept for an idempotent replay (gateway.store.idempotency)."""

    outcome: Outcome
    body: str
    replayed: bool = False
    # What the replay table keeps instead of ``body`` (``body`` without its secrets), if not body
    kept: str | None = field(default=None, repr=False, compare=False)
