"""``gateway-admin key list | revoke | rotate``: the operator's side of API keys.

``key create`` stays in gateway.app.admin.commands. None of these commands ever prints a key's
hash, and only ``rotate`` prints a key (the new one, once). A revocation reaches a running
daemon within ``api.auth_cache_seconds`` (it caches keys it has checked for that long, at most
a minute).
"""

from __future__ import annotations

import argparse
import re
from datetime import timedelta
from typing import Any

from gateway.app.admin.common import CommandError, utc_now
from gateway.billing.actors import cli_actor
from gateway.billing.keys import hash_key, new_key, shown_prefix
from gateway.config import Config
from gateway.store import create_db_engine
from gateway.store.audit import record
from gateway.store.billers import (
    insert_api_key,
    list_api_keys,
    revoke_api_key,
    revoke_biller_keys,
)

#: The longest rotation grace: old keys must not linger for months.
MAX_GRACE = timedelta(days=30)
DEFAULT_GRACE = "24h"
_DURATION = re.compile(r"([0-9]{1,7})([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_KEY_ID = re.compile(r"key_[0-9a-f]{16}")


def parse_grace(text: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d`` or a number of seconds; 0 to 30 days."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise CommandError(f"--grace: {text!r} is not a duration such as 90s, 15m, 24h or 7d")
    grace = timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2)])
    if grace > MAX_GRACE:
        raise CommandError(f"--grace: {text!r} is longer than {MAX_GRACE.days} days")
    return grace


def cmd_key_list(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    engine = create_db_engine(config.database.url, 1)
    with engine.begin() as conn:
        keys = list_api_keys(conn, utc_now(), args.biller)
    return {"keys": keys}


def cmd_key_revoke(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    if args.key_id is not None:
        if args.biller is not None or args.all:
            raise CommandError("key revoke: give a KEY_ID, or --biller ID --all, not both")
        if not _KEY_ID.fullmatch(args.key_id):
            raise CommandError(
                f"key revoke: {args.key_id!r} is not a key id (key_ and 16 hex digits)"
            )
    elif args.biller is None or not args.all:
        raise CommandError(
            "key revoke: give a KEY_ID, or --biller ID --all for every key of a biller"
        )
    now = utc_now()
    engine = create_db_engine(config.database.url, 1)
    with engine.begin() as conn:
        if args.key_id is not None:
            revoked = [revoke_api_key(conn, args.key_id, now)]
        else:
            biller = str(args.biller)  # checked above
            revoked = revoke_biller_keys(conn, biller, now, now)
        for key in revoked:
            record(
                conn,
                cli_actor(),
                "key.revoke",
                f"key:{key['key_id']}",
                now,
                biller_id=key["biller_id"],
                after=key,
            )
    return {
        "revoked": revoked,
        "note": f"a running daemon refuses them within api.auth_cache_seconds "
        f"({config.api.auth_cache_seconds:g} s)",
    }


def cmd_key_rotate(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    """A new key for the biller; its other keys stop working when the grace ends."""
    grace = parse_grace(args.grace)
    now = utc_now()
    ends = now + grace
    key_id, key = new_key()
    engine = create_db_engine(config.database.url, 1)
    with engine.begin() as conn:
        insert_api_key(
            conn,
            key_id=key_id,
            key_hash=hash_key(key),
            biller_id=args.biller,
            is_admin=False,
            now=now,
            prefix=shown_prefix(key),
        )
        old = revoke_biller_keys(conn, args.biller, ends, now, keep=key_id)
        record(
            conn,
            cli_actor(),
            "key.rotate",
            f"biller:{args.biller}",
            now,
            biller_id=args.biller,
            after={"key_id": key_id, "old_keys": old},
        )
    return {
        "key_id": key_id,
        "key": key,
        "biller_id": args.biller,
        "old_keys": old,
        "old_keys_stop_at": ends.isoformat(),
        "note": "shown once: store it now",
    }


def add_commands(key: Any) -> None:
    """The subcommands of ``gateway-admin key`` (``key`` is its subparsers object)."""
    kl = key.add_parser("list", help="list API keys (never the keys themselves)")
    kl.add_argument("--biller", default=None, help="only this biller's keys")
    kl.set_defaults(fn=cmd_key_list)

    kr = key.add_parser("revoke", help="revoke a key now, or every key of a biller")
    kr.add_argument("key_id", nargs="?", default=None, metavar="KEY_ID")
    kr.add_argument("--biller", default=None)
    kr.add_argument("--all", action="store_true", help="with --biller: every key of the biller")
    kr.set_defaults(fn=cmd_key_revoke)

    ko = key.add_parser(
        "rotate", help="issue a new key for a biller; its old keys stop after --grace"
    )
    ko.add_argument("--biller", required=True)
    ko.add_argument(
        "--grace",
        default=DEFAULT_GRACE,
        help=f"how long the old keys keep working: 90s, 15m, 24h, 7d (default {DEFAULT_GRACE})",
    )
    ko.set_defaults(fn=cmd_key_rotate)
