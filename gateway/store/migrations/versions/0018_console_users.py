"""console users: the console's users and their sessions (issue 20)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 10:00:00

- ``console_users``: people who use the console (docs/console.md), apart from API keys: a login,
  a role (operator, support, finance; biller_admin, biller_staff with their biller), an argon2id
  password hash, whether the one-time password must still be changed, an encrypted TOTP
  secret (optional), failed logins and a lock, and when the user was disabled.
- ``console_sessions``: one row per login, keyed by the SHA-256 of the cookie's token, with
  its idle and absolute deadlines and when and why it ended (gateway.store.schema_console).
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("login", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("biller_id", sa.String(length=32), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("totp_secret", sa.String(length=100), nullable=True),
        sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["biller_id"],
            ["billers.biller_id"],
            name=op.f("fk_console_users_biller_id_billers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_users")),
        sa.UniqueConstraint("login", name=op.f("uq_console_users_login")),
    )
    op.create_index(
        op.f("ix_console_users_biller_id_login"),
        "console_users",
        ["biller_id", "login"],
        unique=False,
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["console_users.id"],
            name=op.f("fk_console_sessions_user_id_console_users"),
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_console_sessions")),
    )
    op.create_index(
        op.f("ix_console_sessions_user_id_ended_at"),
        "console_sessions",
        ["user_id", "ended_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_console_sessions_user_id_ended_at"), table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_index(op.f("ix_console_users_biller_id_login"), table_name="console_users")
    op.drop_table("console_users")
