"""``gateway-admin user create | list | disable``: the console's users (docs/console.md).

``user create`` prints the one-time password (and, with ``--totp``, the ``otpauth://`` URI for
an authenticator app) once: the user changes the password at the first login. ``user disable``
ends the user's sessions at once. Each change is written to the audit log as ``cli:<unix
user>``.
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.app.admin.common import CommandError, utc_now
from gateway.billing.actors import cli_actor
from gateway.billing.console_access import LOGIN, Role
from gateway.billing.console_users import create_user, disable, users_json
from gateway.config import Config
from gateway.errors import InvalidRequest, NotFound
from gateway.infra.secretbox import SecretBox
from gateway.store import create_db_engine

_FLAGS = {"login": "--login", "role": "--role", "biller": "--biller", "totp": "--totp"}


def cmd_user_create(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    box = SecretBox(config.secret_key) if config.secret_key is not None else None
    engine = create_db_engine(config.database.url, 1)
    try:
        with engine.begin() as conn:
            made = create_user(
                conn,
                box,
                login=args.login,
                role=args.role,
                biller_id=args.biller,
                totp=args.totp,
                actor=cli_actor(),
                now=utc_now(),
            )
    except InvalidRequest as e:
        raise CommandError(
            "; ".join(f"{_FLAGS.get(f.field, f.field)}: {f.message}" for f in e.errors)
        ) from None
    result = {**made.user, "password": made.password}
    if made.totp_uri is not None:
        result["totp_uri"] = made.totp_uri
    result["note"] = (
        "shown once: give the password to the user, who must change it at the first login"
    )
    return result


def cmd_user_list(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    engine = create_db_engine(config.database.url, 1)
    with engine.begin() as conn:
        return {"users": users_json(conn, args.biller)}


def cmd_user_disable(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    engine = create_db_engine(config.database.url, 1)
    try:
        with engine.begin() as conn:
            return disable(conn, args.login, cli_actor(), utc_now())
    except NotFound:
        raise CommandError(f"--login: no console user {args.login}") from None


def add_commands(sub: Any) -> None:
    """``gateway-admin user …`` (``sub`` is the top level's subparsers object)."""
    user = sub.add_parser("user", help="console users").add_subparsers(dest="action", required=True)
    uc = user.add_parser("create", help="add a console user (prints a one-time password)")
    uc.add_argument("--login", required=True, help=f"the login, {LOGIN}")
    uc.add_argument("--role", required=True, choices=[r.value for r in Role])
    uc.add_argument("--biller", default=None, help="the biller of a biller_admin or biller_staff")
    uc.add_argument(
        "--totp", action="store_true", help="center roles: ask a TOTP code at each login"
    )
    uc.set_defaults(fn=cmd_user_create)

    ul = user.add_parser("list", help="list console users (never a password)")
    ul.add_argument("--biller", default=None, help="only this biller's users")
    ul.set_defaults(fn=cmd_user_list)

    ud = user.add_parser("disable", help="disable a console user and end its sessions now")
    ud.add_argument("--login", required=True)
    ud.set_defaults(fn=cmd_user_disable)
