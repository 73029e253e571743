"""A biller as 委託者 of account transfers: its consignor code at the bank and its own account,
the header of its request files (docs/networks/zengin.md). ``gateway-admin biller zengin`` and
the console's biller page set it through :func:`set_consignor`.

- ``consignor_code``: the 10 digits the bank assigned (委託者コード), one biller's only;
- ``account``: the biller's own account ``BANK-BRANCH-TYPE-NUMBER`` (e.g. ``0005-135-1-1234567``;
  type 1 普通, 2 当座, 9 その他), its bank and branch from the Zengin master (unless
  ``[zengin] check_bank_master`` is off);
- ``consignor_name`` (委託者名): 1-40 Zengin half-width characters, the biller's kana when none
  is given.

A change is written to the audit log (``consignor.set``, target ``biller:<id>``) in its
transaction, the account number masked; the same contract again changes nothing.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from gateway.billing.mandates import UnknownBank, bank_names
from gateway.config import Config
from gateway.errors import Conflict, FieldError, InvalidRequest
from gateway.mappers.zengin.records import to_zengin_text
from gateway.model import BankAccount, Consignor
from gateway.store.audit import record
from gateway.store.billers import get_biller
from gateway.store.zengin import consignors_by_codes, get_consignor, save_consignor

CONSIGNOR_CODE = r"[0-9]{10}"
ACCOUNT = r"([0-9]{4})-([0-9]{3})-([129])-([0-9]{1,7})"
NAME_MAX = 40


def consignor_json(c: Consignor) -> dict[str, Any]:
    """A consignor contract as the operator sees it (and the audit log keeps it): the account's
    number masked."""
    return {
        "biller_id": c.biller_id,
        "consignor_code": c.code,
        "consignor_name": c.name,
        "bank": f"{c.account.bank_code} {c.account.bank_name}",
        "branch": f"{c.account.branch_code} {c.account.branch_name}",
        "account_type": c.account.account_type,
        "account_number": c.account.masked_number,
    }


def set_consignor(
    conn: Connection,
    config: Config,
    actor: str,
    biller_id: str,
    code: str,
    account: str,
    name: str | None,
    now: datetime,
) -> Consignor:
    """Make ``biller_id`` a 委託者 (or change its contract): :class:`InvalidRequest` naming
    ``consignor_code``, ``account`` or ``consignor_name``; :class:`Conflict` for a code another
    biller holds; NotFound for an unknown biller."""
    if config.zengin is None:
        raise InvalidRequest([FieldError("zengin", "[zengin] is not in the configuration")])
    errors: list[FieldError] = []
    if not re.fullmatch(CONSIGNOR_CODE, code):
        errors.append(
            FieldError("consignor_code", "must be the 10 digits the bank assigned (委託者コード)")
        )
    match = re.fullmatch(ACCOUNT, account)
    bank_name = branch_name = ""
    if match is None:
        errors.append(
            FieldError(
                "account",
                f"{account[:40]!r} must be BANK-BRANCH-TYPE-NUMBER, e.g. 0005-135-1-1234567"
                " (type 1 普通, 2 当座, 9 その他)",
            )
        )
    else:
        try:
            bank_name, branch_name = bank_names(
                match.group(1), match.group(2), check=config.zengin.check_bank_master
            )
        except UnknownBank as e:
            errors.append(FieldError("account", str(e)))
    biller = get_biller(conn, biller_id)
    try:
        kana = to_zengin_text(name or biller.kana).strip()
    except ValueError as e:
        errors.append(FieldError("consignor_name", str(e)))
        kana = ""
    else:
        if not 1 <= len(kana) <= NAME_MAX:
            errors.append(
                FieldError("consignor_name", f"must be 1-{NAME_MAX} half-width characters")
            )
    if errors:
        raise InvalidRequest(errors)
    assert match is not None
    bank_code, branch_code, account_type, number = match.groups()
    holder = consignors_by_codes(conn, [code]).get(code)
    if holder is not None and holder != biller_id:
        raise Conflict(f"consignor code {code} is another biller's", field="consignor_code")
    consignor = Consignor(
        biller_id,
        code,
        kana,
        BankAccount(bank_code, bank_name, branch_code, branch_name, account_type, number.zfill(7)),
    )
    old = get_consignor(conn, biller_id, for_update=True)
    save_consignor(conn, consignor, now)
    if old != consignor:
        record(
            conn,
            actor,
            "consignor.set",
            f"biller:{biller_id}",
            now,
            biller_id=biller_id,
            before=None if old is None else consignor_json(old),
            after=consignor_json(consignor),
        )
    return consignor
