"""``gateway-admin``: the operator's commands (spec/operator.md).

Every command exits non-zero with a one-line reason on failure and prints JSON on success.
Commands run their store functions directly (no reactor): each is one short transaction.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from gateway.app.admin.biller_settings import add_set_command as add_biller_set_command
from gateway.app.admin.common import CommandError, utc_now
from gateway.app.admin.console_users import add_commands as add_user_commands
from gateway.app.admin.keys import add_commands as add_key_commands
from gateway.app.admin.payouts import add_biller_commands as add_payout_biller_commands
from gateway.app.admin.payouts import add_commands as add_payout_commands
from gateway.app.admin.recon import add_commands as add_recon_commands
from gateway.app.admin.settlement import add_commands as add_settlement_commands
from gateway.app.admin.slips import add_commands as add_slip_commands
from gateway.app.admin.support import add_biller_commands
from gateway.app.admin.support import add_commands as add_support_commands
from gateway.billing.actors import cli_actor
from gateway.billing.billers import BillerApplication, biller_json, onboard
from gateway.billing.bills import bill_json
from gateway.billing.consignors import consignor_json, set_consignor
from gateway.billing.keys import NAME_MAX, hash_key, name_ok, new_key, shown_prefix
from gateway.config import Config, load_config
from gateway.errors import FileErrors, GatewayError, InvalidRequest
from gateway.infra.tls import make_certs
from gateway.ingest import Ingest, Received
from gateway.mappers.cvs import barcode
from gateway.mappers.cvs.mapper import parse_file
from gateway.mappers.zengin.mapper import parse_file as parse_zengin
from gateway.model import JST, Channel
from gateway.networks.issuer import Issuer
from gateway.networks.registry import REGISTRY
from gateway.networks.zengin import (
    RequestError,
    apply_result,
    check_debit_date,
    prepare_requests,
    publish_staged,
    stage_pending,
)
from gateway.store import create_db_engine
from gateway.store.audit import record
from gateway.store.billers import insert_api_key
from gateway.store.migrate import migrate


def _channels(text: str) -> frozenset[Channel]:
    try:
        return frozenset(Channel(c.strip()) for c in text.split(",") if c.strip())
    except ValueError:
        raise CommandError(f"--channels: {text!r} must list cvs, payeasy, transfer") from None


def cmd_migrate(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    engine = create_db_engine(config.database.url, 1)
    before, after = migrate(engine)
    if after != before:  # an upgrade, in the audit log its schema now has
        with engine.begin() as conn:
            record(
                conn,
                cli_actor(),
                "schema.migrate",
                f"schema:{after}",
                utc_now(),
                before={"revision": before},
                after={"revision": after},
            )
    return {"from": before, "to": after}


_FLAGS = {"id": "--id", "payeasy_institution_code": "--payeasy-institution"}


def cmd_biller_create(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    app = BillerApplication(
        biller_id=args.id,
        name=args.name,
        kana=args.kana,
        channels=_channels(args.channels),
        payeasy_institution_code=args.payeasy_institution,
        cvs_agency=args.cvs_agency,
        cvs_code=args.cvs_code,
    )
    engine = create_db_engine(config.database.url, 1)
    try:
        with engine.begin() as conn:
            biller = onboard(conn, config, app, utc_now(), cli_actor())
    except InvalidRequest as e:
        flag = {e.field: _FLAGS.get(e.field, "--" + e.field.replace("_", "-")) for e in e.errors}
        raise CommandError("; ".join(f"{flag[f.field]}: {f.message}" for f in e.errors)) from None
    return biller_json(config, biller)


def cmd_biller_zengin(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """Make a biller a 委託者 of account transfers (or change its contract)."""

    if config.zengin is None:
        raise CommandError("biller zengin: [zengin] is not in the configuration")
    engine = create_db_engine(config.database.url, 1)
    try:
        with engine.begin() as conn:
            consignor = set_consignor(
                conn,
                config,
                cli_actor(),
                args.id,
                args.consignor_code,
                args.account,
                args.consignor_name,
                utc_now(),
            )
    except InvalidRequest as e:
        flags = {"consignor_code": "--consignor-code", "consignor_name": "--consignor-name"}
        raise CommandError(
            "; ".join(f"{flags.get(f.field, '--' + f.field)}: {f.message}" for f in e.errors)
        ) from None
    return consignor_json(consignor)


def cmd_zengin_request(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """Write the request files of a debit date into zengin.outbox (and any left pending)."""

    if config.zengin is None:
        raise CommandError("zengin request: [zengin] is not in the configuration")
    try:
        debit_date = date.fromisoformat(args.date)
    except ValueError:
        raise CommandError(f"--date: {args.date!r} is not a date YYYY-MM-DD") from None
    now = utc_now()
    try:
        check_debit_date(debit_date, now.astimezone(JST).date())
    except RequestError as e:
        raise CommandError(f"--date: {e}") from None
    engine = create_db_engine(config.database.url, 1)
    with engine.begin() as conn:
        prepare_requests(conn, debit_date, now, args.biller)
    with engine.begin() as conn:
        staged = stage_pending(conn, config.zengin)
    with engine.begin() as conn:
        written = publish_staged(conn, config.zengin, staged, now)
        for w in written:
            record(
                conn,
                cli_actor(),
                "zengin.request",
                f"biller:{w.biller_id}",
                now,
                biller_id=w.biller_id,
                after=w.as_json(),
            )
    return {"debit_date": debit_date.isoformat(), "files": [w.as_json() for w in written]}


def cmd_import_zengin_result(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """Apply a Zengin result file as if it had arrived in the inbox (all records or none)."""

    if config.zengin is None:
        raise CommandError("import zengin-result: [zengin] is not in the configuration")
    path = Path(args.file)
    now = utc_now()
    engine = create_db_engine(config.database.url, 1)
    try:
        parsed = parse_zengin(path.read_bytes(), source=path.name)
        with engine.begin() as conn:
            summary = apply_result(
                conn, _ingest(config), parsed, path.name, now, now.astimezone(JST).date()
            )
            biller_id = summary.get("biller_id")
            _audit_import(conn, "import.zengin_result", path.name, now, summary, biller_id)
    except FileErrors as e:  # the file's own errors, or not a result of ours: nothing applied
        raise CommandError(e.one_line()) from None
    return {"file": str(path), **summary}


def _ingest(config: Config) -> Any:
    """The ingest core as the daemon builds it, for commands that apply files by hand."""

    render = partial(bill_json, public_url=config.api.public_url, issuer=Issuer(config))
    return Ingest(None, None, render, REGISTRY.finders(config))


def cmd_key_create(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    if bool(args.biller) == bool(args.admin):
        raise CommandError("key create: give exactly one of --biller ID or --admin")
    if args.name is not None and not name_ok(args.name):
        raise CommandError(f"--name: must be 1-{NAME_MAX} characters, no control character")
    key_id, key = new_key()
    engine = create_db_engine(config.database.url, 1)
    now = utc_now()
    with engine.begin() as conn:
        insert_api_key(
            conn,
            key_id=key_id,
            key_hash=hash_key(key),
            biller_id=args.biller,
            is_admin=bool(args.admin),
            now=now,
            prefix=shown_prefix(key),
            name=args.name,
        )
        made = {
            "key_id": key_id,
            "biller_id": args.biller,
            "admin": bool(args.admin),
            "name": args.name,
        }
        record(
            conn, cli_actor(), "key.create", f"key:{key_id}", now, biller_id=args.biller, after=made
        )
    return {
        "key_id": key_id,
        "key": key,
        "biller_id": args.biller,
        "admin": bool(args.admin),
        "name": args.name,
        "note": "shown once: store it now",
    }


def cmd_import_cvs(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """Apply a CVS result file as if it had arrived in the inbox (all records or none)."""

    path = Path(args.file)
    data = path.read_bytes()
    try:
        parsed = parse_file(data, source=path.name, ceiling=barcode.MAX_AMOUNT)
    except FileErrors as e:
        raise CommandError(e.one_line()) from None
    now = utc_now()
    ingest = _ingest(config)
    events = parsed.events(name=path.name, received_at=now)
    engine = create_db_engine(config.database.url, 1)
    with engine.begin() as conn:
        summary = ingest.apply_all(
            conn, [Received(e, n) for n, e in enumerate(events, 2)], now, now.astimezone(JST).date()
        )
        after = {"records": len(events), "outcomes": summary}
        _audit_import(conn, "import.cvs", path.name, now, after)
    return {"file": str(path), "records": len(events), "outcomes": summary}


def _audit_import(
    conn: Connection,
    action: str,
    name: str,
    now: datetime,
    summary: dict[str, Any],
    biller_id: str | None = None,
) -> None:
    """A file applied by hand, in the audit log in the file's own transaction: its name and
    what it did (counts; never a record's content)."""
    after = {"file": name, **summary}
    record(conn, cli_actor(), action, f"file:{name}", now, biller_id=biller_id, after=after)


def cmd_certs_make(config: Config | None, args: argparse.Namespace) -> dict[str, Any]:

    try:
        paths = make_certs(Path(args.dir), now=utc_now(), overwrite=args.force)
    except FileExistsError as e:
        raise CommandError(f"certs make: {e.filename} already exists; --force overwrites") from None
    return {name: str(path) for name, path in sorted(paths.items())}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gateway-admin", description=__doc__.splitlines()[0])
    p.add_argument("-c", "--config", default="conf/gateway.toml", help="the gateway's TOML file")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the schema").set_defaults(fn=cmd_migrate)

    biller = sub.add_parser("biller", help="billers").add_subparsers(dest="action", required=True)
    bc = biller.add_parser("create", help="add a biller")
    bc.add_argument("--id", required=True)
    bc.add_argument("--name", required=True)
    bc.add_argument("--kana", required=True, help="half-width katakana, e.g. ｶﾞｽｺｳｼｬ")
    bc.add_argument("--channels", default="cvs,payeasy,transfer")
    bc.add_argument(
        "--payeasy-institution",
        default=None,
        help="the biller's own 収納機関番号 (default: mpn.institution_code)",
    )
    bc.add_argument(
        "--cvs-agency",
        default=None,
        help="its convenience-store agency, an [[cvs.agencies]] id (default: cvs.default_agency)",
    )
    bc.add_argument(
        "--cvs-code",
        default=None,
        help="the 5-digit code the agency assigned to the biller (agencies that assign one per"
        " biller)",
    )
    bc.set_defaults(fn=cmd_biller_create)
    add_biller_commands(biller)  # list, show, update, suspend, resume
    add_biller_set_command(biller)  # set: the biller's settings

    bz = biller.add_parser("zengin", help="make a biller a 委託者 of account transfers")
    bz.add_argument("--id", required=True)
    bz.add_argument("--consignor-code", required=True, help="委託者コード, 10 digits")
    bz.add_argument(
        "--account",
        required=True,
        help="the biller's own account BANK-BRANCH-TYPE-NUMBER, e.g. 0005-135-1-1234567",
    )
    bz.add_argument("--consignor-name", default=None, help="委託者名 (default: the biller's kana)")
    bz.set_defaults(fn=cmd_biller_zengin)
    add_payout_biller_commands(biller)  # payout-account, payout-accounts

    zengin = sub.add_parser("zengin", help="account transfer").add_subparsers(
        dest="action", required=True
    )
    zr = zengin.add_parser("request", help="write the request files of a debit date")
    zr.add_argument("--date", required=True, help="the debit date (引落日), YYYY-MM-DD")
    zr.add_argument("--biller", default=None, help="only this biller (default: every consignor)")
    zr.set_defaults(fn=cmd_zengin_request)

    key = sub.add_parser("key", help="API keys").add_subparsers(dest="action", required=True)
    kc = key.add_parser("create", help="issue an API key (printed once)")
    kc.add_argument("--biller")
    kc.add_argument("--admin", action="store_true")
    kc.add_argument("--name", default=None, help="what the key is for (at most 64 characters)")
    kc.set_defaults(fn=cmd_key_create)

    add_key_commands(key)  # list, revoke, rotate

    imp = sub.add_parser("import", help="load a file by hand").add_subparsers(
        dest="kind", required=True
    )
    ic = imp.add_parser("cvs", help="a CVS result file (spec/cvs.md §3)")
    ic.add_argument("file")
    ic.set_defaults(fn=cmd_import_cvs)
    iz = imp.add_parser("zengin-result", help="a Zengin result file (spec/zengin.md)")
    iz.add_argument("file")
    iz.set_defaults(fn=cmd_import_zengin_result)

    certs = sub.add_parser("certs", help="TLS").add_subparsers(dest="action", required=True)
    cm = certs.add_parser("make", help="write a development CA and certificates")
    cm.add_argument("dir")
    cm.add_argument("--force", action="store_true", help="overwrite existing files")
    cm.set_defaults(fn=cmd_certs_make, needs_config=False)

    add_settlement_commands(sub)
    add_payout_commands(sub)  # payout request, returned, files
    add_recon_commands(sub)  # recon import, show, open, resolve
    add_support_commands(sub)  # bill, refund, audit, status, backup
    add_slip_commands(sub)  # slips: printed payment slips
    add_user_commands(sub)  # user create, list, disable (the console's users)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = load_config(args.config) if getattr(args, "needs_config", True) else None
        result = args.fn(config, args)
    except (CommandError, GatewayError, FileExistsError, OSError) as e:
        print(f"gateway-admin: {e}", file=sys.stderr)
        return 1
    except SQLAlchemyError as e:
        reason = str(getattr(e, "orig", None) or e).splitlines()[0]
        print(f"gateway-admin: database error: {reason}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
