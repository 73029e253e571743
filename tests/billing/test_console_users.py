"""Console users (issue 20, part 1): the rules of roles, passwords and sessions, the tables of
migration 0018, and ``gateway-admin user create | list | disable`` with the audit log.
Logins and sessions over HTTP: tests/protocols/test_console_http.py."""

from __future__ import annotations

import contextlib
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from gateway.app.admin.commands import main as admin_main
from gateway.billing.console_access import (
    ConsoleUser,
    Permission,
    Role,
    SessionEnd,
    SessionTimes,
    after_failure,
    biller_scope,
    may,
    one_time_password,
    password_problems,
    role_problem,
    session_end,
)
from gateway.billing.console_users import csrf_ok, csrf_token, hash_password, verify_password
from gateway.store import create_db_engine
from gateway.store.console import insert_session, session_with_user, user_credentials
from gateway.store.schema import console_users, metadata
from tests.conftest import admin, config_text, onboard

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def user(role: Role, biller: str | None = None) -> ConsoleUser:
    return ConsoleUser(1, "someone", role, biller, False, False, False)


def test_center_roles_see_every_biller_and_biller_roles_their_own() -> None:
    assert biller_scope(user(Role.OPERATOR)) is None
    assert biller_scope(user(Role.SUPPORT)) is None
    assert biller_scope(user(Role.BILLER_STAFF, "acme")) == "acme"
    assert may(Role.BILLER_STAFF, Permission.BILLS) and not may(Role.FINANCE, Permission.BILLS)
    assert may(Role.BILLER_ADMIN, Permission.USERS) and not may(Role.BILLER_STAFF, Permission.USERS)
    assert role_problem("biller_staff", None) is not None
    assert role_problem("operator", "acme") is not None
    assert role_problem("janitor", None) is not None
    assert role_problem("support", None) is None and role_problem("biller_admin", "acme") is None


def test_password_rules() -> None:
    assert password_problems("clerk", "correct-horse-battery") == []
    assert password_problems("clerk", "short") == ["12文字以上にしてください"]
    assert "ログインIDと同じパスワードは使えません" in password_problems(
        "clerk-of-acme", "CLERK-OF-ACME"
    )
    assert "同じ文字だけのパスワードは使えません" in password_problems("clerk", "a" * 12)
    one = one_time_password()
    assert len(one) == 20 and password_problems("clerk", one) == []
    assert one != one_time_password()
    stored = hash_password("correct-horse-battery")
    assert stored.startswith("$argon2id$") and "correct" not in stored
    assert verify_password(stored, "correct-horse-battery")
    assert not verify_password(stored, "correct-horse-batterY")
    assert not verify_password("not a hash", "x")


def test_sessions_end_when_idle_or_too_old() -> None:
    idle = timedelta(minutes=30)
    times = SessionTimes(NOW, NOW, NOW + timedelta(hours=12), None)
    assert session_end(times, NOW + timedelta(minutes=29), idle) is None
    assert session_end(times, NOW + timedelta(minutes=30), idle) is SessionEnd.IDLE
    busy = SessionTimes(NOW, NOW + timedelta(hours=11, minutes=59), times.expires_at, None)
    assert session_end(busy, NOW + timedelta(hours=12), idle) is SessionEnd.EXPIRED
    assert after_failure(4, NOW, 5, timedelta(minutes=15)) == NOW
    assert after_failure(5, NOW, 5, timedelta(minutes=15)) == NOW + timedelta(minutes=15)


def test_the_csrf_token_belongs_to_its_session() -> None:
    token = "session-token-1"
    assert csrf_ok(token, csrf_token(token))
    assert not csrf_ok(token, csrf_token("session-token-2"))
    assert not csrf_ok(token, None) and not csrf_ok(token, "")


def test_the_migration_matches_the_schema(migrated_url: str) -> None:
    engine = create_db_engine(migrated_url, 1)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert [d for d in diff if "console" in repr(d)] == []


