"""``gateway-admin slips``: printed slips (払込票) of a biller's bills into a PDF file, as the
API prints them (gateway.billing.slips): the bills of a bulk registration (``--batch``), or those
a filter names (``--due-from``, ``--due-to``, ``--customer``), at most 100 to a file; with more,
the JSON it prints gives the ``next_cursor`` to pass as ``--cursor`` for the next file.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from gateway.app.admin.common import CommandError, utc_now
from gateway.billing.slips import SlipFilter, batch_set, file_name, filtered_set, slip_file
from gateway.config import Config
from gateway.model import JST
from gateway.networks.issuer import Issuer
from gateway.render.slips import MAX_SLIPS
from gateway.store import create_db_engine


def _day(flag: str, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{flag}: {text!r} is not a date YYYY-MM-DD") from None


def cmd_slips(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    filtered = any(x is not None for x in (args.due_from, args.due_to, args.customer))
    if args.batch is not None and filtered:
        raise CommandError("slips: give --batch, or a filter (--due-from, --due-to, --customer)")
    if not 1 <= args.limit <= MAX_SLIPS:
        raise CommandError(f"--limit: must be from 1 to {MAX_SLIPS}")
    out = Path(args.output)
    if out.exists() and not args.force:
        raise CommandError(f"slips: {out} already exists; --force overwrites")
    today = utc_now().astimezone(JST).date()
    engine = create_db_engine(config.database.url, 1)
    with engine.connect() as conn:
        if args.batch is not None:
            found = batch_set(conn, args.biller, args.batch, today, args.cursor, args.limit)
            name = file_name(args.batch, args.cursor)
        else:
            which = SlipFilter(
                _day("--due-from", args.due_from), _day("--due-to", args.due_to), args.customer
            )
            found = filtered_set(conn, args.biller, which, today, args.cursor, args.limit)
            name = file_name("bills", args.cursor)
    made = slip_file(found, name, Issuer.human_readable)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(made.pdf)
    tmp.replace(out)
    return {
        "file": str(out),
        "slips": made.count,
        "bytes": len(made.pdf),
        "next_cursor": made.next_cursor,
    }


def add_commands(sub: Any) -> None:
    """``gateway-admin slips``."""
    p = sub.add_parser("slips", help="print a biller's payment slips (払込票) into a PDF")
    p.add_argument("--biller", required=True)
    p.add_argument("--batch", default=None, help="the bills of this bulk registration (bat_…)")
    p.add_argument("--due-from", default=None, help="bills due from this day, YYYY-MM-DD")
    p.add_argument("--due-to", default=None, help="bills due up to this day, YYYY-MM-DD")
    p.add_argument("--customer", default=None, help="the bills of this customer number")
    p.add_argument("--cursor", default=None, help="the next_cursor of the previous file")
    p.add_argument("--limit", type=int, default=MAX_SLIPS, help=f"slips (at most {MAX_SLIPS})")
    p.add_argument("--output", required=True, help="the PDF file to write")
    p.add_argument("--force", action="store_true", help="overwrite the output file")
    p.set_defaults(fn=cmd_slips)
