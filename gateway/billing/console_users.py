"""Console users, logins and sessions (docs/console.md); the rules are
:mod:`gateway.billing.console_access`'s.

- Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second
  recommendation); only the hash is stored. A new user gets a one-time password, printed once
  by ``gateway-admin user create``, that must be changed at the first login.
- TOTP (RFC 6238, pyotp) for center roles, when the user was made with it: the secret is stored
  encrypted with ``[secrets] key``, and the login asks for the 6-digit code.
- A login is one check of the password (in a thread: argon2 takes a few hundred milliseconds)
  and one transaction that reads the user again, counts a failure (``max_failed_logins`` in a
  row lock the login for ``lockout``) or opens a session, and writes the audit log either way.
- A session is a random token in the cookie; the store keeps its SHA-256. Every request reads
  the session with its user: a session past its idle or absolute timeout, or of a disabled
  user, is ended then and there. The CSRF token of a session is an HMAC of its token, so it
  needs no storage and a copy of the database cannot forge it.
- Every change is written to the audit log in its own transaction: ``console_user.create``,
  ``console_user.disable``, ``console_user.password``, ``console.login``,
  ``console.login_failed``, ``console.logout``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool

from gateway.billing.actors import console_actor
from gateway.billing.console_access import (
    CENTER_ROLES,
    TOTP_CODE,
    TOUCH_EVERY,
    ConsoleUser,
    Role,
    SessionEnd,
    SessionTimes,
    after_failure,
    is_login,
    one_time_password,
    password_problems,
    role_problem,
    session_end,
)
from gateway.clock import now as clock_now
from gateway.config.console import ConsoleConfig
from gateway.errors import Conflict, FieldError, InvalidRequest, NotFound
from gateway.infra.secretbox import SecretBox, token_hash
from gateway.store import Store
from gateway.store.audit import record
from gateway.store.billers import get_biller
from gateway.store.console import (
    UserRow,
    disable_user,
    end_session,
    end_user_sessions,
    insert_session,
    insert_user,
    list_users,
    mark_login,
    session_with_user,
    set_login_failures,
    set_password,
    touch_session,
    user_by_id,
    user_credentials,
)

T = TypeVar("T")

HASHER = PasswordHasher()
#: Verified instead when the login is unknown, so that an unknown login takes as long to
#: refuse as a wrong password.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))
TOTP_ISSUER = "collection-gateway"


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session (every form carries it; :func:`csrf_ok` checks it)."""
    return hmac.new(session_token.encode(), b"console csrf v1", hashlib.sha256).hexdigest()


def csrf_ok(session_token: str, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(csrf_token(session_token), sent)


def _totp_context(login: str) -> str:
    return f"console_user:{login}:totp"


def user_view(row: UserRow) -> ConsoleUser:
    return ConsoleUser(
        user_id=row.user_id,
        login=row.login,
        role=Role(row.role),
        biller_id=row.biller_id,
        must_change_password=row.must_change_password,
        has_totp=row.totp_secret is not None,
        disabled=row.disabled_at is not None,
    )


def user_json(row: UserRow) -> dict[str, Any]:
    """A user as the operator sees it: never the hash nor the TOTP secret."""
    return {
        "login": row.login,
        "role": row.role,
        "biller_id": row.biller_id,
        "must_change_password": row.must_change_password,
        "totp": row.totp_secret is not None,
        "created_at": row.created_at.isoformat(),
        "last_login_at": row.last_login_at.isoformat() if row.last_login_at else None,
        "disabled_at": row.disabled_at.isoformat() if row.disabled_at else None,
    }


@dataclass(frozen=True)
class NewUser:
    user: dict[str, Any]
    password: str  # the one-time password: shown once
    totp_uri: str | None  # otpauth:// URI for an authenticator app: shown once


def create_user(
    conn: Connection,
    box: SecretBox | None,
    *,
    login: str,
    role: str,
    biller_id: str | None,
    totp: bool,
    actor: str,
    now: datetime,
) -> NewUser:
    """A new user with a one-time password, written to the audit log. :class:`InvalidRequest`
    naming the field for a bad login, role, biller or TOTP request."""
    errors = []
    if not is_login(login):
        errors.append(FieldError("login", "must be 2-32 of a-z, 0-9, '.', '_', '-'"))
    problem = role_problem(role, biller_id)
    if problem is not None:
        errors.append(FieldError("role", problem))
    elif totp and Role(role) not in CENTER_ROLES:
        errors.append(FieldError("totp", "TOTP is for the center's roles"))
    if totp and box is None:
        errors.append(FieldError("totp", "needs [secrets] key to store the TOTP secret"))
    if errors:
        raise InvalidRequest(errors)
    if biller_id is not None:
        try:
            get_biller(conn, biller_id)
        except NotFound:
            raise InvalidRequest([FieldError("biller", f"no biller {biller_id}")]) from None
    password = one_time_password()
    secret = pyotp.random_base32() if totp else None
    sealed = box.encrypt(secret, _totp_context(login)) if box and secret else None
    row = insert_user(
        conn,
        login=login,
        role=role,
        biller_id=biller_id,
        password_hash=hash_password(password),
        totp_secret=sealed,
        now=now,
    )
    doc = user_json(row)
    record(
        conn,
        actor,
        "console_user.create",
        f"console_user:{login}",
        now,
        biller_id=biller_id,
        after=doc,
    )
    uri = (
        pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=TOTP_ISSUER) if secret else None
    )
    return NewUser(doc, password, uri)


