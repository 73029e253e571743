"""The console's rules of who may do what (docs/console.md): pure, no I/O, no clock.

- **Roles.** The center's: ``operator`` (everything), ``support`` (reads across billers,
  reissues, resolves refund cases), ``finance`` (settlements, fee plans, statements). A biller's:
  ``biller_admin`` (its users, keys, webhooks, and what its staff does) and ``biller_staff``
  (its bills and payments). A center role has no biller; a biller role has exactly one.
- **Screens.** Each screen names the :class:`Permission` it needs; :data:`GRANTS` says which
  roles hold it. A later screen adds its permission here and nowhere else.
- **Scope.** A center user sees every biller; a biller's user only its own: another biller's
  bill answers as an unknown one (404), by URL or by search (:func:`biller_scope`), and an
  export or a statement holds its own biller's rows only. A form that acts for a biller (a new
  bill, an upload) acts for the user's own biller, or for the one a center user chose
  (:func:`acting_biller`).
- **Who acts on what.** ``support`` reissues bills and resolves refund cases but neither
  registers nor cancels bills; ``finance`` sees settlements, statements, payments and refund
  cases but no bill; biller users register, reissue and cancel their bills, see their
  payments, refund cases and settlements, and resolve no refund case (the center's desk does).
- **The center's screens**: every center role reads the billers (and their fee plans and
  委託者 data), the network and the audit log; only ``operator`` changes a biller (creates it,
  its channels, suspends and resumes it, its 委託者 data); ``finance`` and ``operator`` set
  fee plans; ``operator`` and ``support`` search bills across billers. A biller's user has
  none of them (404, as an unknown page).
- **A biller's administration**: its webhook endpoints, API keys and users are its
  ``biller_admin``'s, and the center ``operator``'s for the biller it chooses; another role is
  refused these screens (403: they exist, not for it). The console makes a biller's users only
  (:data:`MANAGED_ROLES`), of the acting biller; nobody disables himself there
  (:func:`may_disable`).
- **Logins** are 2-32 lowercase letters, digits, ``.``, ``_`` or ``-`` (:data:`LOGIN`).
- **Passwords** (:func:`password_problems`): 12-128 characters, not the login, not only one
  character repeated. A one-time password is 20 random characters and must be changed at the
  first login.
- **Sessions** (:func:`session_end`): a session ends after ``idle`` without a request or
  ``absolute`` after the login, whichever comes first, and at once when its user is disabled.
- **Failed logins** (:func:`after_failure`): ``max_failures`` wrong passwords in a row lock the
  login for ``lockout``; a successful login clears the count.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Role(StrEnum):
    OPERATOR = "operator"
    SUPPORT = "support"
    FINANCE = "finance"
    BILLER_ADMIN = "biller_admin"
    BILLER_STAFF = "biller_staff"


CENTER_ROLES = frozenset({Role.OPERATOR, Role.SUPPORT, Role.FINANCE})
BILLER_ROLES = frozenset({Role.BILLER_ADMIN, Role.BILLER_STAFF})

#: The roles as the console names them.
ROLE_LABELS = {
    Role.OPERATOR: "センター運用者",
    Role.SUPPORT: "センターサポート",
    Role.FINANCE: "センター経理",
    Role.BILLER_ADMIN: "収納企業管理者",
    Role.BILLER_STAFF: "収納企業担当者",
}


class Permission(StrEnum):
    DASHBOARD = "dashboard"  # today's and this month's collections by channel
    BILLS = "bills"  # the bills list, search and a bill's page
    NEW_BILL = "new_bill"  # the new-bill form and the bulk upload
    REISSUE = "reissue"  # a bill's reissue (a new slip, amount or due date)
    CANCEL = "cancel"  # a bill's cancellation
    PAYMENTS = "payments"  # the payments list and its CSV export
    REFUND_CASES = "refund_cases"  # the refund cases, read
    RESOLVE_CASES = "resolve_cases"  # a refund case resolved: refunded, or not refunded
    SETTLEMENTS = "settlements"  # settlements and their statements (PDF, CSV)
    USERS = "users"  # console users (a biller_admin: its biller's)
    WEBHOOKS = "webhooks"  # a biller's webhook endpoints, their delivery log and redelivery
    API_KEYS = "api_keys"  # a biller's API keys: listed (never the key), created, revoked
    BILLERS = "billers"  # the center's: billers, a biller's page (channels, fee plans, 委託者)
    EDIT_BILLERS = "edit_billers"  # a biller created, its channels, suspended, its 委託者
    FEE_PLANS = "fee_plans"  # a biller's fee plan set
    SUPPORT_SEARCH = "support_search"  # bills found across billers by any identifier
    NETWORK = "network"  # the links, files received and rejected, MPN day closes
    AUDIT = "audit"  # the audit log


_EVERYONE = frozenset(Role)
_BILLERS = frozenset({Role.OPERATOR, Role.BILLER_ADMIN, Role.BILLER_STAFF})

GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.DASHBOARD: _EVERYONE,
    Permission.BILLS: _BILLERS | {Role.SUPPORT},
    Permission.NEW_BILL: _BILLERS,
    Permission.REISSUE: _BILLERS | {Role.SUPPORT},
    Permission.CANCEL: _BILLERS,
    Permission.PAYMENTS: _EVERYONE,
    Permission.REFUND_CASES: _EVERYONE,
    Permission.RESOLVE_CASES: frozenset({Role.OPERATOR, Role.SUPPORT}),
    Permission.SETTLEMENTS: _BILLERS | {Role.FINANCE},
    Permission.USERS: frozenset({Role.OPERATOR, Role.BILLER_ADMIN}),
    Permission.WEBHOOKS: frozenset({Role.OPERATOR, Role.BILLER_ADMIN}),
    Permission.API_KEYS: frozenset({Role.OPERATOR, Role.BILLER_ADMIN}),
    Permission.BILLERS: CENTER_ROLES,
    Permission.EDIT_BILLERS: frozenset({Role.OPERATOR}),
    Permission.FEE_PLANS: frozenset({Role.OPERATOR, Role.FINANCE}),
    Permission.SUPPORT_SEARCH: frozenset({Role.OPERATOR, Role.SUPPORT}),
    Permission.NETWORK: CENTER_ROLES,
    Permission.AUDIT: CENTER_ROLES,
}

LOGIN = r"[a-z0-9][a-z0-9._\-]{1,31}"
PASSWORD_MIN = 12
PASSWORD_MAX = 128
ONE_TIME_LENGTH = 20
TOTP_CODE = r"[0-9]{6}"
_ONE_TIME_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"  # no 0/O, 1/l/I


@dataclass(frozen=True)
class ConsoleUser:
    """A console user as the rules see it (never the password hash nor the TOTP secret)."""

    user_id: int
    login: str
    role: Role
    biller_id: str | None
    must_change_password: bool
    has_totp: bool
    disabled: bool


def may(role: Role, permission: Permission) -> bool:
    return role in GRANTS[permission]


def biller_scope(user: ConsoleUser) -> str | None:
    """The one biller whose data the user sees, or None for every biller (a center role)."""
    if user.role in CENTER_ROLES:
        return None
    assert user.biller_id is not None  # a biller role always has its biller
    return user.biller_id


def sees_biller(user: ConsoleUser, biller_id: str) -> bool:
    scope = biller_scope(user)
    return scope is None or scope == biller_id


def may_for(user: ConsoleUser, permission: Permission, biller_id: str) -> bool:
    """``user`` may do what ``permission`` names to ``biller_id``'s data: the role holds it and
    the biller is the user's (any biller, for a center role)."""
    return may(user.role, permission) and sees_biller(user, biller_id)


