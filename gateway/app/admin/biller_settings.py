"""``gateway-admin biller set``: a biller's settings, one flag per setting; only the flags given
change anything, and every change is written to the audit log as ``cli:<unix user>``.

Its chain rules (gateway.chain_rules, docs/networks/cvs.md "Chain rules"):

- ``--chains 010,020,030``: the chains it accepts (``all``: every chain);
- ``--chain-due-days 010=60,020=90``: each chain's longest due window in days (``none``: no
  window);
- ``--stamp-chains 020``: the chains that stamp every receipt of ¥50,000 or more whatever the
  tax (``none``: no such chain).

Its fallback after a failed debit and its notices (``--fallback cvs,payeasy,redebit`` and the
others): gateway.app.admin.notice_settings.

The same as ``PATCH /v1/billers/{biller_id}`` with ``chain_rules`` (gateway.billing.billers.
change_biller), on a connection of its own.
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.app.admin.common import CommandError, utc_now
from gateway.app.admin.notice_settings import add_flags as add_notice_flags
from gateway.app.admin.notice_settings import flag_of as notice_flag
from gateway.app.admin.notice_settings import notice_rules_change
from gateway.billing.actors import cli_actor
from gateway.billing.billers import biller_json, change_biller
from gateway.config import Config
from gateway.errors import InvalidRequest
from gateway.store import create_db_engine

#: The flag that sets each part of the chain rules, for the errors change_biller names.
_FLAGS = {
    "accepted": "--chains",
    "max_due_days": "--chain-due-days",
    "stamp_all": "--stamp-chains",
}


def _list(text: str, none: str) -> list[str] | None:
    """``a,b`` → ``[a, b]``; the word ``none`` (``all`` for the accepted chains) → None."""
    if text.strip() == none:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _windows(text: str) -> dict[str, Any]:
    if text.strip() == "none":
        return {}
    found: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        chain, eq, days = part.partition("=")
        if not eq or not days.strip().isdigit():
            raise CommandError(
                f"--chain-due-days: {part!r} must be CHAIN=DAYS, e.g. 010=60 (none: no window)"
            )
        found[chain.strip()] = int(days)
    return found


def chain_rules_change(args: argparse.Namespace) -> dict[str, Any]:
    """The ``chain_rules`` change the flags ask for (empty: none given)."""
    change: dict[str, Any] = {}
    if args.chains is not None:
        change["accepted"] = _list(args.chains, "all")
    if args.chain_due_days is not None:
        change["max_due_days"] = _windows(args.chain_due_days)
    if args.stamp_chains is not None:
        change["stamp_all"] = _list(args.stamp_chains, "none") or []
    return change


def _flag(field: str) -> str:
    """The flag of an error's field (``chain_rules.max_due_days.010`` → ``--chain-due-days``)."""
    if notice_flag(field) is not None:  # fallback.… and notices.… (notice_settings)
        return str(notice_flag(field))
    parts = field.split(".")
    if len(parts) > 1 and parts[0] == "chain_rules":
        part = parts[1].split("[", 1)[0]
        return _FLAGS.get(part, "--" + part.replace("_", "-"))
    return "--" + field.replace("_", "-")


def cmd_biller_set(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    rules = chain_rules_change(args)
    notices = notice_rules_change(args)  # --fallback and the notice flags (notice_settings)
    if not rules and not notices:
        raise CommandError(
            "biller set: give at least one of --chains, --chain-due-days, --stamp-chains,"
            " --fallback and the notice flags (gateway-admin biller set --help)"
        )
    engine = create_db_engine(config.database.url, 1)
    try:
        with engine.begin() as conn:
            biller = change_biller(
                conn,
                config,
                cli_actor(),
                args.id,
                utc_now(),
                chain_rules=rules or None,
                notice_rules=notices or None,
            )
    except InvalidRequest as e:
        raise CommandError(
            "; ".join(f"{_flag(x.field)}: {x.field}: {x.message}" for x in e.errors)
        ) from None
    return biller_json(config, biller)


def add_set_command(biller: Any) -> None:
    """``gateway-admin biller set``."""
    bs = biller.add_parser(
        "set", help="change a biller's settings (chain rules, fallback, notices)"
    )
    bs.add_argument("--id", required=True)
    bs.add_argument(
        "--chains",
        default=None,
        help="the chains it accepts, e.g. 010,020,030 (all: every chain)",
    )
    bs.add_argument(
        "--chain-due-days",
        default=None,
        help="each chain's longest due window in days, e.g. 010=60,020=90 (none: no window)",
    )
    bs.add_argument(
        "--stamp-chains",
        default=None,
        help="the chains that stamp every receipt of ¥50,000 or more whatever the tax, e.g."
        " 020 (none: no such chain)",
    )
    add_notice_flags(bs)  # --fallback, the notices (gateway.app.admin.notice_settings)
    bs.set_defaults(fn=cmd_biller_set)
