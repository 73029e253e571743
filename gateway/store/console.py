"""The console's users and sessions (``console_users``, ``console_sessions``, migration 0018).

Functions of a connection, each part of the caller's transaction. None returns a password
hash except :func:`user_credentials` (for the login that verifies it), and the TOTP secret
leaves only encrypted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway.errors import Conflict, NotFound
from gateway.store.schema import console_sessions, console_users


@dataclass(frozen=True)
class UserRow:
    """A user as stored, with its secrets (the caller keeps them to itself)."""

    user_id: int
    login: str
    role: str
    biller_id: str | None
    password_hash: str
    must_change_password: bool
    totp_secret: str | None
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None
    disabled_at: datetime | None


def _user(row: Any) -> UserRow:
    return UserRow(
        user_id=int(row.id),
        login=row.login,
        role=row.role,
        biller_id=row.biller_id,
        password_hash=row.password_hash,
        must_change_password=bool(row.must_change_password),
        totp_secret=row.totp_secret,
        failed_logins=int(row.failed_logins),
        locked_until=row.locked_until,
        created_at=row.created_at,
        last_login_at=row.last_login_at,
        disabled_at=row.disabled_at,
    )


def insert_user(
    conn: Connection,
    *,
    login: str,
    role: str,
    biller_id: str | None,
    password_hash: str,
    totp_secret: str | None,
    now: datetime,
) -> UserRow:
    """A new user who must change the password at the first login; :class:`Conflict` naming
    ``login`` when the login is taken (by a disabled user too: logins are never reused)."""
    try:
        with conn.begin_nested():
            conn.execute(
                console_users.insert().values(
                    login=login,
                    role=role,
                    biller_id=biller_id,
                    password_hash=password_hash,
                    must_change_password=True,
                    totp_secret=totp_secret,
                    failed_logins=0,
                    created_at=now,
                )
            )
    except IntegrityError:
        raise Conflict(f"login {login} is taken", field="login") from None
    found = user_credentials(conn, login)
    assert found is not None
    return found


def user_credentials(conn: Connection, login: str, lock: bool = False) -> UserRow | None:
    query = select(console_users).where(console_users.c.login == login)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else _user(row)


def user_by_id(conn: Connection, user_id: int) -> UserRow | None:
    row = conn.execute(select(console_users).where(console_users.c.id == user_id)).first()
    return None if row is None else _user(row)


def list_users(conn: Connection, biller_id: str | None = None) -> list[UserRow]:
    query = select(console_users).order_by(console_users.c.login)
    if biller_id is not None:
        query = query.where(console_users.c.biller_id == biller_id)
    return [_user(r) for r in conn.execute(query)]


def set_login_failures(
    conn: Connection, user_id: int, failures: int, locked_until: datetime | None
) -> None:
    conn.execute(
        update(console_users)
        .where(console_users.c.id == user_id)
        .values(failed_logins=failures, locked_until=locked_until)
    )


def mark_login(conn: Connection, user_id: int, now: datetime) -> None:
    conn.execute(
        update(console_users)
        .where(console_users.c.id == user_id)
        .values(failed_logins=0, locked_until=None, last_login_at=now)
    )


def set_password(conn: Connection, user_id: int, password_hash: str, now: datetime) -> None:
    conn.execute(
        update(console_users)
        .where(console_users.c.id == user_id)
        .values(password_hash=password_hash, must_change_password=False, password_changed_at=now)
    )


def disable_user(conn: Connection, login: str, now: datetime) -> UserRow:
    """Disable the user (once: the first time is kept); :class:`NotFound` for no such login."""
    found = user_credentials(conn, login, lock=True)
    if found is None:
        raise NotFound(f"console user {login}")
    if found.disabled_at is None:
        conn.execute(
            update(console_users).where(console_users.c.id == found.user_id).values(disabled_at=now)
        )
    after = user_credentials(conn, login)
    assert after is not None
    return after


def insert_session(
    conn: Connection, token_hash: str, user_id: int, now: datetime, expires_at: datetime
) -> None:
    conn.execute(
        console_sessions.insert().values(
            token_hash=token_hash,
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
        )
    )


@dataclass(frozen=True)
class SessionRow:
    token_hash: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    user: UserRow


def session_with_user(conn: Connection, token_hash: str) -> SessionRow | None:
    s = console_sessions.c
    row = conn.execute(
        select(
            console_users,
            s.token_hash,
            s.created_at.label("session_created_at"),
            s.last_seen_at,
            s.expires_at,
            s.ended_at,
        )
        .select_from(console_sessions.join(console_users, s.user_id == console_users.c.id))
        .where(s.token_hash == token_hash)
    ).first()
    if row is None:
        return None
    return SessionRow(
        token_hash=row.token_hash,
        created_at=row.session_created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
        user=_user(row),
    )


def touch_session(conn: Connection, token_hash: str, now: datetime) -> None:
    conn.execute(
        update(console_sessions)
        .where(console_sessions.c.token_hash == token_hash, console_sessions.c.ended_at.is_(None))
        .values(last_seen_at=now)
    )


def end_session(conn: Connection, token_hash: str, now: datetime, reason: str) -> bool:
    """End one session; False when it had already ended."""
    done = conn.execute(
        update(console_sessions)
        .where(console_sessions.c.token_hash == token_hash, console_sessions.c.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
    )
    return bool(done.rowcount)


def end_user_sessions(
    conn: Connection, user_id: int, now: datetime, reason: str, keep: str | None = None
) -> int:
    """End every open session of the user (but ``keep``, a token hash); how many ended."""
    s = console_sessions.c
    conditions = [s.user_id == user_id, s.ended_at.is_(None)]
    if keep is not None:
        conditions.append(s.token_hash != keep)
    done = conn.execute(
        update(console_sessions).where(and_(*conditions)).values(ended_at=now, end_reason=reason)
    )
    return int(done.rowcount)


def open_sessions(conn: Connection, user_id: int) -> int:
    s = console_sessions.c
    rows = conn.execute(select(s.token_hash).where(s.user_id == user_id, s.ended_at.is_(None)))
    return len(rows.all())
