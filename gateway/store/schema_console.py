"""The console's tables (migration 0018), on the one ``MetaData`` of the schema.

``console_users``: the people who use the console (docs/console.md), apart from API keys. A
user of a center role (operator, support, finance) has no biller; a user of a biller role
(biller_admin, biller_staff) has exactly one. The password is kept as an argon2id hash only; a
one-time password (``must_change_password``) is changed at the first login; the TOTP secret,
when set, is encrypted with ``[secrets] key``. A disabled user is kept (the audit log names it).

``console_sessions``: one row per login. The cookie carries a random token; the row keeps its
SHA-256 only, so a copy of the database opens no session. A session ends when the user logs out,
is disabled, changes the password, or when it has been idle or open too long.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table

from gateway.store.schema_base import BigId, UTCDateTime, metadata

console_users = Table(
    "console_users",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("login", String(32), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("biller_id", String(32), ForeignKey("billers.biller_id")),  # NULL: a center role
    Column("password_hash", String(200), nullable=False),  # argon2id, PHC string
    Column("must_change_password", Boolean, nullable=False),
    Column("totp_secret", String(100)),  # encrypted (gateway.infra.secretbox); NULL: no TOTP
    Column("failed_logins", Integer, nullable=False, server_default="0"),  # since the last login
    Column("locked_until", UTCDateTime),  # too many failures: refused until then
    Column("created_at", UTCDateTime, nullable=False),
    Column("password_changed_at", UTCDateTime),
    Column("last_login_at", UTCDateTime),
    Column("disabled_at", UTCDateTime),
    Index(None, "biller_id", "login"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # SHA-256 (hex) of the cookie's token
    Column("user_id", BigId, ForeignKey("console_users.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),  # idle timeout from here
    Column("expires_at", UTCDateTime, nullable=False),  # the absolute timeout
    Column("ended_at", UTCDateTime),
    Column("end_reason", String(16)),  # logout, disabled, password, idle, expired
    Index(None, "user_id", "ended_at"),
)
