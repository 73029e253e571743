"""``gateway-admin recon``: the networks' money reconciled (docs/settlement.md, "Reconciliation").

``recon import FILE`` (a Zengin 入出金取引明細 or 振込入金通知 file, or a CSV export of one: whole
or not at all, every bad line named), ``recon show --date D`` (a transfer date reconciled now),
``recon open`` (every open item) and ``recon resolve --item ID --note TEXT`` (the use case
``POST /v1/admin/reconciliation/items/{item_id}/resolve`` runs too). Like every command
they run store functions directly, print JSON on success and exit 1 with a one-line reason.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from gateway.app.admin.common import CommandError, utc_now
from gateway.billing.actors import cli_actor
from gateway.config import Config
from gateway.errors import Conflict, FileErrors, InvalidRequest, NotFound
from gateway.money.reconciliation import (
    day_view,
    import_statement,
    item_json,
    resolve_reconciliation_item,
)
from gateway.recon_model import ItemStatus
from gateway.store import create_db_engine
from gateway.store.reconciliation import list_items


def cmd_import(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    path = Path(args.file)
    data = path.read_bytes()
    engine = create_db_engine(config.database.url, 1)
    try:
        with engine.begin() as conn:
            return import_statement(conn, config, data, path.name, utc_now(), cli_actor())
    except FileErrors as e:
        raise CommandError(e.one_line()) from None


def cmd_show(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        raise CommandError(f"--date: {args.date!r} is not a date YYYY-MM-DD") from None
    engine = create_db_engine(config.database.url, 1)
    with engine.begin() as conn:
        return day_view(conn, config, day, utc_now())


def cmd_open(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    engine = create_db_engine(config.database.url, 1)
    with engine.connect() as conn:
        items = list_items(conn, status=ItemStatus.OPEN)
    return {"items": [item_json(i) for i in items], "count": len(items)}


def cmd_resolve(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    engine = create_db_engine(config.database.url, 1)
    try:
        with engine.begin() as conn:
            found = resolve_reconciliation_item(conn, args.item, args.note, cli_actor(), utc_now())
    except InvalidRequest as e:
        raise CommandError("; ".join(f"--{f.field}: {f.message}" for f in e.errors)) from None
    except NotFound:
        raise CommandError(f"--item: {args.item} not found") from None
    except Conflict as e:
        raise CommandError(f"--item: {e.detail}") from None
    return item_json(found)


def add_commands(sub: Any) -> None:
    recon = sub.add_parser("recon", help="the networks' money reconciled").add_subparsers(
        dest="action", required=True
    )
    ri = recon.add_parser("import", help="import the center's bank statement (Zengin or CSV)")
    ri.add_argument("file")
    ri.set_defaults(fn=cmd_import)
    rs = recon.add_parser("show", help="a transfer date: expected, received, items")
    rs.add_argument("--date", required=True, help="the transfer date, YYYY-MM-DD")
    rs.set_defaults(fn=cmd_show)
    ro = recon.add_parser("open", help="every open reconciliation item")
    ro.set_defaults(fn=cmd_open)
    rr = recon.add_parser("resolve", help="resolve an item, saying what was done")
    rr.add_argument("--item", required=True)
    rr.add_argument("--note", required=True)
    rr.set_defaults(fn=cmd_resolve)
