"""``gateway-admin`` commands of the support desk (docs/operations.md, "The support desk"):

``bill find`` / ``bill show``, ``refund list`` / ``refund resolve``, ``biller list`` / ``show`` /
``update`` / ``suspend`` / ``resume``, ``audit list``, ``status`` and ``backup``. They run the
same functions as the admin API (gateway.billing.support, gateway.billing.billers) on a
connection of their own; every action is written to the audit log as ``cli:<unix user>``, in
the transaction of the action.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from gateway.app.admin.common import CommandError, utc_now
from gateway.billing.actors import cli_actor
from gateway.billing.billers import REASON_MAX, biller_json, change_biller, set_suspended
from gateway.billing.bills import bill_json
from gateway.billing.inboxes import inbox_states
from gateway.billing.payments import NOTE_MAX, RESOLUTIONS
from gateway.billing.support import (
    MAX_FOUND,
    Q_MAX,
    audit_page,
    bill_story,
    find_bills,
    list_cases,
    resolve_case,
)
from gateway.config import Config
from gateway.model import Channel, RefundStatus
from gateway.networks.issuer import Issuer
from gateway.store import create_db_engine
from gateway.store.billers import get_biller, list_api_keys, list_billers
from gateway.store.migrate import current_revision, head_revision
from gateway.store.support import backlogs


def _render(config: Config) -> Any:
    return partial(bill_json, public_url=config.api.public_url, issuer=Issuer(config))


def _engine(config: Config) -> Any:
    return create_db_engine(config.database.url, 1)


def cmd_bill_find(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    q = args.q.strip()
    if not 1 <= len(q) <= Q_MAX:
        raise CommandError(f"bill find: give an identifier of 1-{Q_MAX} characters")
    with _engine(config).connect() as conn:
        return find_bills(conn, q, _render(config), min(args.limit, MAX_FOUND))


def cmd_bill_show(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    with _engine(config).connect() as conn:
        return bill_story(conn, args.biller, args.bill, _render(config))


def cmd_refund_list(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    status = RefundStatus(args.status) if args.status else None
    with _engine(config).connect() as conn:
        return list_cases(
            conn, biller_id=args.biller, status=status, cursor=args.cursor, limit=args.limit
        )


def cmd_refund_resolve(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    if args.note is not None and len(args.note) > NOTE_MAX:
        raise CommandError(f"--note: at most {NOTE_MAX} characters")
    with _engine(config).begin() as conn:
        return resolve_case(conn, cli_actor(), args.case_id, args.resolution, args.note, utc_now())


def cmd_biller_list(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    with _engine(config).connect() as conn:
        return {"billers": [biller_json(config, b) for b in list_billers(conn)]}


def cmd_biller_show(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    now = utc_now()
    with _engine(config).connect() as conn:
        biller = get_biller(conn, args.id)
        keys = list_api_keys(conn, now, args.id)
    return {**biller_json(config, biller), "keys": keys}


def _channels(text: str | None) -> frozenset[Channel] | None:
    if text is None:
        return None
    try:
        return frozenset(Channel(c.strip()) for c in text.split(",") if c.strip())
    except ValueError:
        raise CommandError(f"--channels: {text!r} must list cvs, payeasy, transfer") from None


def cmd_biller_update(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    if args.name is None and args.kana is None and args.channels is None:
        raise CommandError("biller update: give at least one of --name, --kana, --channels")
    with _engine(config).begin() as conn:
        biller = change_biller(
            conn,
            config,
            cli_actor(),
            args.id,
            utc_now(),
            name=args.name,
            kana=args.kana,
            channels=_channels(args.channels),
        )
    return biller_json(config, biller)


def _suspend(config: Config, args: argparse.Namespace, suspend: bool) -> dict[str, Any]:
    if args.reason is not None and len(args.reason) > REASON_MAX:
        raise CommandError(f"--reason: at most {REASON_MAX} characters")
    with _engine(config).begin() as conn:
        biller = set_suspended(conn, config, cli_actor(), args.id, suspend, args.reason, utc_now())
    return {
        **biller_json(config, biller),
        "note": f"a running daemon applies it within api.auth_cache_seconds "
        f"({config.api.auth_cache_seconds:g} s)",
    }


def cmd_biller_suspend(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    return _suspend(config, args, True)


def cmd_biller_resume(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    return _suspend(config, args, False)


def cmd_audit_list(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    with _engine(config).connect() as conn:
        return audit_page(
            conn,
            biller_id=args.biller,
            target=args.target,
            action=args.action_name,
            cursor=args.cursor,
            limit=args.limit,
        )


def _readyz(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/readyz", timeout=5) as resp:
            return {"status": resp.status, **json.loads(resp.read())}
    except urllib.error.HTTPError as e:  # 503: not ready, with its reasons
        try:
            return {"status": e.code, **json.loads(e.read())}
        except ValueError:
            return {"status": e.code}
    except (OSError, ValueError) as e:
        return {"status": None, "error": f"{type(e).__name__}: {e}"[:200]}


def cmd_status(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """The store (reachable, schema current), what is waiting, the watched folders, and with
    ``--url`` the daemon's own /readyz (its links)."""
    result: dict[str, Any] = {}
    now = utc_now()
    try:
        with _engine(config).connect() as conn:
            current, head = current_revision(conn), head_revision()
            result["store"] = {
                "state": "ok" if current == head else "schema is not current",
                "revision": current,
                "head": head,
            }
            if current == head:
                result["backlogs"] = backlogs(conn, now)
    except Exception as e:  # the status says what it could not reach
        result["store"] = {"state": f"unavailable: {type(e).__name__}"}
    result["inboxes"] = inbox_states(config)
    if args.url is not None:
        result["daemon"] = _readyz(args.url)
    return result


