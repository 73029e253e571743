"""Mandates (口座振替依頼): a customer's bank account that a biller may debit.

``PUT /v1/mandates/{customer_no}`` registers or changes one, ``GET`` reads it (account number
masked), ``DELETE`` revokes it (spec/merchant-api.md). Names are converted to Zengin half-width
katakana without small kana before they are stored, so a request file can always be written;
what cannot be converted is refused naming the field. Bank and branch codes are checked against
the Zengin bank master (the ``zengin-code`` package) unless ``zengin.check_bank_master`` is off.

新規コード follows the mandate's history: ``1`` until a request file has carried it (first
debit), ``2`` after a change of a mandate the bank already knows, ``0`` otherwise.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway.billing.bills import CUSTOMER_NO
from gateway.clock import now as clock_now
from gateway.config import ZenginConfig
from gateway.errors import FieldError, InvalidRequest, NotFound
from gateway.mappers.zengin.records import ACCOUNT_TYPES, to_zengin_text
from gateway.model import BankAccount, Channel, Mandate, MandateStatus, Outcome, Principal
from gateway.store import Store
from gateway.store.billers import get_biller
from gateway.store.zengin import get_mandate, insert_mandate, update_mandate
from gateway.validation import Fields
from gateway.views import iso

HOLDER_MAX = 30  # 預金者名: 30 bytes of half-width characters
# The rules of a mandate's fields, read by the validator below and the OpenAPI document.
BANK_CODE = r"\d{4}"
BRANCH_CODE = r"\d{3}"
ACCOUNT_NUMBER = r"\d{1,7}"
HOLDER_KANA_MAX = 60  # as sent (full-width allowed); HOLDER_MAX once converted
BANK_NAME_MAX = 15


class UnknownBank(ValueError):
    """A bank or branch code that the Zengin master does not list."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def master_bank(bank_code: str) -> Any:
    """The Zengin master's bank (``name``, ``kana``, ``branches``), or None."""
    from zengin_code import Bank  # 8 MB of JSON, loaded on first use

    return Bank.all.get(bank_code)


def bank_names(bank_code: str, branch_code: str, *, check: bool = True) -> tuple[str, str]:
    """The half-width kana names (at most 15 characters) of a bank and branch from the Zengin
    master; blank names when ``check`` is off and the master does not know them."""
    bank = master_bank(bank_code)
    if bank is None:
        if check:
            raise UnknownBank("bank_code", f"{bank_code} is not a bank of the Zengin master")
        return "", ""
    branch = bank.branches.get(branch_code)
    if branch is None:
        if check:
            raise UnknownBank(
                "branch_code", f"{branch_code} is not a branch of bank {bank_code} ({bank.name})"
            )
        return to_zengin_text(bank.kana)[:BANK_NAME_MAX], ""
    return (
        to_zengin_text(bank.kana)[:BANK_NAME_MAX],
        to_zengin_text(branch.kana)[:BANK_NAME_MAX],
    )


@dataclass(frozen=True)
class MandateTerms:
    """What a biller sends for a mandate, checked and converted."""

    account: BankAccount
    holder_kana: str


def zengin_kana(f: Fields, key: str, value: str | None, max_len: int) -> str | None:
    """``value`` as Zengin characters (full-width and small kana converted), or an error on
    ``key`` naming the character that cannot be written."""
    if value is None:
        return None
    try:
        converted = to_zengin_text(value).strip()
    except ValueError as e:
        f.bad(key, str(e))
        return None
    if not converted:
        f.bad(key, "must not be blank")
        return None
    if len(converted) > max_len:
        f.bad(key, f"is {len(converted)} half-width characters; at most {max_len} fit")
        return None
    return converted


def parse_mandate_request(body: object, *, check_bank_master: bool) -> MandateTerms:
    f = Fields(body)
    bank_code = f.string("bank_code", required=True, pattern=BANK_CODE, hint="4 digits")
    branch_code = f.string("branch_code", required=True, pattern=BRANCH_CODE, hint="3 digits")
    account_type = f.string(
        "account_type", required=True, pattern="[129]", hint="1 (普通), 2 (当座) or 9 (その他)"
    )
    number = f.string("account_number", required=True, pattern=ACCOUNT_NUMBER, hint="1 to 7 digits")
    holder = zengin_kana(
        f,
        "holder_kana",
        f.string("holder_kana", required=True, max_len=HOLDER_KANA_MAX),
        HOLDER_MAX,
    )
    f.finish()
    names = ("", "")
    if bank_code is not None and branch_code is not None:
        try:
            names = bank_names(bank_code, branch_code, check=check_bank_master)
        except UnknownBank as e:
            f.bad(e.field, str(e))
    f.raise_if_invalid()
    assert bank_code and branch_code and account_type and number and holder
    account = BankAccount(bank_code, names[0], branch_code, names[1], account_type, number.zfill(7))
    return MandateTerms(account, holder)


