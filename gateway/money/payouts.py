"""Payouts: the billers' payout accounts, the 総合振込 files that pay their settlements, and the
bank's 振込不能 (returned transfers) that reopen them (docs/settlement.md, "Payouts").

The rules, each a synchronous step in the caller's transaction (the daemon's
:class:`gateway.money.payout_service.PayoutService` and ``gateway-admin`` run the same ones):

Accounts (:func:`set_account`)
    A biller's payout account is versioned: a version applies from its ``effective_from`` (a JST
    date, today or later) until the next one's. The bank and branch must be in the Zengin bank
    master (unless ``[payouts] check_bank_master`` is off); the holder's name is converted to
    Zengin half-width kana or refused naming the field. The number and the holder's name are
    sealed with ``[secrets] key`` before they reach the store, and never logged. A version that a
    payout file used is never changed: settlements already requested keep the account they used.

Requests (:func:`prepare_payout`, then :func:`write_pending`)
    A file for a transfer date ``D`` (a bank business day, today or later) carries every
    settlement with a payout above zero, due on or before ``D`` (its payout date), in no payout
    file yet (``settled``), of a biller whose account version in force on ``D`` exists and is
    not one a payout was returned from (such a biller is held until the operator gives a
    corrected version). One transaction chooses them (one request at a time, the settlements
    locked, so that a second request waits and finds them taken), records the file
    ``pending`` with one item per settlement (the ``settlement_id`` is unique among items: a
    settlement is in one payout file at most), moves them to ``payout_requested`` and writes a
    ``settlement.payout_requested`` event each. A
    second file for the same date carries only what the first did not (sequence 2, 3 …). Then
    the file is written into ``[payouts] outbox`` with the one atomic writer
    (:mod:`gateway.infra.safe_files`) and marked ``written``; a file left pending by a crash
    between the two is written again at the next run with the same name and the same bytes
    (the file is a pure function of its items), so the bank sees the same file twice, never
    two files for one settlement.

Paid out (:func:`mark_paid_out`)
    A ``payout_requested`` settlement whose file is written and whose transfer date has come is
    ``paid_out`` (``settlement.paid_out``): the bank pays on the transfer date.

Returns (:func:`apply_returns`)
    The bank's 振込不能 file (from ``[payouts] inbox`` or ``gateway-admin payout returned``) is
    checked whole: its 振込依頼人コード is ours, each record names an item of ours (顧客コード)
    with the same amount; then, in one transaction, each settlement is ``payout_returned``
    (``settlement.payout_returned`` with the 振込不能事由). The same file twice changes nothing.
    The amount is owed to the biller again: the biller's next settlement takes it as a line
    ``前回振込不能分`` (``carried_into``), and it is paid with that settlement once the account
    has been corrected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy.engine import Connection
from twisted.logger import Logger

from gateway import calendar
from gateway.billing.mandates import UnknownBank, bank_names, zengin_kana
from gateway.config.payouts import ACCOUNT_HINT, PayoutsConfig, parse_account
from gateway.errors import (
    FieldError,
    FileErrors,
    GatewayError,
    InvalidRequest,
    RecordError,
)
from gateway.fee_model import PayoutState, Settlement
from gateway.infra import crashpoints, safe_files
from gateway.infra.secretbox import SecretBox
from gateway.mappers.zengin.payouts import (
    NETWORK,
    PayoutFile,
    PayoutHeader,
    Transfer,
    build_payout_file,
    customer_code,
    return_meaning,
)
from gateway.mappers.zengin.records import ACCOUNT_TYPES
from gateway.model import BankAccount, EventType
from gateway.store.billers import get_biller
from gateway.store.events import append_event
from gateway.store.payouts import (
    PayoutFileRow,
    PayoutItem,
    StoredAccount,
    accounts_by_ids,
    accounts_in_force,
    insert_payout_file,
    items_by_customer_codes,
    items_of_file,
    lock_due_paid_out,
    lock_payable,
    lock_payout_requests,
    mark_payout_written,
    next_sequence,
    pending_payout_files,
    returned_accounts,
    save_account_version,
    set_item_returned,
    set_payout_state,
)
from gateway.store.settlements import get_settlement
from gateway.validation import Fields

log = Logger()

FILES = Counter("gateway_payout_files_total", "Payout files (総合振込) written to the outbox.")
TRANSFERS = Counter(
    "gateway_payout_transfers_total", "Transfers asked of the bank in payout files."
)
RETURNS = Counter("gateway_payout_returns_total", "Payouts the bank returned (振込不能).")
PAID_OUT = Counter("gateway_payout_paid_out_total", "Settlements paid out (transfer date come).")

HOLDER_MAX = 30  # 受取人名: 30 half-width characters
HOLDER_IN_MAX = 60  # as sent (full-width allowed)

#: What renders a settlement for its events (gateway.money.settlement.settlement_json).
Render = Callable[[Settlement], Mapping[str, Any]]


class PayoutError(GatewayError):
    """A payout request that cannot be done (a transfer date in the past, not a business day)."""


# --- accounts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountTerms:
    """A payout account as the operator gives it, checked: names from the bank master, the
    number 7 digits, the holder in Zengin kana."""

    account: BankAccount
    holder_kana: str = field(repr=False)


def account_context(biller_id: str, effective_from: date) -> str:
    """What a version's sealed values are bound to: a value copied onto another row does not
    open."""
    return f"payout_account:{biller_id}:{effective_from.isoformat()}"


def _terms(
    f: Fields,
    codes: tuple[str, str, str, str] | None,
    holder: str | None,
    check_bank_master: bool,
    *,
    bank_field: str = "bank_code",
    branch_field: str = "branch_code",
) -> AccountTerms:
    holder_kana = zengin_kana(f, "holder_kana", holder, HOLDER_MAX)
    names = ("", "")
    if codes is not None:
        try:
            names = bank_names(codes[0], codes[1], check=check_bank_master)
        except UnknownBank as e:
            f.bad(bank_field if e.field == "bank_code" else branch_field, str(e))
    f.raise_if_invalid()
    assert codes is not None and holder_kana
    bank, branch, kind, number = codes
    return AccountTerms(BankAccount(bank, names[0], branch, names[1], kind, number), holder_kana)


def parse_account_body(body: object, *, check_bank_master: bool) -> AccountTerms:
    """``PUT /v1/billers/{id}/payout-accounts/{effective_from}``: ``bank_code``,
    ``branch_code``, ``account_type``, ``account_number``, ``holder_kana`` (as a mandate's)."""
    f = Fields(body)
    bank = f.string("bank_code", required=True, pattern=r"\d{4}", hint="4 digits")
    branch = f.string("branch_code", required=True, pattern=r"\d{3}", hint="3 digits")
    kind = f.string(
        "account_type", required=True, pattern="[129]", hint="1 (普通), 2 (当座) or 9 (その他)"
    )
    number = f.string("account_number", required=True, pattern=r"\d{1,7}", hint="1 to 7 digits")
    holder = f.string("holder_kana", required=True, max_len=HOLDER_IN_MAX)
    f.finish()
    codes = None
    if bank and branch:  # the bank master is asked even when other fields are wrong
        codes = (bank, branch, kind or "", (number or "").zfill(7))
    return _terms(f, codes, holder, check_bank_master)


def parse_account_spec(spec: str, holder: str, *, check_bank_master: bool) -> AccountTerms:
    """``--account BANK-BRANCH-TYPE-NUMBER --holder KANA`` (as ``biller zengin --account``);
    :class:`InvalidRequest` naming ``account`` or ``holder_kana``."""
    f = Fields({"account": spec, "holder_kana": holder})
    codes = parse_account(spec)
    if codes is None:
        f.bad("account", f"{spec!r} is not {ACCOUNT_HINT}")
    return _terms(f, codes, holder, check_bank_master, bank_field="account", branch_field="account")


def set_account(
    conn: Connection,
    box: SecretBox,
    biller_id: str,
    terms: AccountTerms,
    effective_from: date,
    today: date,
    now: datetime,
) -> tuple[StoredAccount, bool]:
    """Store the biller's payout account version from ``effective_from`` (today or later);
    (stored, created). :class:`NotFound` for an unknown biller, :class:`Conflict` for the
    date of a version a payout file has used."""
    if effective_from < today:
        raise InvalidRequest(
            [
                FieldError(
                    "effective_from",
                    f"must be today ({today}) or later: a change applies "
                    "from a date on, never to payouts already requested",
                )
            ]
        )
    get_biller(conn, biller_id)
    context = account_context(biller_id, effective_from)
    return save_account_version(
        conn,
        biller_id,
        effective_from,
        terms.account,
        box.seal(terms.account.account_number, context),
        box.seal(terms.holder_kana, context),
        now,
    )


def account_json(stored: StoredAccount, box: SecretBox | None = None) -> dict[str, Any]:
    """A version as the operator sees it: the number masked; the holder's name only with the
    key (and never once purged)."""
    holder = None
    if box is not None and not stored.purged:
        holder = box.unseal(
            stored.sealed_holder, account_context(stored.biller_id, stored.effective_from)
        )
    return {
        "biller_id": stored.biller_id,
        "effective_from": stored.effective_from.isoformat(),
        "bank_code": stored.bank_code,
        "bank_name": stored.bank_name,
        "branch_code": stored.branch_code,
        "branch_name": stored.branch_name,
        "account_type": stored.account_type,
        "account_type_name": ACCOUNT_TYPES.get(stored.account_type, ""),
        "account_number": stored.masked.masked_number,
        "holder_kana": holder,
        "purged": stored.purged,
    }


# --- requests --------------------------------------------------------------------------------


def check_transfer_date(transfer_date: date, today: date) -> None:
    if transfer_date < today:
        raise PayoutError(f"{transfer_date} is in the past: a bank cannot transfer on it")
    if not calendar.is_business_day(transfer_date):
        after = calendar.on_or_after(transfer_date)
        raise PayoutError(f"{transfer_date} is not a bank business day (the next one is {after})")


def file_name(config: PayoutsConfig, transfer_date: date, sequence: int) -> str:
    return f"PAYOUT21_{config.consignor_code}_{transfer_date:%Y%m%d}_{sequence:02d}.txt"


@dataclass(frozen=True)
class Prepared:
    """What one request did: the file recorded (None: nothing to carry) and the billers whose
    settlements waited, with why."""

    file: PayoutFileRow | None
    skipped: Mapping[str, str]

    def as_json(self) -> dict[str, Any]:
        return {
            "file": None if self.file is None else file_json(self.file),
            "skipped": dict(sorted(self.skipped.items())),
        }


def file_json(f: PayoutFileRow) -> dict[str, Any]:
    return {
        "file": f.file_name,
        "transfer_date": f.transfer_date.isoformat(),
        "sequence": f.sequence,
        "records": f.records,
        "total": f.total,
        "status": f.status,
    }


def _events(
    conn: Connection,
    ids: Sequence[tuple[str, str]],
    type: EventType,
    now: datetime,
    new_id: Callable[[str], str],
    render: Render,
) -> None:
    """One event per (settlement, biller), carrying the settlement as it stands now."""
    for settlement_id, biller_id in ids:
        settlement = get_settlement(conn, biller_id, settlement_id)
        assert settlement is not None
        append_event(
            conn,
            biller_id=biller_id,
            event_id=new_id("evt"),
            type=type,
            data={"settlement": render(settlement)},
            now=now,
        )


def prepare_payout(
    conn: Connection,
    config: PayoutsConfig,
    transfer_date: date,
    now: datetime,
    new_id: Callable[[str], str],
    render: Render,
) -> Prepared:
    """Choose and record (pending) the payout file of ``transfer_date``: see the module."""
    lock_payout_requests(conn)
    payable = lock_payable(conn, transfer_date)
    accounts = accounts_in_force(conn, {p.biller_id for p in payable}, transfer_date)
    held = returned_accounts(conn, [a.account_id for a in accounts.values()])
    skipped: dict[str, str] = {}
    items: list[PayoutItem] = []
    for p in payable:
        account = accounts.get(p.biller_id)
        if account is None or account.purged:
            skipped[p.biller_id] = f"no payout account in force on {transfer_date}"
            continue
        if account.account_id in held:
            skipped[p.biller_id] = (
                f"a payout to its account from {account.effective_from} was returned (振込不能): "
                "set a corrected account"
            )
            continue
        code1, code2 = customer_code(p.biller_code, p.period_start)
        items.append(
            PayoutItem(
                0,
                len(items) + 2,
                p.settlement_id,
                p.biller_id,
                account.account_id,
                code1 + code2,
                p.payout,
            )
        )
    if not items:
        return Prepared(None, skipped)
    sequence = next_sequence(conn, transfer_date)
    recorded = insert_payout_file(
        conn,
        transfer_date=transfer_date,
        sequence=sequence,
        file_name=file_name(config, transfer_date, sequence),
        requester_code=config.consignor_code,
        items=items,
        now=now,
    )
    moved = set(
        set_payout_state(
            conn,
            [i.settlement_id for i in items],
            PayoutState.PAYOUT_REQUESTED,
            now,
            from_states=(PayoutState.SETTLED,),
        )
    )
    assert moved == {i.settlement_id for i in items}, "the settlements were locked as settled"
    _events(
        conn,
        [(i.settlement_id, i.biller_id) for i in items],
        EventType.SETTLEMENT_PAYOUT_REQUESTED,
        now,
        new_id,
        render,
    )
    return Prepared(recorded, skipped)


def payout_header(config: PayoutsConfig, transfer_date: date) -> PayoutHeader:
    """The header of a payout file: the center's code, name and own account."""
    bank_name, branch_name = bank_names(
        config.bank_code, config.branch_code, check=config.check_bank_master
    )
    return PayoutHeader(
        requester_code=config.consignor_code,
        requester_name=config.consignor_name,
        transfer_mmdd=f"{transfer_date:%m%d}",
        bank_code=config.bank_code,
        bank_name=bank_name,
        branch_code=config.branch_code,
        branch_name=branch_name,
        account_type=config.account_type,
        account_number=config.account_number,
    )


def payout_bytes(
    conn: Connection, config: PayoutsConfig, box: SecretBox, recorded: PayoutFileRow
) -> bytes:
    """The file of a recorded payout: a pure function of its items and their account versions
    (written again after a crash, it is the same bytes)."""
    items = items_of_file(conn, recorded.file_id)
    accounts = accounts_by_ids(conn, [i.account_id for i in items])
    transfers = []
    for item in items:
        a = accounts[item.account_id]
        context = account_context(a.biller_id, a.effective_from)
        transfers.append(
            Transfer(
                bank_code=a.bank_code,
                bank_name=a.bank_name,
                branch_code=a.branch_code,
                branch_name=a.branch_name,
                account_type=a.account_type,
                account_number=box.unseal(a.sealed_number, context),
                payee_name=box.unseal(a.sealed_holder, context),
                amount=item.amount,
                customer_code1=item.customer_code[:10],
                customer_code2=item.customer_code[10:],
            )
        )
    header = payout_header(config, recorded.transfer_date)
    return build_payout_file(header, transfers, separator=config.separator, eof=config.eof_mark)


def write_pending(
    conn: Connection, config: PayoutsConfig, box: SecretBox, now: datetime
) -> list[PayoutFileRow]:
    """Write every pending payout file into the outbox and mark it written (see the module:
    a crash between the two writes the same file again)."""
    written = []
    for recorded in pending_payout_files(conn):
        data = payout_bytes(conn, config, box, recorded)
        safe_files.write_atomically(config.outbox / recorded.file_name, data)
        crashpoints.crash_point("payout.after_file")
        mark_payout_written(conn, recorded.file_id, now)
        FILES.inc()
        TRANSFERS.inc(recorded.records)
        log.info(
            "payouts: {file} written: {records} transfer(s), {total} yen, 取組日 {day}",
            file=recorded.file_name,
            records=recorded.records,
            total=recorded.total,
            day=recorded.transfer_date.isoformat(),
        )
        written.append(recorded)
    return written


def mark_paid_out(
    conn: Connection, today: date, now: datetime, new_id: Callable[[str], str], render: Render
) -> int:
    """``payout_requested`` → ``paid_out`` for every written file whose transfer date has
    come; how many settlements."""
    due = lock_due_paid_out(conn, today)
    if not due:
        return 0
    moved = set(
        set_payout_state(
            conn,
            [s for s, _ in due],
            PayoutState.PAID_OUT,
            now,
            from_states=(PayoutState.PAYOUT_REQUESTED,),
        )
    )
    done = [(s, b) for s, b in due if s in moved]
    _events(conn, done, EventType.SETTLEMENT_PAID_OUT, now, new_id, render)
    PAID_OUT.inc(len(done))
    return len(done)


# --- returns ---------------------------------------------------------------------------------


def _refused(name: str, record: int, field_name: str, value: str, reason: str) -> RecordError:
    return RecordError(NETWORK, record, field_name, value, reason)


def apply_returns(
    conn: Connection,
    config: PayoutsConfig,
    parsed: PayoutFile,
    name: str,
    now: datetime,
    new_id: Callable[[str], str],
    render: Render,
) -> dict[str, Any]:
    """Apply a checked 振込不能 file in the caller's transaction (all records or none: a
    :class:`FileErrors` before anything is written); a summary."""
    errors: list[RecordError] = []
    if not parsed.is_returns:
        errors.append(
            _refused(
                name,
                2,
                "return_code",
                " ",
                "a payout file, not the bank's returns: no record carries a 振込不能事由",
            )
        )
    if parsed.header.requester_code != config.consignor_code:
        errors.append(
            _refused(
                name,
                1,
                "requester_code",
                parsed.header.requester_code,
                f"not this center's 振込依頼人コード ({config.consignor_code})",
            )
        )
    items = items_by_customer_codes(conn, [t.customer_code for t in parsed.transfers])
    for no, t in enumerate(parsed.transfers, 2):
        item = items.get(t.customer_code)
        if item is None:
            errors.append(
                _refused(
                    name,
                    no,
                    "customer_code1",
                    t.customer_code.strip(),
                    "names no transfer of this center's payout files",
                )
            )
        elif item.amount != t.amount:
            errors.append(
                _refused(
                    name, no, "amount", str(t.amount), f"the transfer asked was {item.amount} yen"
                )
            )
    if errors:
        raise FileErrors(name, errors)
    returned: list[tuple[str, str]] = []
    already = 0
    for t in parsed.transfers:
        item = items[t.customer_code]
        if item.return_code is not None or item.state is PayoutState.PAYOUT_RETURNED:
            already += 1
            continue
        set_item_returned(conn, item.settlement_id, t.return_code, name, now)
        returned.append((item.settlement_id, item.biller_id))
    moved = set(
        set_payout_state(
            conn,
            [s for s, _ in returned],
            PayoutState.PAYOUT_RETURNED,
            now,
            from_states=(PayoutState.PAYOUT_REQUESTED, PayoutState.PAID_OUT),
        )
    )
    done = [(s, b) for s, b in returned if s in moved]
    _events(conn, done, EventType.SETTLEMENT_PAYOUT_RETURNED, now, new_id, render)
    RETURNS.inc(len(done))
    codes: dict[str, int] = {}
    for t in parsed.transfers:
        codes[t.return_code] = codes.get(t.return_code, 0) + 1
    return {
        "file": name,
        "records": len(parsed.transfers),
        "total": sum(t.amount for t in parsed.transfers),
        "returned": len(done),
        "already_returned": already,
        "reasons": {code: f"{n} x {return_meaning(code)}" for code, n in sorted(codes.items())},
        "settlements": [s for s, _ in done],
    }


def returns_report(summary: Mapping[str, Any]) -> str:
    reasons = "; ".join(summary["reasons"].values())
    return (
        f"applied: {summary['records']} returned transfer(s), {summary['total']} yen: "
        f"{summary['returned']} settlement(s) now payout_returned, {summary['already_returned']} "
        f"already returned; {reasons}"
    )