def cmd_backup(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """A consistent copy of a SQLite database, taken while the daemon runs (SQLite's online
    backup API). PostgreSQL: pg_dump (docs/operations.md, "Backups")."""
    url = make_url(config.database.url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise CommandError(
            "backup: the database is not a SQLite file; back PostgreSQL up with pg_dump"
            " (docs/operations.md, Backups)"
        )
    out = Path(args.file)
    if out.exists() and not args.force:
        raise CommandError(f"backup: {out} already exists; --force overwrites")
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{url.database}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(tmp)
        try:
            source.backup(target)
            ok = target.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            target.close()
    finally:
        source.close()
    if ok != "ok":
        tmp.unlink(missing_ok=True)
        raise CommandError(f"backup: the copy failed its integrity check: {ok}")
    tmp.replace(out)
    return {"database": url.database, "file": str(out), "bytes": out.stat().st_size}


def _limit(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be an integer from 1 to 1000")
    return value


def add_biller_commands(biller: Any) -> None:
    """``gateway-admin biller list | show | update | suspend | resume``."""
    biller.add_parser("list", help="every biller").set_defaults(fn=cmd_biller_list)
    bs = biller.add_parser("show", help="a biller and its API keys")
    bs.add_argument("--id", required=True)
    bs.set_defaults(fn=cmd_biller_show)
    bu = biller.add_parser("update", help="change a biller's name, kana or channels")
    bu.add_argument("--id", required=True)
    bu.add_argument("--name", default=None)
    bu.add_argument("--kana", default=None)
    bu.add_argument("--channels", default=None, help="e.g. cvs,payeasy")
    bu.set_defaults(fn=cmd_biller_update)
    for action, fn, what in (
        ("suspend", cmd_biller_suspend, "refuse its keys and new bills (payments still land)"),
        ("resume", cmd_biller_resume, "undo a suspension"),
    ):
        p = biller.add_parser(action, help=what)
        p.add_argument("--id", required=True)
        p.add_argument("--reason", default=None, help="kept in the audit log")
        p.set_defaults(fn=fn)


def add_commands(sub: Any) -> None:
    """``bill``, ``refund``, ``audit``, ``status`` and ``backup``."""
    bill = sub.add_parser("bill", help="find and read bills (every biller)").add_subparsers(
        dest="action", required=True
    )
    bf = bill.add_parser("find", help="bills named by any identifier")
    bf.add_argument(
        "q",
        help="bill number, barcode, bill key, お客様番号, customer number,"
        " payment id, store or bank code",
    )
    bf.add_argument("--limit", type=_limit, default=MAX_FOUND)
    bf.set_defaults(fn=cmd_bill_find)
    bw = bill.add_parser("show", help="a bill's whole story")
    bw.add_argument("--biller", required=True)
    bw.add_argument("--bill", required=True)
    bw.set_defaults(fn=cmd_bill_show)

    refund = sub.add_parser("refund", help="refund cases (every biller)").add_subparsers(
        dest="action", required=True
    )
    rl = refund.add_parser("list", help="refund cases, oldest first")
    rl.add_argument("--biller", default=None)
    rl.add_argument("--status", choices=[s.value for s in RefundStatus], default=None)
    rl.add_argument("--limit", type=_limit, default=100)
    rl.add_argument("--cursor", default=None)
    rl.set_defaults(fn=cmd_refund_list)
    rr = refund.add_parser("resolve", help="resolve a refund case")
    rr.add_argument("case_id")
    rr.add_argument("--resolution", required=True, choices=RESOLUTIONS)
    rr.add_argument("--note", default=None)
    rr.set_defaults(fn=cmd_refund_resolve)

    audit = sub.add_parser("audit", help="the audit log of operator actions").add_subparsers(
        dest="action", required=True
    )
    al = audit.add_parser("list", help="newest first")
    al.add_argument("--biller", default=None)
    al.add_argument("--target", default=None, help="e.g. biller:gas, refund_case:rc_…")
    al.add_argument("--action", dest="action_name", default=None, help="e.g. biller.suspend")
    al.add_argument("--limit", type=_limit, default=50)
    al.add_argument("--cursor", default=None)
    al.set_defaults(fn=cmd_audit_list)

    st = sub.add_parser("status", help="store, backlogs, watched folders (and the daemon)")
    st.add_argument(
        "--url", default=None, help="the daemon's metrics listener, e.g. http://127.0.0.1:9100"
    )
    st.set_defaults(fn=cmd_status)

    bk = sub.add_parser("backup", help="copy a SQLite database while the daemon runs")
    bk.add_argument("file")
    bk.add_argument("--force", action="store_true", help="overwrite FILE")
    bk.set_defaults(fn=cmd_backup)