def acting_biller(user: ConsoleUser, asked: str | None) -> str | None:
    """The biller a form acts for: a biller's user's own, whatever the form says; for a center
    user the one it chose (None: none chosen)."""
    scope = biller_scope(user)
    return scope if scope is not None else (asked or None)


#: The roles a user of the console's users screen may give (the center's: gateway-admin).
MANAGED_ROLES = (Role.BILLER_STAFF, Role.BILLER_ADMIN)


def may_disable(user: ConsoleUser, login: str) -> bool:
    """Whether ``user`` may disable the user ``login`` (of a biller the user manages): anyone
    but himself."""
    return login != user.login


def role_problem(role: str, biller_id: str | None) -> str | None:
    """Why ``role`` with ``biller_id`` is not a user that can be made, or None."""
    try:
        parsed = Role(role)
    except ValueError:
        return f"{role!r} is not one of {', '.join(r.value for r in Role)}"
    if parsed in BILLER_ROLES and biller_id is None:
        return f"a {parsed.value} user belongs to a biller: give --biller ID"
    if parsed in CENTER_ROLES and biller_id is not None:
        return f"a {parsed.value} user is the center's: give no --biller"
    return None


def password_problems(login: str, password: str) -> list[str]:
    """What is wrong with ``password`` as a new password (empty: nothing)."""
    problems = []
    if len(password) < PASSWORD_MIN:
        problems.append(f"{PASSWORD_MIN}文字以上にしてください")
    if len(password) > PASSWORD_MAX:
        problems.append(f"{PASSWORD_MAX}文字以下にしてください")
    if password.lower() == login.lower():
        problems.append("ログインIDと同じパスワードは使えません")
    if password and len(set(password)) == 1:
        problems.append("同じ文字だけのパスワードは使えません")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in password):
        problems.append("制御文字は使えません")
    return problems


def one_time_password() -> str:
    return "".join(secrets.choice(_ONE_TIME_ALPHABET) for _ in range(ONE_TIME_LENGTH))


def is_login(text: str) -> bool:
    return re.fullmatch(LOGIN, text) is not None


class SessionEnd(StrEnum):
    """Why a session ended (``console_sessions.end_reason``)."""

    LOGOUT = "logout"
    DISABLED = "disabled"
    PASSWORD = "password"  # the password changed: every other session of the user ends
    IDLE = "idle"
    EXPIRED = "expired"


@dataclass(frozen=True)
class SessionTimes:
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ended_at: datetime | None


def session_end(times: SessionTimes, now: datetime, idle: timedelta) -> SessionEnd | None:
    """Why the session is over at ``now``, or None while it is open."""
    if times.ended_at is not None:
        return SessionEnd.LOGOUT
    if now >= times.expires_at:
        return SessionEnd.EXPIRED
    if now - times.last_seen_at >= idle:
        return SessionEnd.IDLE
    return None


#: A session's ``last_seen_at`` is written again only when it is older than this (not a write
#: for every request); the idle timeout is that much less exact.
TOUCH_EVERY = timedelta(seconds=60)


def after_failure(failures: int, now: datetime, max_failures: int, lockout: timedelta) -> datetime:
    """The login is locked until the returned instant (``now`` itself: not locked)."""
    return now + lockout if failures >= max_failures else now
