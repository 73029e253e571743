"""Bills: what a biller registers, cancels and reissues through the merchant API.

Each operation is one store interaction: the Idempotency-Key claim, the change, the new
version of the bill and its outbox event commit together or not at all.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway import ledger
from gateway.billing.chains import due_window_refusals
from gateway.billing.creations import Creations
from gateway.billing.issuing import BillIssuer
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.config import Config
from gateway.errors import (
    ConfigError,
    Conflict,
    FieldError,
    InvalidRequest,
    NotFound,
    Refusal,
    TransitionError,
)
from gateway.infra.secretbox import ENV as SECRET_ENV
from gateway.infra.secretbox import SecretBox
from gateway.model import (
    JST,
    Bill,
    Biller,
    BillStatus,
    BillTerms,
    Channel,
    Customer,
    EventType,
    Outcome,
    Principal,
    Tax,
)
from gateway.store import Store
from gateway.store.billers import active_biller
from gateway.store.bills import (
    Identifiers,
    NewBill,
    get_bill,
    insert_bill,
    insert_slip,
    is_purged,
    list_bills,
    save_bill,
)
from gateway.store.events import append_events, list_events
from gateway.store.idempotency import IdempotencyClaim, StoredResponse, run_idempotent
from gateway.store.notify import queue_bill_email
from gateway.validation import Fields

BILL_NO = r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}"
CUSTOMER_NO = r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}"
EMAIL = r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+"
PHONE = r"0[0-9]{9,10}"
# The limits of a bill's fields, read by the validators below and the OpenAPI document.
MAX_AMOUNT = 9_999_999_999  # yen: a bill's amount, a reissue's, a tax amount
NAME_MAX = 100  # the customer's name and kana
EMAIL_MAX = 254
DESCRIPTION_MAX = 200
MAX_EVENTS_PAGE = 500
CURSOR = r"[0-9]{1,18}"  # a list's cursor (encode_cursor): read by the OpenAPI document too
MAX_EVENTS_AFTER = 2**62  # the events feed's ``after``: read by the router and the OpenAPI document


def _check_amount_and_due(
    f: Fields,
    amount: int | None,
    due: date | None,
    channels: frozenset[Channel],
    limits: Mapping[Channel, int],
    today: date,
    max_due_days: int,
    amount_field: str = "amount",
) -> None:
    if amount is not None and channels:
        ceiling = min(limits.get(c, 0) for c in channels)
        if ceiling and amount > ceiling:
            f.bad(
                amount_field,
                f"must not exceed {ceiling} yen for channels {', '.join(sorted(channels))}",
            )
    if due is not None:
        if due < today:
            f.bad("due_date", f"{due.isoformat()} is in the past (today is {today.isoformat()})")
        elif due > today + timedelta(days=max_due_days):
            f.bad("due_date", f"must be within {max_due_days} days from today")


def biller_channel_error(biller: Biller, channels: frozenset[Channel]) -> str | None:
    """Why the biller cannot issue a bill for ``channels`` (a channel it has no contract for),
    or None."""
    missing = sorted(channels - biller.channels)
    if missing:
        return f"biller {biller.biller_id} does not collect through {', '.join(missing)}"
    return None


# Channels that carry one set amount, and why: a bill whose amount the payer chooses cannot
# go through them.
SET_AMOUNT_CHANNELS = {
    Channel.CVS: "a barcode carries one set amount",
    Channel.TRANSFER: "a debit is for a set amount",
}


def _payer_range(f: Fields) -> tuple[int | None, int | None]:
    """``min_amount`` and ``max_amount`` of a bill sent with ``amount`` null: the amounts the
    payer may choose from, both required, the first not above the second."""
    f.seen.add("amount")
    found: list[int | None] = []
    for name in ("min_amount", "max_amount"):
        value = f.integer(name, low=1, high=MAX_AMOUNT)
        if value is None and f.raw.get(name) is None:
            f.bad(name, "is required when amount is null (the payer chooses the amount)")
        found.append(value)
    low, high = found
    if low is not None and high is not None and low > high:
        f.bad("max_amount", f"must be at least min_amount ({low})")
    return low, high


def parse_bill_request(
    body: object, *, limits: Mapping[Channel, int], today: date, max_due_days: int
) -> BillTerms:
    f = Fields(body)
    bill_no = f.string(
        "bill_no",
        required=True,
        max_len=64,
        pattern=BILL_NO,
        hint="1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    )
    # ``amount: null`` (present, null): the payer chooses it within min_amount..max_amount.
    payer_chooses = "amount" in f.raw and f.raw["amount"] is None
    low = high = None
    if payer_chooses:
        amount: int | None = 0
        low, high = _payer_range(f)
    else:
        amount = f.integer("amount", required=True, low=1, high=MAX_AMOUNT)
        for name in ("min_amount", "max_amount"):
            if name in f.raw:
                f.seen.add(name)
                f.bad(name, "is only for an amount the payer chooses (with amount null)")
    due = f.day("due_date")  # none: a slip without a deadline (cvs only, agency permitting)
    channels: set[Channel] = set()
    raw_channels = f.string_list("channels", required=True)
    if raw_channels is not None:
        if not raw_channels:
            f.bad("channels", "must name at least one channel")
        for i, name in enumerate(raw_channels):
            try:
                channel = Channel(name)
            except ValueError:
                f.bad(f"channels[{i}]", f"{name!r} is not one of cvs, payeasy, transfer")
                continue
            if channel in channels:
                f.bad(f"channels[{i}]", f"{name} is listed twice")
            if channel not in limits:
                f.bad(f"channels[{i}]", f"the {name} network is not enabled on this gateway")
            channels.add(channel)
    customer = Customer()
    c = f.obj("customer")
    if c is not None:
        customer = Customer(
            customer_no=c.string(
                "customer_no",
                max_len=64,
                pattern=CUSTOMER_NO,
                hint="1-64 letters, digits, '.', '_' or '-'",
            ),
            name=c.string("name", max_len=NAME_MAX),
            kana=c.string("kana", max_len=NAME_MAX),
            email=c.string("email", max_len=EMAIL_MAX, pattern=EMAIL, hint="an e-mail address"),
            phone=c.string(
                "phone",
                max_len=11,
                pattern=PHONE,
                hint="a Japanese phone number, digits only (e.g. 09012345678)",
            ),
        )
        c.finish()
    if payer_chooses:
        for channel in sorted(channels & SET_AMOUNT_CHANNELS.keys()):
            f.bad(
                "channels",
                f"{channel} cannot carry a bill whose amount the payer chooses (amount null): "
                f"{SET_AMOUNT_CHANNELS[channel]}; use payeasy",
            )
    if Channel.TRANSFER in channels and customer.customer_no is None:
        f.bad("customer.customer_no", "is required for the transfer channel (it names the mandate)")
    tax = Tax()
    t = f.obj("tax")
    if t is not None:
        taxable = t.boolean("taxable", required=True)
        tax_amount = t.integer("tax_amount", low=0, high=MAX_AMOUNT)
        t.finish()
        if taxable is not None:
            tax = Tax(taxable, tax_amount or 0)
            if not taxable and tax_amount:
                t.bad("tax_amount", "must be 0 when the bill is not taxable")
            elif payer_chooses and tax_amount:
                t.bad("tax_amount", "must be 0 when the payer chooses the amount (amount null)")
            elif not payer_chooses and amount is not None and tax.tax_amount >= amount:
                t.bad("tax_amount", "must be less than amount")
    description = f.string("description", max_len=DESCRIPTION_MAX)
    f.finish()
    ceiling_of = ("max_amount", high) if payer_chooses else ("amount", amount)
    _check_amount_and_due(
        f,
        ceiling_of[1],
        due,
        frozenset(channels),
        limits,
        today,
        max_due_days,
        amount_field=ceiling_of[0],
    )
    if f.raw.get("due_date") is None and channels != {Channel.CVS}:
        # a bill without a deadline is a CVS slip's (999999), where its agency takes one
        f.bad("due_date", "is required unless cvs is the only channel")
    f.raise_if_invalid()
    assert bill_no is not None and amount is not None
    return BillTerms(
        bill_no,
        amount,
        due,
        frozenset(channels),
        customer,
        tax,
        description,
        min_amount=low,
        max_amount=high,
    )


def _iso(at: datetime) -> str:
    return at.astimezone(JST).isoformat(timespec="seconds")


def bill_json(bill: Bill, public_url: str, issuer: BillIssuer) -> dict[str, Any]:
    """The bill as events carry it (and the API, with ``page_url`` added by
    :meth:`BillService.render`): events are stored, and the database keeps no page token."""
    """The bill as the API, the events feed and webhooks show it."""
    doc: dict[str, Any] = {
        "bill_no": bill.bill_no,
        "status": bill.status.value,
        "version": bill.version,
        "amount": None if bill.payer_chooses else bill.amount,
        "due_date": bill.due_date.isoformat() if bill.due_date else None,
        "reissue": bill.reissue,
        "channels": sorted(bill.channels),
        "double_paid": bill.double_paid,
        "late": bill.late,
        "customer": {k: v for k, v in vars(bill.customer).items() if v is not None},
        "tax": {"taxable": bill.tax.taxable, "tax_amount": bill.tax.tax_amount},
        "description": bill.description,
    }
    if bill.payer_chooses:  # the amounts the payer may choose from (amount is null)
        doc["min_amount"] = bill.min_amount
        doc["max_amount"] = bill.max_amount
    if bill.slip is not None:
        doc["cvs"] = {
            "barcode": bill.slip.barcode,
            "stamp": bill.slip.stamp,
            "human_readable": issuer.human_readable(bill.slip.barcode),
        }
    if bill.payeasy is not None:
        doc["payeasy"] = {
            "institution_code": bill.payeasy.institution_code,
            "customer_number": bill.payeasy.customer_number,
            "confirmation_number": bill.payeasy.confirmation_number,
        }
    doc["created_at"] = _iso(bill.created_at)
    doc["updated_at"] = _iso(bill.updated_at)
    return doc


def encode_cursor(last_id: int) -> str:
    """Cursors are opaque to clients (today: the last row's serial, in digits)."""
    return str(last_id)


def decode_cursor(cursor: str) -> int:
    if not re.fullmatch(CURSOR, cursor):
        raise InvalidRequest(
            [FieldError("cursor", "is not a cursor this API returned")], Refusal.MALFORMED
        )
    return int(cursor)


def _dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


#: Called inside the transaction of a change with the bill before it (None: a new bill) and
#: after it: the console writes its user's audit line there (gateway.billing.console_actions).
BillAudit = Callable[[Connection, Bill | None, Bill], None]


class BillService:
    def __init__(
        self,
        store: Store,
        clock: IReactorTime,
        config: Config,
        issuer: BillIssuer,
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.issuer = issuer
        self.public_url = config.api.public_url
        if config.secret_key is None:
            raise ConfigError("secrets.key", f"is required (or the environment's {SECRET_ENV})")
        # The page token: an HMAC of the bill's biller and number (192 bits, not guessable),
        # recomputed whenever the URL is shown; the database keeps its SHA-256 only.
        self.box = SecretBox(config.secret_key)
        # Creations share transactions: all that arrive while one group commits go into the
        # next, each in its savepoint (a refused one rolls back alone), one commit for all.
        self.creates = Creations(store)

    def stored_token(self, biller_id: str, bill_no: str) -> str:
        """What ``bills.page_token`` keeps of the bill's page token."""
        return self.box.stored_page_token(biller_id, bill_no)

    def page_url_of(self, biller_id: str, bill_no: str) -> str:
        return f"{self.public_url}/p/{self.box.page_token(biller_id, bill_no)}"

    def page_url(self, bill: Bill) -> str:
        return self.page_url_of(bill.biller_id, bill.bill_no)

    def render(self, bill: Bill) -> dict[str, Any]:
        """The bill as the API answers it: with its page URL."""
        return {**bill_json(bill, self.public_url, self.issuer), "page_url": self.page_url(bill)}

    def event_doc(self, bill: Bill) -> dict[str, Any]:
        """The bill as events carry it: without its page URL (events are stored)."""
        return bill_json(bill, self.public_url, self.issuer)

    def _answer(self, outcome: Outcome, bill: Bill, kept: str | None = None) -> StoredResponse:
        """An answer with the bill; the replay table keeps it without the page URL. ``kept``:
        the bill's event document (:meth:`event_doc`), if already encoded."""
        if kept is None:
            kept = _dumps(self.event_doc(bill))
        # the answer is that document with page_url last (as render puts it), encoded once
        url = json.dumps(self.page_url(bill), ensure_ascii=False)
        return StoredResponse(outcome, f'{kept[:-1]},"page_url":{url}}}', kept=kept)

    def _restore(self, principal: Principal) -> Callable[[Connection, StoredResponse], Any]:
        """A replayed answer gets its page URL back (recomputed: the table does not keep it)."""

        def restore(conn: Connection, replay: StoredResponse) -> StoredResponse:
            doc = json.loads(replay.body)
            if isinstance(doc, dict) and "bill_no" in doc and "page_url" not in doc:
                doc["page_url"] = self.page_url_of(principal.biller_id or "", doc["bill_no"])
                return StoredResponse(replay.outcome, _dumps(doc), replayed=True)
            return replay

        return restore

    def _events(
        self, conn: Connection, bill: Bill, types: Sequence[EventType], now: datetime
    ) -> None:
        """The outbox events of ``bill`` (``{"bill": …}``, as every bill event)."""
        data = {"bill": self.event_doc(bill)}
        append_events(
            conn,
            bill.biller_id,
            [("evt_" + secrets.token_hex(12), type, data) for type in types],
            now,
        )

    def _biller(self, conn: Connection, principal: Principal) -> Biller:
        if principal.biller_id is None:
            raise NotFound("biller (use a biller's API key)")
        return active_biller(conn, principal.biller_id)  # none for a suspended biller

    async def create(
        self,
        principal: Principal,
        body: object,
        claim: IdempotencyClaim | None,
        audit: BillAudit | None = None,
    ) -> StoredResponse:
        today = clock_today(self.clock)
        request = parse_bill_request(
            body,
            limits=self.issuer.channel_limits(),
            today=today,
            max_due_days=self.config.bills.max_due_days,
        )
        now = clock_now(self.clock)

        def effect(conn: Connection) -> StoredResponse:
            if principal.biller_id is None:
                raise NotFound("biller (use a biller's API key)")
            biller = self.creates.biller(conn, principal.biller_id)
            refused = biller_channel_error(biller, request.channels)
            if refused is not None:
                raise InvalidRequest([FieldError("channels", refused)])
            refusals = self.issuer.refusals(biller, request)
            refusals += due_window_refusals(biller, request.channels, request.due_date, today)
            if refusals:
                raise InvalidRequest(refusals)

            def identify(serial: int) -> Identifiers:
                return self.issuer.identify(biller, serial, request, today)

            token = self.stored_token(biller.biller_id, request.bill_no)
            new = NewBill(biller.biller_id, request, token)
            bill, created = insert_bill(conn, new, now, identify)
            if not created:
                return self._answer(Outcome.DONE, bill)
            kept = _dumps(self.event_doc(bill))
            # = event_json({"bill": …}): the document encoded once for the event and the answer
            self.creates.created(conn, bill.biller_id, '{"bill":' + kept + "}", now)
            if audit is not None:
                audit(conn, None, bill)
            if self.config.mail is not None and bill.customer.email:
                queue_bill_email(conn, biller.biller_id, bill.bill_no, now)
            return self._answer(Outcome.CREATED, bill, kept)

        ttl, restore = self.config.api.idempotency_ttl, self._restore(principal)

        def work(conn: Connection) -> StoredResponse:
            return run_idempotent(conn, claim, now, ttl, effect, restore)

        return await self.creates.committer.submit(work)

    async def get(self, principal: Principal, bill_no: str) -> dict[str, Any]:
        def txn(conn: Connection) -> Bill:
            found = get_bill(conn, principal.biller_id or "", bill_no)
            if found is None:
                raise NotFound(f"bill {bill_no}")
            return found[1]

        return self.render(await self.store.run_interaction("bills.get", txn))

    async def list(
        self,
        principal: Principal,
        *,
        status: BillStatus | None,
        updated_since: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> dict[str, Any]:
        after_id = decode_cursor(cursor) if cursor is not None else 0
        rows = await self.store.run_interaction(
            "bills.list",
            list_bills,
            principal.biller_id or "",
            status=status,
            updated_since=updated_since,
            after_id=after_id,
            limit=limit + 1,
        )
        page = rows[:limit]
        return {
            "data": [self.render(bill) for _, bill in page],
            "next_cursor": encode_cursor(page[-1][0]) if len(rows) > limit else None,
        }

    async def cancel(
        self,
        principal: Principal,
        bill_no: str,
        body: object,
        claim: IdempotencyClaim | None,
        audit: BillAudit | None = None,
    ) -> StoredResponse:
        if body is not None:
            f = Fields(body)
            f.finish()
            f.raise_if_invalid()
        now = clock_now(self.clock)

        def effect(conn: Connection) -> StoredResponse:
            bill_id, bill = self._locked(conn, principal, bill_no)
            try:
                outcome = ledger.cancel_bill(bill, now=now)
            except TransitionError as e:
                raise Conflict(f"bill {bill_no} cannot be cancelled: {e.reason}") from None
            if outcome.bill_changed and outcome.bill is not None:
                save_bill(conn, bill_id, bill, outcome.bill)
                self._events(conn, outcome.bill, [e.type for e in outcome.events], now)
                if audit is not None:
                    audit(conn, bill, outcome.bill)
            return self._answer(Outcome.DONE, outcome.bill or bill)

        return await self.store.run_interaction(
            "bills.cancel",
            run_idempotent,
            claim,
            now,
            self.config.api.idempotency_ttl,
            effect,
            self._restore(principal),
        )

    async def reissue(
        self,
        principal: Principal,
        bill_no: str,
        body: object,
        claim: IdempotencyClaim | None,
        audit: BillAudit | None = None,
    ) -> StoredResponse:
        today = clock_today(self.clock)
        f = Fields(body if body is not None else {})
        amount = f.integer("amount", low=1, high=MAX_AMOUNT)
        due = f.day("due_date")
        f.finish()
        f.raise_if_invalid()
        now = clock_now(self.clock)

        def effect(conn: Connection) -> StoredResponse:
            bill_id, bill = self._locked(conn, principal, bill_no)
            if is_purged(conn, bill_id):
                raise Conflict(
                    f"bill {bill_no} cannot be reissued: its customer data was removed at the "
                    "end of the retention period; register a new bill"
                )
            new_amount = bill.amount if amount is None else amount
            new_due = bill.due_date if due is None else due
            check = Fields({})
            if bill.payer_chooses and amount is not None:
                check.bad(
                    "amount",
                    f"the payer chooses this bill's amount ({bill.min_amount} to "
                    f"{bill.max_amount} yen): a reissue changes its due_date only",
                )
            _check_amount_and_due(
                check,
                new_amount,
                new_due if due is not None else None,
                bill.channels,
                self.issuer.channel_limits(),
                today,
                self.config.bills.max_due_days,
            )
            if bill.tax.taxable and bill.tax.tax_amount >= new_amount and not bill.payer_chooses:
                check.bad("amount", "must be more than the bill's tax_amount")
            check.raise_if_invalid()
            slip = None
            if Channel.CVS in bill.channels:
                biller = self._biller(conn, principal)
                refused = due_window_refusals(biller, bill.channels, new_due, today)
                if refused:
                    raise InvalidRequest(refused)
                if bill.reissue >= 9:
                    raise Conflict(
                        f"bill {bill_no} was reissued 9 times: a barcode has one "
                        "reissue digit; register a new bill"
                    )
                slip = self.issuer.slip(
                    biller,
                    bill_id,
                    reissue=bill.reissue + 1,
                    amount=new_amount,
                    due_date=new_due,
                    tax=bill.tax,
                    today=today,
                )
            try:
                outcome = ledger.reissue_bill(
                    bill, slip=slip, amount=new_amount, due_date=new_due, today=today, now=now
                )
            except TransitionError as e:
                raise Conflict(f"bill {bill_no} cannot be reissued: {e.reason}") from None
            assert outcome.bill is not None
            save_bill(conn, bill_id, bill, outcome.bill)
            if slip is not None:
                insert_slip(conn, bill_id, slip, now)
            self._events(conn, outcome.bill, [e.type for e in outcome.events], now)
            if audit is not None:
                audit(conn, bill, outcome.bill)
            return self._answer(Outcome.DONE, outcome.bill)

        return await self.store.run_interaction(
            "bills.reissue",
            run_idempotent,
            claim,
            now,
            self.config.api.idempotency_ttl,
            effect,
            self._restore(principal),
        )

    def _locked(self, conn: Connection, principal: Principal, bill_no: str) -> tuple[int, Bill]:
        found = get_bill(conn, principal.biller_id or "", bill_no, for_update=True)
        if found is None:
            raise NotFound(f"bill {bill_no}")
        return found

    async def events(self, principal: Principal, *, after: int, limit: int) -> dict[str, Any]:
        rows = await self.store.run_interaction(
            "events.list", list_events, principal.biller_id or "", after, limit
        )
        return {
            "data": [
                {
                    "id": e.event_id,
                    "seq": e.seq,
                    "type": e.type,
                    "created_at": _iso(e.created_at),
                    "data": e.data,
                }
                for e in rows
            ],
            "next_after": rows[-1].seq if rows else after,
        }