def admin_fails(config_path: Path, *args: str) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = admin_main(["-c", str(config_path), *args])
    assert rc == 1, f"gateway-admin {' '.join(args)} did not fail"
    return err.getvalue()


@pytest.fixture
def config_path(tmp_path: Path, migrated_url: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(migrated_url), encoding="utf-8")
    return path


def test_user_create_list_disable(config_path: Path, migrated_url: str) -> None:
    onboard(config_path, "acme")
    made = admin(
        config_path,
        "user",
        "create",
        "--login",
        "clerk",
        "--role",
        "biller_staff",
        "--biller",
        "acme",
    )
    assert made["login"] == "clerk" and made["role"] == "biller_staff"
    assert made["biller_id"] == "acme" and made["must_change_password"] is True
    assert len(made["password"]) == 20 and "totp_uri" not in made

    engine = create_db_engine(migrated_url, 1)
    with engine.begin() as conn:
        row = user_credentials(conn, "clerk")
        assert row is not None and verify_password(row.password_hash, made["password"])
        assert made["password"] not in row.password_hash
        insert_session(conn, "a" * 64, row.user_id, NOW, NOW + timedelta(hours=1))

    assert "taken" in admin_fails(
        config_path, "user", "create", "--login", "clerk", "--role", "operator"
    )
    assert "--biller: no biller nowhere" in admin_fails(
        config_path,
        "user",
        "create",
        "--login",
        "x1",
        "--role",
        "biller_admin",
        "--biller",
        "nowhere",
    )
    assert "--role: a operator user is the center's" in admin_fails(
        config_path, "user", "create", "--login", "x2", "--role", "operator", "--biller", "acme"
    )
    assert "--totp: TOTP is for the center's roles" in admin_fails(
        config_path, "user", "create", "--login", "x3", "--role", "biller_staff", "--biller",
        "acme", "--totp",
    )  # fmt: skip
    assert "--login: must be" in admin_fails(
        config_path, "user", "create", "--login", "Bad Name", "--role", "support"
    )
    desk = admin(config_path, "user", "create", "--login", "desk", "--role", "support", "--totp")
    assert desk["totp_uri"].startswith("otpauth://totp/collection-gateway:desk?secret=")
    with engine.begin() as conn:
        stored = conn.execute(
            select(console_users.c.totp_secret).where(console_users.c.login == "desk")
        ).scalar_one()
    assert stored.startswith("v1:") and stored not in desk["totp_uri"]

    listed = admin(config_path, "user", "list")["users"]
    assert [(u["login"], u["role"], u["biller_id"]) for u in listed] == [
        ("clerk", "biller_staff", "acme"),
        ("desk", "support", None),
    ]
    assert all("password" not in u for u in listed) and "argon2" not in str(listed)
    assert [
        u["login"] for u in admin(config_path, "user", "list", "--biller", "acme")["users"]
    ] == ["clerk"]

    done = admin(config_path, "user", "disable", "--login", "clerk")
    assert done["disabled_at"] is not None and done["sessions_ended"] == 1
    with engine.begin() as conn:
        session = session_with_user(conn, "a" * 64)
    assert session is not None and session.ended_at is not None
    again = admin(config_path, "user", "disable", "--login", "clerk")
    assert again["disabled_at"] == done["disabled_at"] and again["sessions_ended"] == 0
    assert "no console user ghost" in admin_fails(
        config_path, "user", "disable", "--login", "ghost"
    )
    engine.dispose()

    lines = admin(config_path, "audit", "list", "--target", "console_user:clerk")["data"]
    assert [line["action"] for line in lines] == ["console_user.disable", "console_user.create"]
    assert all(line["actor"].startswith("cli:") for line in lines)
    assert lines[0]["before"]["disabled_at"] is None and lines[0]["after"]["disabled_at"]
    assert made["password"] not in str(lines)
