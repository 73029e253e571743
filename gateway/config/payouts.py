"""``[payouts]``: how the center pays its billers out (docs/settlement.md, "Payouts").

The center's own account at its bank and its 振込依頼人コード head every 総合振込 file
(種別コード 21); the files go to ``outbox`` (one per transfer date, more if a date is asked again
for what was not carried), the bank's 振込不能 (returns) files come back through ``inbox``. With
``at`` the daemon writes the file of the day's payouts at that JST time on every bank business
day; without it, only ``gateway-admin payout request --date D`` (or the admin API) does. The
record separator and the EOF mark are the transfer files' options. Absent: no payouts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time as dt_time
from pathlib import Path

from gateway.config.table import Table
from gateway.errors import ConfigError
from gateway.mappers.zengin.records import to_zengin_text

ACCOUNT = r"(\d{4})-(\d{3})-([129])-(\d{1,7})"
ACCOUNT_HINT = "BANK-BRANCH-TYPE-NUMBER, e.g. 0005-135-1-1234567 (type 1 普通, 2 当座, 9 その他)"


@dataclass(frozen=True)
class PayoutsConfig:
    consignor_code: str  # 振込依頼人コード: 10 digits, assigned by the center's bank
    consignor_name: str  # 振込依頼人名: Zengin half-width kana, at most 40
    bank_code: str  # the center's own account (仕向銀行, 支店, 預金種目, 口座番号)
    branch_code: str
    account_type: str
    account_number: str  # 7 digits
    outbox: Path  # the payout files, for the bank (temp name + rename)
    inbox: Path  # the bank's 振込不能 (returns) files, watched
    at: dt_time | None  # JST, every bank business day; None: by command only
    poll_interval: float  # seconds between scans of the inbox
    separator: bytes  # after each record: CRLF, or nothing
    eof_mark: bool  # a final 0x1A
    check_bank_master: bool  # payout accounts must name a bank and branch of the master


def parse_account(text: str) -> tuple[str, str, str, str] | None:
    """``BANK-BRANCH-TYPE-NUMBER`` as (bank, branch, type, 7-digit number); None if not."""
    match = re.fullmatch(ACCOUNT, text)
    if match is None:
        return None
    bank, branch, kind, number = match.groups()
    return bank, branch, kind, number.zfill(7)


def parse_payouts(t: Table) -> PayoutsConfig:
    code = t.string("consignor_code", pattern=r"\d{10}", hint="10 digits (振込依頼人コード)")
    raw_name = t.string("consignor_name")
    try:
        name = to_zengin_text(raw_name).strip()
    except ValueError as e:
        raise ConfigError(t.key("consignor_name"), str(e)) from None
    if not 1 <= len(name) <= 40:
        raise ConfigError(t.key("consignor_name"), "must be 1-40 half-width characters")
    raw_account = t.string("account")
    account = parse_account(raw_account)
    if account is None:
        raise ConfigError(t.key("account"), f"{raw_account!r} is not {ACCOUNT_HINT}")
    at = t.string("at", None, pattern=r"([01][0-9]|2[0-3]):[0-5][0-9]", hint="a time HH:MM")
    separator = t.string("separator", "crlf", pattern=r"crlf|none", hint="crlf or none")
    return PayoutsConfig(
        consignor_code=code,
        consignor_name=name,
        bank_code=account[0],
        branch_code=account[1],
        account_type=account[2],
        account_number=account[3],
        outbox=t.path_value("outbox"),
        inbox=t.path_value("inbox"),
        at=None if at is None else dt_time(int(at[:2]), int(at[3:])),
        poll_interval=t.number("poll_interval", 5.0),
        separator=b"\r\n" if separator == "crlf" else b"",
        eof_mark=t.boolean("eof_mark", False),
        check_bank_master=t.boolean("check_bank_master", True),
    )