def disable(conn: Connection, login: str, actor: str, now: datetime) -> dict[str, Any]:
    """Disable the user and end its sessions at once (a request with one of them is refused
    from this commit on); audited once."""
    before = user_credentials(conn, login)
    after = disable_user(conn, login, now)
    ended = end_user_sessions(conn, after.user_id, now, SessionEnd.DISABLED.value)
    if before is not None and before.disabled_at is None:
        record(
            conn,
            actor,
            "console_user.disable",
            f"console_user:{login}",
            now,
            biller_id=after.biller_id,
            before=user_json(before),
            after={**user_json(after), "sessions_ended": ended},
        )
    return {**user_json(after), "sessions_ended": ended}


def users_json(conn: Connection, biller_id: str | None) -> list[dict[str, Any]]:
    return [user_json(r) for r in list_users(conn, biller_id)]


class LoginResult(StrEnum):
    OK = "ok"
    REFUSED = "refused"  # wrong login, password or code, or a disabled user: one answer
    LOCKED = "locked"  # too many failures: wait


@dataclass(frozen=True)
class Login:
    result: LoginResult
    token: str | None = None  # the new session's, on OK
    must_change_password: bool = False


@dataclass(frozen=True)
class Session:
    """An open session as a request sees it."""

    token: str
    user: ConsoleUser

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)