def mandate_json(m: Mandate) -> dict[str, Any]:
    a = m.account
    return {
        "customer_no": m.customer_no,
        "bank_code": a.bank_code,
        "bank_name": a.bank_name,
        "branch_code": a.branch_code,
        "branch_name": a.branch_name,
        "account_type": a.account_type,
        "account_type_name": ACCOUNT_TYPES.get(a.account_type, ""),
        "account_number": a.masked_number,
        "holder_kana": m.holder_kana,
        "status": m.status.value,
        "status_reason": m.status_reason,
        "next_new_code": m.new_code,
        "version": m.version,
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
    }


def _customer_no(customer_no: str) -> str:
    if not re.fullmatch(CUSTOMER_NO, customer_no):
        raise NotFound(f"mandate {customer_no[:64]}")
    return customer_no


class MandateService:
    def __init__(self, store: Store, clock: IReactorTime, config: ZenginConfig | None) -> None:
        self.store = store
        self.clock = clock
        self.config = config

    def _check_biller(self, conn: Connection, principal: Principal) -> str:
        assert principal.biller_id is not None
        biller = get_biller(conn, principal.biller_id)
        if self.config is None or Channel.TRANSFER not in biller.channels:
            off = "account transfer is not enabled for this biller"
            raise InvalidRequest([FieldError("customer_no", off)])
        return biller.biller_id

    async def put(
        self, principal: Principal, customer_no: str, body: object
    ) -> tuple[Outcome, dict[str, Any]]:
        """Register (created) or change (done) a mandate; the same terms again change nothing."""
        customer_no = _customer_no(customer_no)
        check = self.config.check_bank_master if self.config else True
        terms = parse_mandate_request(body, check_bank_master=check)
        now = clock_now(self.clock)

        def txn(conn: Connection) -> tuple[Outcome, dict[str, Any]]:
            biller_id = self._check_biller(conn, principal)
            found = get_mandate(conn, biller_id, customer_no, for_update=True)
            if found is None:
                mandate = Mandate(
                    biller_id=biller_id,
                    customer_no=customer_no,
                    account=terms.account,
                    holder_kana=terms.holder_kana,
                    status=MandateStatus.ACTIVE,
                    status_reason=None,
                    new_code="1",
                    requested=False,
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
                insert_mandate(conn, mandate)
                return Outcome.CREATED, mandate_json(mandate)
            mandate_id, current = found
            same = (
                current.account == terms.account
                and current.holder_kana == terms.holder_kana
                and current.status is MandateStatus.ACTIVE
            )
            if same:
                return Outcome.DONE, mandate_json(current)
            changed = dataclasses.replace(
                current,
                account=terms.account,
                holder_kana=terms.holder_kana,
                status=MandateStatus.ACTIVE,
                status_reason=None,
                new_code="2" if current.requested else "1",
                version=current.version + 1,
                updated_at=now,
            )
            update_mandate(conn, mandate_id, changed, registered_again=True)
            return Outcome.DONE, mandate_json(changed)

        return await self.store.run_interaction("mandates.put", txn)

    async def get(self, principal: Principal, customer_no: str) -> dict[str, Any]:
        customer_no = _customer_no(customer_no)

        def txn(conn: Connection) -> dict[str, Any]:
            assert principal.biller_id is not None
            found = get_mandate(conn, principal.biller_id, customer_no)
            if found is None:
                raise NotFound(f"mandate {customer_no}")
            return mandate_json(found[1])

        return await self.store.run_interaction("mandates.get", txn)

    async def revoke(self, principal: Principal, customer_no: str) -> dict[str, Any]:
        """Revoke: the customer's bills are no longer put in request files. Revoking a revoked
        mandate changes nothing."""
        customer_no = _customer_no(customer_no)
        now = clock_now(self.clock)

        def txn(conn: Connection) -> dict[str, Any]:
            assert principal.biller_id is not None
            found = get_mandate(conn, principal.biller_id, customer_no, for_update=True)
            if found is None:
                raise NotFound(f"mandate {customer_no}")
            mandate_id, current = found
            if current.status is MandateStatus.REVOKED:
                return mandate_json(current)
            revoked = dataclasses.replace(
                current,
                status=MandateStatus.REVOKED,
                status_reason="revoked by the biller",
                version=current.version + 1,
                updated_at=now,
            )
            update_mandate(conn, mandate_id, revoked)
            return mandate_json(revoked)

        return await self.store.run_interaction("mandates.revoke", txn)
