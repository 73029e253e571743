"""``gateway-admin`` commands of payouts (docs/settlement.md, "Payouts"; docs/operations.md).

``biller payout-account --id ID --account BANK-BRANCH-TYPE-NUMBER --holder KANA [--from DAY]``
sets a biller's payout account from a date (today by default), ``biller payout-accounts --id
ID`` lists its versions (numbers masked); ``payout request --date DAY`` records and writes the
総合振込 file of a transfer date (and any left pending), ``payout returned FILE`` applies the
bank's 振込不能 file as the watched inbox would, ``payout files [--date DAY]`` lists the files.
They run the daemon's own steps (gateway.money.payouts), each in one transaction, print JSON and
exit 1 with a one-line reason.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from gateway import ids
from gateway.app.admin.common import CommandError, utc_now
from gateway.billing.actors import cli_actor
from gateway.config import Config
from gateway.config.payouts import PayoutsConfig
from gateway.errors import FileErrors, InvalidRequest
from gateway.infra.secretbox import SecretBox
from gateway.mappers.zengin.payouts import parse_payout_file
from gateway.model import business_date
from gateway.money.payout_service import checked
from gateway.money.payouts import (
    PayoutError,
    account_json,
    apply_returns,
    check_transfer_date,
    file_json,
    parse_account_spec,
    prepare_payout,
    set_account,
    write_pending,
)
from gateway.money.settlement import settlement_json
from gateway.store import create_db_engine
from gateway.store.audit import record
from gateway.store.billers import get_biller
from gateway.store.payouts import account_versions, list_payout_files

_FLAGS = {"account": "--account", "holder_kana": "--holder", "effective_from": "--from"}


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option}: {text!r} is not a date YYYY-MM-DD") from None


def _payouts(config: Config, command: str) -> tuple[PayoutsConfig, SecretBox]:
    if config.payouts is None:
        raise CommandError(f"{command}: [payouts] is not in the configuration")
    if config.secret_key is None:
        raise CommandError(
            f"{command}: secrets.key (or GATEWAY_SECRET_KEY) is required: payout accounts are "
            "kept sealed with it"
        )
    return checked(config.payouts), SecretBox(config.secret_key)


def _render(settlement: Any) -> dict[str, Any]:
    return settlement_json(settlement, lines=False)


def _flagged(e: InvalidRequest) -> CommandError:
    return CommandError(
        "; ".join(f"{_FLAGS.get(f.field, '--' + f.field)}: {f.message}" for f in e.errors)
    )


def cmd_payout_account(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """Set a biller's payout account from a date (today by default)."""
    payouts, box = _payouts(config, "biller payout-account")
    now = utc_now()
    today = business_date(now)
    effective_from = _day(args.from_, "--from") if args.from_ else today
    try:
        terms = parse_account_spec(
            args.account, args.holder, check_bank_master=payouts.check_bank_master
        )
    except InvalidRequest as e:
        raise _flagged(e) from None
    engine = create_db_engine(config.database.url, 1)
    try:
        with engine.begin() as conn:
            stored, created = set_account(conn, box, args.id, terms, effective_from, today, now)
            record(
                conn,
                cli_actor(),
                "payout_account.put",
                f"biller:{args.id}",
                now,
                biller_id=args.id,
                after=account_json(stored),  # no holder's name in the audit log
            )
    except InvalidRequest as e:
        raise _flagged(e) from None
    return {"created": created, **account_json(stored, box)}


def cmd_payout_accounts(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    _, box = _payouts(config, "biller payout-accounts")
    engine = create_db_engine(config.database.url, 1)
    with engine.connect() as conn:
        get_biller(conn, args.id)
        versions = account_versions(conn, args.id)
    return {"biller_id": args.id, "accounts": [account_json(v, box) for v in versions]}


def cmd_payout_request(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """Record and write the payout file of a transfer date (and any left pending)."""
    payouts, box = _payouts(config, "payout request")
    transfer_date = _day(args.date, "--date")
    now = utc_now()
    try:
        check_transfer_date(transfer_date, business_date(now))
    except PayoutError as e:
        raise CommandError(f"--date: {e}") from None
    engine = create_db_engine(config.database.url, 1)
    with engine.begin() as conn:
        prepared = prepare_payout(conn, payouts, transfer_date, now, ids.new_id, _render)
        if prepared.file is not None:  # audited in the transaction that recorded the file
            record(
                conn,
                cli_actor(),
                "payout.request",
                f"payout_file:{prepared.file.file_name}",
                now,
                after=prepared.as_json(),
            )
    with engine.begin() as conn:
        written = write_pending(conn, payouts, box, now)
    return {
        "transfer_date": transfer_date.isoformat(),
        **prepared.as_json(),
        "written": [{**file_json(f), "path": str(payouts.outbox / f.file_name)} for f in written],
    }


def cmd_payout_returned(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """Apply the bank's 振込不能 file as if it had arrived in the inbox (all records or none)."""
    payouts, _ = _payouts(config, "payout returned")
    path = Path(args.file)
    engine = create_db_engine(config.database.url, 1)
    try:
        parsed = parse_payout_file(path.read_bytes(), source=path.name)
        with engine.begin() as conn:
            now = utc_now()
            summary = apply_returns(conn, payouts, parsed, path.name, now, ids.new_id, _render)
            if summary["returned"]:
                record(conn, cli_actor(), "import.payout_returns", f"file:{path.name}", now,
                       after=summary)  # fmt: skip
    except FileErrors as e:
        raise CommandError(e.one_line()) from None
    return summary


def cmd_payout_files(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    day = _day(args.date, "--date") if args.date else None
    engine = create_db_engine(config.database.url, 1)
    with engine.connect() as conn:
        found = list_payout_files(conn, day)
    return {"files": [file_json(f) for f in found]}


def add_biller_commands(biller: Any) -> None:
    pa = biller.add_parser("payout-account", help="set a biller's payout account from a date")
    pa.add_argument("--id", required=True)
    pa.add_argument(
        "--account",
        required=True,
        help="BANK-BRANCH-TYPE-NUMBER, e.g. 0005-135-1-1234567 (type 1 普通, 2 当座, 9 その他)",
    )
    pa.add_argument("--holder", required=True, help="受取人名 in kana, e.g. ｶ)ﾄｳｷﾖｳｶﾞｽ")
    pa.add_argument("--from", dest="from_", default=None, help="YYYY-MM-DD (default: today)")
    pa.set_defaults(fn=cmd_payout_account)
    ps = biller.add_parser("payout-accounts", help="a biller's payout account versions")
    ps.add_argument("--id", required=True)
    ps.set_defaults(fn=cmd_payout_accounts)


def add_commands(sub: Any) -> None:
    payout = sub.add_parser("payout", help="payouts to billers (総合振込)").add_subparsers(
        dest="action", required=True
    )
    pr = payout.add_parser("request", help="record and write the payout file of a date")
    pr.add_argument("--date", required=True, help="the transfer date (取組日), YYYY-MM-DD")
    pr.set_defaults(fn=cmd_payout_request)
    pt = payout.add_parser("returned", help="apply the bank's 振込不能 (returns) file")
    pt.add_argument("file")
    pt.set_defaults(fn=cmd_payout_returned)
    pf = payout.add_parser("files", help="the payout files")
    pf.add_argument("--date", default=None, help="of this transfer date only")
    pf.set_defaults(fn=cmd_payout_files)