class ConsoleUsers:
    """Logins, sessions and password changes for the console's routes."""

    def __init__(
        self, store: Store, clock: IReactorTime, config: ConsoleConfig, box: SecretBox | None
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.box = box

    def _in_thread(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        reactor: Any = self.clock
        if IReactorThreads.providedBy(reactor):
            return deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args)
        return Deferred.fromCoroutine(_now(fn, *args))  # a test clock without threads

    def _totp_ok(self, row: UserRow, code: str | None, now: datetime) -> bool:
        if row.totp_secret is None:
            return True
        if self.box is None or code is None or not _is_code(code):
            return False
        try:
            secret = self.box.decrypt(row.totp_secret, _totp_context(row.login))
        except ValueError:
            return False
        return bool(pyotp.TOTP(secret).verify(code, for_time=now, valid_window=1))

    async def login(self, login: str, password: str, code: str | None, address: str) -> Login:
        row = None
        if is_login(login):
            row = await self.store.run_interaction("console.login_user", user_credentials, login)
        stored = row.password_hash if row is not None else _DUMMY_HASH
        password_ok = await self._in_thread(verify_password, stored, password)
        now = clock_now(self.clock)
        totp_ok = row is not None and self._totp_ok(row, code, now)
        token = secrets.token_urlsafe(32)
        return await self.store.run_interaction(
            "console.login",
            self._finish_login,
            login if row is not None else None,
            stored,
            password_ok and totp_ok,
            "password" if not password_ok else "code",
            token,
            address,
            now,
        )

    def _finish_login(
        self,
        conn: Connection,
        login: str | None,
        checked_hash: str,
        ok: bool,
        wrong: str,
        token: str,
        address: str,
        now: datetime,
    ) -> Login:
        row = user_credentials(conn, login, lock=True) if login is not None else None
        if row is None:
            record(
                conn,
                "console:anonymous",
                "console.login_failed",
                "console_user:unknown",
                now,
                after={"reason": "unknown_login", "address": address},
            )
            return Login(LoginResult.REFUSED)
        target = f"console_user:{row.login}"
        actor = console_actor(row.login)

        def refuse(reason: str, result: LoginResult, **more: Any) -> Login:
            after = {"reason": reason, "address": address, **more}
            record(
                conn,
                actor,
                "console.login_failed",
                target,
                now,
                biller_id=row.biller_id,
                after=after,
            )
            return Login(result)

        if row.disabled_at is not None:
            return refuse("disabled", LoginResult.REFUSED)
        if row.locked_until is not None and row.locked_until > now:
            return refuse("locked", LoginResult.LOCKED, locked_until=row.locked_until.isoformat())
        if not ok or row.password_hash != checked_hash:  # a password changed meanwhile: refused
            failures = row.failed_logins + 1
            until = after_failure(failures, now, self.config.max_failed_logins, self.config.lockout)
            locked = until > now
            set_login_failures(
                conn, row.user_id, 0 if locked else failures, until if locked else None
            )
            more: dict[str, Any] = {"failures": failures}
            if locked:
                more["locked_until"] = until.isoformat()
            return refuse(wrong, LoginResult.LOCKED if locked else LoginResult.REFUSED, **more)
        mark_login(conn, row.user_id, now)
        insert_session(
            conn, token_hash(token), row.user_id, now, now + self.config.absolute_timeout
        )
        record(
            conn,
            actor,
            "console.login",
            target,
            now,
            biller_id=row.biller_id,
            after={"address": address, "must_change_password": row.must_change_password},
        )
        return Login(LoginResult.OK, token, row.must_change_password)

    async def session(self, token: str) -> Session | None:
        """The open session of the cookie's token, or None (unknown, ended, timed out, or its
        user disabled: ended now)."""
        if not token or len(token) > 100:
            return None
        return await self.store.run_interaction(
            "console.session", self._session, token, clock_now(self.clock)
        )

    def _session(self, conn: Connection, token: str, now: datetime) -> Session | None:
        hashed = token_hash(token)
        found = session_with_user(conn, hashed)
        if found is None or found.ended_at is not None:
            return None
        times = SessionTimes(found.created_at, found.last_seen_at, found.expires_at, None)
        why = session_end(times, now, self.config.idle_timeout)
        if why is None and found.user.disabled_at is not None:
            why = SessionEnd.DISABLED
        if why is not None:
            end_session(conn, hashed, now, why.value)
            return None
        if now - found.last_seen_at >= TOUCH_EVERY:
            touch_session(conn, hashed, now)
        return Session(token, user_view(found.user))

    async def logout(self, session: Session) -> None:
        await self.store.run_interaction(
            "console.logout", self._logout, session, clock_now(self.clock)
        )

    def _logout(self, conn: Connection, session: Session, now: datetime) -> None:
        if end_session(conn, token_hash(session.token), now, SessionEnd.LOGOUT.value):
            login = session.user.login
            record(
                conn,
                console_actor(login),
                "console.logout",
                f"console_user:{login}",
                now,
                biller_id=session.user.biller_id,
            )

    async def change_password(self, session: Session, current: str, new: str, confirm: str) -> None:
        """The user's new password; :class:`InvalidRequest` naming the field that is wrong.
        The user's other sessions end (this one stays)."""
        user = session.user
        row = await self.store.run_interaction("console.password_user", user_by_id, user.user_id)
        if row is None:
            raise NotFound("console user")
        errors = []
        if not await self._in_thread(verify_password, row.password_hash, current):
            errors.append(FieldError("current_password", "現在のパスワードが違います"))
        errors += [FieldError("new_password", p) for p in password_problems(user.login, new)]
        if new != confirm:
            errors.append(FieldError("confirm_password", "新しいパスワードが一致しません"))
        if not errors and new == current:
            errors.append(FieldError("new_password", "現在と違うパスワードにしてください"))
        if errors:
            raise InvalidRequest(errors)
        hashed = await self._in_thread(hash_password, new)
        await self.store.run_interaction(
            "console.password",
            self._set_password,
            session,
            row.password_hash,
            hashed,
            clock_now(self.clock),
        )

    def _set_password(
        self, conn: Connection, session: Session, old_hash: str, hashed: str, now: datetime
    ) -> None:
        row = user_by_id(conn, session.user.user_id)
        if row is None or row.password_hash != old_hash:
            raise Conflict("the password was changed meanwhile: log in again", field="password")
        set_password(conn, row.user_id, hashed, now)
        ended = end_user_sessions(
            conn, row.user_id, now, SessionEnd.PASSWORD.value, keep=token_hash(session.token)
        )
        record(
            conn,
            console_actor(row.login),
            "console_user.password",
            f"console_user:{row.login}",
            now,
            biller_id=row.biller_id,
            before={"must_change_password": row.must_change_password},
            after={"must_change_password": False, "other_sessions_ended": ended},
        )


def _is_code(code: str) -> bool:
    return re.fullmatch(TOTP_CODE, code) is not None


async def _now(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)
