"""The flags of ``gateway-admin biller set`` for a biller's fallback and notices
(gateway.notice_rules, docs/notices.md); only the flags given change anything:

- ``--fallback cvs,payeasy,redebit`` (``none``: no fallback): what a failed debit leads to;
- ``--fallback-due-days N``: a reissued bill's due date, N days after the reissue;
- ``--redebit-days N``: a 再振替 at most N days after the original due date;
- ``--page-notice``, ``--fallback-notice``, ``--reminder-notice``, ``--received-notice``
  ``email,sms`` (``none``): the media of each notice;
- ``--reminder-days N``: the reminder, N days before the due date.

Templates are set through the admin API (``PATCH /v1/billers/{id}``, ``notices.templates``).
The same as that ``PATCH`` with ``fallback`` and ``notices``.
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.notice_rules import Notice

#: The flag of each part, for the errors gateway.billing.billers.change_biller names.
FLAGS = {
    "fallback.ways": "--fallback",
    "fallback.due_days": "--fallback-due-days",
    "fallback.redebit_days": "--redebit-days",
    "notices.reminder_days": "--reminder-days",
    **{f"notices.{kind.value}": f"--{kind.value}-notice" for kind in Notice},
}


def _list(text: str) -> list[str]:
    """``a,b`` → ``[a, b]``; ``none`` → ``[]``."""
    if text.strip() == "none":
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


def notice_rules_change(args: argparse.Namespace) -> dict[str, Any]:
    """The ``fallback`` and ``notices`` change the flags ask for (empty: none given)."""
    fallback: dict[str, Any] = {}
    if args.fallback is not None:
        fallback["ways"] = _list(args.fallback)
    if args.fallback_due_days is not None:
        fallback["due_days"] = args.fallback_due_days
    if args.redebit_days is not None:
        fallback["redebit_days"] = args.redebit_days
    notices: dict[str, Any] = {}
    for kind in Notice:
        given = getattr(args, f"{kind.value}_notice")
        if given is not None:
            notices[kind.value] = _list(given)
    if args.reminder_days is not None:
        notices["reminder_days"] = args.reminder_days
    change: dict[str, Any] = {}
    if fallback:
        change["fallback"] = fallback
    if notices:
        change["notices"] = notices
    return change


def flag_of(field: str) -> str | None:
    """The flag of an error's field (``fallback.ways[1]`` → ``--fallback``), or None."""
    head = field.split("[", 1)[0]
    return FLAGS.get(head)


def add_flags(parser: Any) -> None:
    parser.add_argument(
        "--fallback",
        default=None,
        help="after a failed debit: cvs, payeasy and/or redebit, e.g. cvs,payeasy,redebit"
        " (none: no fallback)",
    )
    parser.add_argument(
        "--fallback-due-days", type=int, default=None, help="a fallback slip's due date, days"
    )
    parser.add_argument(
        "--redebit-days",
        type=int,
        default=None,
        help="a 再振替 falls at most this many days after the original due date",
    )
    for kind in Notice:
        parser.add_argument(
            f"--{kind.value}-notice",
            default=None,
            help=f"the media of the {kind.value} notice: email, sms, email,sms or none",
        )
    parser.add_argument(
        "--reminder-days", type=int, default=None, help="the reminder, days before the due date"
    )
