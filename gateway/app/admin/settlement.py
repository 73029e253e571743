"""``gateway-admin`` commands of contracts, settlements, statements and the MPN day close.

``contract set``/``contract show``, ``settle``, ``statement``, ``report daily``, ``mpn days``
(spec/operator.md; docs/settlement.md). Like every command they run store functions directly,
print JSON on success and exit 1 with a one-line reason on failure.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any

from gateway.app.admin.common import CommandError, utc_now
from gateway.billing.actors import cli_actor
from gateway.config import Config
from gateway.infra import safe_files
from gateway.mappers.cvs.barcode import STAMP_DIGIT
from gateway.model import business_date
from gateway.money import statements
from gateway.money.fees import parse_plan
from gateway.money.settlement import (
    encoding_of,
    put_fee_plan,
    settle_audited,
    settlement_json,
)
from gateway.store import create_db_engine
from gateway.store.billers import get_biller
from gateway.store.mpn import day_close_report
from gateway.store.settlements import (
    billers_with_plans,
    daily_collections,
    get_settlement,
    list_plans,
    settled_payments,
    settled_through,
    settlement_biller,
)


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option}: {text!r} is not a date YYYY-MM-DD") from None


def _today() -> date:

    return business_date(utc_now())


def cmd_contract_set(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """Add (or change, until it is settled) a fee plan version from a JSON file."""

    path = Path(args.plan)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CommandError(f"--plan: {path} is not a JSON document: {e}") from None
    plan = parse_plan(
        body, _day(args.effective_from, "--effective-from") if args.effective_from else None
    )
    engine = create_db_engine(config.database.url, 1)
    with engine.begin() as conn:
        stored, created = put_fee_plan(conn, cli_actor(), args.biller, plan, utc_now())
    return {"biller_id": args.biller, "created": created, "plan": stored.document()}


def cmd_contract_show(config: Config, args: argparse.Namespace) -> dict[str, Any]:

    engine = create_db_engine(config.database.url, 1)
    with engine.connect() as conn:
        get_biller(conn, args.biller)
        plans = list_plans(conn, args.biller)
        through = settled_through(conn, args.biller)
    return {
        "biller_id": args.biller,
        "plans": [p.document() for p in plans],
        "settled_through": through.isoformat() if through else None,
    }


def cmd_settle(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """Settle every closed period now (what the daemon's job does every interval)."""

    today = _today()
    day = _day(args.date, "--date") if args.date else today
    if day > today:
        raise CommandError(
            f"--date: {day} is in the future: a period is settled once it has closed"
        )
    engine = create_db_engine(config.database.url, 1)
    with engine.connect() as conn:
        billers = [args.biller] if args.biller else billers_with_plans(conn)
    made: list[dict[str, Any]] = []
    for biller_id in billers:
        while True:
            with engine.begin() as conn:  # audited in the settlement's own transaction
                settlement = settle_audited(conn, cli_actor(), biller_id, day, utc_now())
            if settlement is None:
                break
            made.append({"biller_id": biller_id, **settlement_json(settlement, lines=False)})
    return {"as_of": day.isoformat(), "created": made}


def cmd_statement(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """Write a settlement's statement (CSV, PDF, or the CSV of its payments) to a file."""

    encoding = encoding_of(args.encoding)
    out = Path(args.output)
    engine = create_db_engine(config.database.url, 1)
    with engine.connect() as conn:
        biller_id = settlement_biller(conn, args.settlement)
        settlement = get_settlement(conn, biller_id or "", args.settlement)
        if settlement is None or biller_id is None:
            raise CommandError(f"--settlement: {args.settlement} not found")
        name = get_biller(conn, biller_id).name
        if args.format == "payments":
            body = statements.payments_csv(
                settled_payments(conn, args.settlement, stamp_digit=STAMP_DIGIT), encoding
            )
        elif args.format == "pdf":
            daily = daily_collections(
                conn, biller_id, settlement.period_start, settlement.period_end
            )
            body = statements.statement_pdf(settlement, name, daily)
        else:
            body = statements.statement_csv(settlement, name, encoding)
    safe_files.write_atomically(out, body)  # never through a link at the name or its temp name
    return {"settlement_id": args.settlement, "file": str(out), "bytes": len(body)}


def cmd_report_daily(config: Config, args: argparse.Namespace) -> dict[str, Any]:

    first, last = _day(args.from_, "--from"), _day(args.to, "--to")
    if last < first:
        raise CommandError("--to: must not be before --from")
    engine = create_db_engine(config.database.url, 1)
    with engine.connect() as conn:
        get_biller(conn, args.biller)
        rows = daily_collections(conn, args.biller, first, last)
    body = statements.daily_report_csv(rows, encoding_of(args.encoding))
    safe_files.write_atomically(Path(args.output), body)
    return {"biller_id": args.biller, "file": args.output, "rows": len(rows)}


def cmd_mpn_days(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """Each 閉局 next to the ledger's own totals for that day; mismatches flagged."""

    first, last = _day(args.from_, "--from"), _day(args.to, "--to")
    engine = create_db_engine(config.database.url, 1)
    with engine.connect() as conn:
        rows = day_close_report(conn, first, last)
    keys = ("payments_count", "payments_sum", "cancels_count", "cancels_sum")

    def counters(values: Any) -> dict[str, int] | None:
        return None if values is None else dict(zip(keys, values, strict=True))

    return {
        "days": [
            {
                "business_date": r["business_date"].isoformat(),  # type: ignore[attr-defined]
                "center": counters(r["center"]),
                "at_close": counters(r["at_close"]),
                "ledger": counters(r["ledger"]),
                "mismatch": r["mismatch"],
            }
            for r in rows
        ],
        "mismatches": sum(1 for r in rows if r["mismatch"]),
    }


def add_commands(sub: Any) -> None:
    contract = sub.add_parser("contract", help="billers' fee plans").add_subparsers(
        dest="action", required=True
    )
    cs = contract.add_parser("set", help="add or change a fee plan version (JSON file)")
    cs.add_argument("--biller", required=True)
    cs.add_argument("--plan", required=True, help="the plan's JSON document (docs/settlement.md)")
    cs.add_argument("--effective-from", default=None, help="YYYY-MM-DD (default: the file's)")
    cs.set_defaults(fn=cmd_contract_set)
    cw = contract.add_parser("show", help="a biller's fee plans")
    cw.add_argument("--biller", required=True)
    cw.set_defaults(fn=cmd_contract_show)

    st = sub.add_parser("settle", help="settle every closed period now")
    st.add_argument("--biller", default=None, help="only this biller (default: every contract)")
    st.add_argument("--date", default=None, help="as of this JST day (default: today)")
    st.set_defaults(fn=cmd_settle)

    sm = sub.add_parser("statement", help="write a settlement's statement to a file")
    sm.add_argument("--settlement", required=True)
    sm.add_argument("--format", choices=("csv", "pdf", "payments"), default="pdf")
    sm.add_argument("--encoding", default="utf-8", help="utf-8 (with BOM) or shift_jis")
    sm.add_argument("--output", required=True)
    sm.set_defaults(fn=cmd_statement)

    report = sub.add_parser("report", help="reports").add_subparsers(dest="action", required=True)
    rd = report.add_parser("daily", help="collections per day, channel and chain (CSV)")
    rd.add_argument("--biller", required=True)
    rd.add_argument("--from", dest="from_", required=True)
    rd.add_argument("--to", required=True)
    rd.add_argument("--encoding", default="utf-8")
    rd.add_argument("--output", required=True)
    rd.set_defaults(fn=cmd_report_daily)

    mpn = sub.add_parser("mpn", help="Pay-easy").add_subparsers(dest="action", required=True)
    md = mpn.add_parser("days", help="閉局 counters next to the ledger's, per business day")
    md.add_argument("--from", dest="from_", required=True)
    md.add_argument("--to", required=True)
    md.set_defaults(fn=cmd_mpn_days)
