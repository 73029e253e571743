"""Secrets at rest (issue 14, finding 11): a copy of the database alone reveals no page token
and no webhook secret, the idempotent replay table keeps neither, and the daemon's files are
readable by its user only."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_twisted
import treq
from alembic import command
from sqlalchemy import MetaData, select, text, update
from sqlalchemy.engine import make_url

from gateway.infra.secretbox import SecretBox, token_hash
from gateway.store import create_db_engine
from gateway.store.migrate import alembic_config, migrate
from gateway.store.schema import bills, events, idempotency_keys, webhook_endpoints
from tests.conftest import TEST_SECRET_KEY, Running, on_postgres
from tests.test_api import bill_body

ENDPOINT = {"url": "https://hooks.acme.example/gw", "events": ["*"]}


def database_copy(url: str) -> bytes:
    """What someone who copied the database reads: the SQLite file with its WAL, or every row
    of every table on PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        parts = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        return b"".join(p.read_bytes() for p in parts if p.exists())
    engine = create_db_engine(url, 1)
    out = []
    with engine.connect() as conn:
        found = MetaData()
        found.reflect(conn)  # the tables as they are (at any revision)
        for table in found.sorted_tables:
            for row in conn.execute(select(table)):
                out.append(repr(tuple(row)).encode())
    engine.dispose()
    return b"\n".join(out)


def query(url: str, statement: Any) -> list[Any]:
    engine = create_db_engine(url, 1)
    with engine.connect() as conn:
        found = list(conn.execute(statement).all())
    engine.dispose()
    return found


async def page_status(running: Running, page_url: str) -> int:
    resp = await treq.get(running.api + urlsplit(page_url).path)
    await resp.content()
    return int(resp.code)


def token_of(page_url: str) -> str:
    return urlsplit(page_url).path.rsplit("/", 1)[1]


@pytest_twisted.ensureDeferred
async def test_a_copy_of_the_database_reveals_no_page_token_and_no_webhook_secret(
    gateway: Running,
) -> None:
    acme = gateway.onboard("acme")
    key = {"Idempotency-Key": "bill-1"}
    status, bill, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("K-1"), key)
    assert status == 201
    token = token_of(bill["page_url"])
    status, endpoint, _ = await gateway.request(
        "POST", "/v1/webhook-endpoints", acme, ENDPOINT, {"Idempotency-Key": "hook-1"}
    )
    assert status == 201
    secret = endpoint["secret"]
    # A reissue and a cancel with keys: their answers carry the page URL too.
    reissue = {"Idempotency-Key": "re-1"}
    assert (await gateway.request("POST", "/v1/bills/K-1/reissue", acme, {}, reissue))[0] == 200
    cancel = {"Idempotency-Key": "cancel-1"}
    status, cancelled, _ = await gateway.request("POST", "/v1/bills/K-1/cancel", acme, None, cancel)
    assert status == 200 and cancelled["page_url"] == bill["page_url"]

    # The replays answer exactly what the first answers did, secret and page URL included.
    status, again, headers = await gateway.request(
        "POST", "/v1/webhook-endpoints", acme, ENDPOINT, {"Idempotency-Key": "hook-1"}
    )
    assert (status, again) == (201, endpoint)
    assert headers.getRawHeaders("idempotent-replayed") == ["true"]
    status, replayed, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("K-1"), key)
    assert (status, replayed) == (201, bill)
    status, replayed, _ = await gateway.request("POST", "/v1/bills/K-1/cancel", acme, None, cancel)
    assert (status, replayed) == (200, cancelled)
    # The page URL is shown again whenever the biller asks (GET), and it opens the page.
    assert (await gateway.request("GET", "/v1/bills/K-1", acme))[1]["page_url"] == bill["page_url"]
    assert await page_status(gateway, bill["page_url"]) == 200

    # The attacker's copy: neither the token nor the secret, in any table (replays included).
    copy = database_copy(gateway.config.database.url)
    assert b"K-1" in copy  # (the copy is readable: the bill is in it)
    assert token.encode() not in copy
    assert secret.encode() not in copy and secret[len("whsec_") :].encode() not in copy
    for row in query(gateway.config.database.url, select(idempotency_keys)):
        assert "secret" not in json.loads(row.response_body)
        assert "page_url" not in json.loads(row.response_body)
        assert token not in row.response_body
    for row in query(gateway.config.database.url, select(events.c.data)):
        assert token not in row.data and "page_url" not in row.data
    # What the database keeps: the token's SHA-256, and the secret sealed with [secrets] key.
    (stored,) = query(gateway.config.database.url, select(bills.c.page_token))
    assert stored.page_token == token_hash(token)
    (sealed,) = query(gateway.config.database.url, select(webhook_endpoints.c.secret))
    assert sealed.secret.startswith("v1:")
    box = SecretBox(base64.b64decode(TEST_SECRET_KEY))
    assert box.decrypt(sealed.secret, endpoint["id"]) == secret


@pytest_twisted.ensureDeferred
async def test_a_token_that_is_only_the_stored_hash_opens_nothing(gateway: Running) -> None:
    """Someone who read the hash from a copy cannot use it as a token."""
    acme = gateway.onboard("acme")
    status, bill, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("H-1"))
    assert status == 201
    (stored,) = query(gateway.config.database.url, select(bills.c.page_token))
    url = bill["page_url"].replace(token_of(bill["page_url"]), stored.page_token)
    assert await page_status(gateway, url) == 404
    assert await page_status(gateway, bill["page_url"]) == 200


@pytest_twisted.ensureDeferred
async def test_tokens_and_secrets_stored_before_0009_still_work_and_are_hidden(
    gateway: Running,
) -> None:
    """A database as it was before migration 0009 (plain tokens, plain secrets, replays and
    events carrying both), migrated: old links still open, the API shows a working URL, the
    old secret still signs, and nothing of them is left in the copy."""
    from twisted.internet import reactor  # noqa: TID251 - the real service, started again

    from gateway.app.service import make_service

    url = gateway.config.database.url
    acme = gateway.onboard("acme")
    status, bill, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("L-1"))
    assert status == 201
    status, endpoint, _ = await gateway.request("POST", "/v1/webhook-endpoints", acme, ENDPOINT)
    assert status == 201
    old_token = "LegacyRandomToken_0123456789abcd"  # as secrets.token_urlsafe(24) made them
    old_secret = "whsec_" + "legacy-plain-secret-made-by-token_urlsafe32"  # 43 characters
    legacy_replay = json.dumps({**bill, "page_url": f"http://x/p/{old_token}"})
    engine = create_db_engine(url, 1)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0008")
    with engine.begin() as conn:
        conn.execute(update(bills).values(page_token=old_token))
        conn.execute(update(webhook_endpoints).values(secret=old_secret))
        conn.execute(
            text(
                "INSERT INTO idempotency_keys (scope, idempotency_key, request_hash,"
                " status_code, response_body, created_at) VALUES ('biller:acme', 'old', 'h',"
                " 201, :body, CURRENT_TIMESTAMP)"
            ),
            {"body": legacy_replay},
        )
        conn.execute(
            text("UPDATE events SET data = :data"),
            {"data": json.dumps({"bill": {"page_url": f"http://x/p/{old_token}"}})},
        )
    assert old_token.encode() in database_copy(url)
    migrate(engine)
    engine.dispose()

    # The daemon's next start (it has the key) finishes what the migration could not.
    top = make_service(gateway.config, reactor)
    top.startService()
    try:
        await top.getServiceNamed("secrets-at-rest").done
    finally:
        await top.stopService()
    copy = database_copy(url)
    assert old_token.encode() not in copy and old_secret.encode() not in copy
    (row,) = query(url, select(bills.c.page_token, bills.c.legacy_page_token))
    assert row.legacy_page_token == token_hash(old_token)
    assert row.page_token == token_hash(token_of(bill["page_url"]))
    (sealed,) = query(url, select(webhook_endpoints.c.secret))
    box = SecretBox(base64.b64decode(TEST_SECRET_KEY))
    assert box.decrypt(sealed.secret, endpoint["id"]) == old_secret  # it signs as before

    # The link the customer was sent still opens; so does the one the API shows now.
    legacy_url = bill["page_url"].replace(token_of(bill["page_url"]), old_token)
    assert await page_status(gateway, legacy_url) == 200
    shown = (await gateway.request("GET", "/v1/bills/L-1", acme))[1]["page_url"]
    assert shown == bill["page_url"] and await page_status(gateway, shown) == 200


# --- file modes -----------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_daemon_creates_everything_readable_by_its_user_only(
    tmp_path: Path, database_url: str
) -> None:
    from tests.daemon import admin_cli, http, start_daemon, write_config

    config, api_port, metrics_port = write_config(
        tmp_path, database_url, extra='\n[bulk]\ninbox = "var/inbox/bills"\n'
    )
    admin_cli(config, "migrate")
    sqlite = make_url(database_url).database if not on_postgres() else None
    if sqlite is not None:
        Path(sqlite).chmod(0o644)  # a file made before this change: tightened at start
    daemon = start_daemon(config, api_port, metrics_port)
    try:
        daemon.wait()
        admin_cli(config, "biller", "create", "--id", "acme", "--name", "a", "--kana", "ｱ")
        key = json.loads(admin_cli(config, "key", "create", "--biller", "acme").stdout)["key"]
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        assert http("POST", daemon.api + "/v1/bills", bill_body("F-1"), auth)[0] == 201
    finally:
        assert daemon.stop() == 0
    if sqlite is not None:
        for path in Path(sqlite).parent.glob(Path(sqlite).name + "*"):
            assert mode(path) == 0o600, path
    # Every file and folder the daemon made under its directory: its user's only.
    made = [
        p
        for p in tmp_path.rglob("*")
        if p.name not in ("gateway.toml", "twistd.log") and not p.name.startswith("gateway.sql")
    ]
    assert made, "the daemon made no folder (the inboxes, the outbox)"
    for path in made:
        assert mode(path) & 0o077 == 0, f"{path} is {oct(mode(path))}"


def test_a_fresh_sqlite_file_is_made_0600(tmp_path: Path) -> None:
    path = tmp_path / "new" / "gateway.sqlite3"
    engine = create_db_engine(f"sqlite:///{path}", 1)
    migrate(engine)
    engine.dispose()
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


def test_the_daemon_refuses_to_start_without_the_secret_key(
    tmp_path: Path, database_url: str
) -> None:
    from tests.daemon import start_daemon, write_config

    config, api_port, metrics_port = write_config(tmp_path, database_url)
    text_ = config.read_text(encoding="utf-8")
    config.write_text(text_.replace(f'key = "{TEST_SECRET_KEY}"', ""), encoding="utf-8")
    daemon = start_daemon(config, api_port, metrics_port)
    assert daemon.proc is not None and daemon.proc.wait(30) != 0
    assert "secrets.key: is required" in daemon.output()


# --- the key in the configuration -------------------------------------------------------------

MINIMAL = {
    "api": {"listen": "tcp:0", "public_url": "http://127.0.0.1:8080"},
    "metrics": {"listen": "tcp:0"},
}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not base64!", "is not base64"),
        ("c2hvcnQ=", "must be 32 bytes in base64, not 5 bytes"),
    ],
)
def test_a_bad_key_is_refused_naming_it(
    value: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.config import parse_config
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError, match=f"^secrets.key: {reason}"):
        parse_config({**MINIMAL, "secrets": {"key": value}}, Path("/"))
    monkeypatch.setenv("GATEWAY_SECRET_KEY", value)
    with pytest.raises(ConfigError, match=f"^GATEWAY_SECRET_KEY: {reason}"):
        parse_config(MINIMAL, Path("/"))


def test_the_key_comes_from_the_file_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.config import parse_config

    monkeypatch.delenv("GATEWAY_SECRET_KEY", raising=False)
    assert parse_config(MINIMAL, Path("/")).secret_key is None
    monkeypatch.setenv("GATEWAY_SECRET_KEY", TEST_SECRET_KEY)
    from_env = parse_config(MINIMAL, Path("/"))
    assert from_env.secret_key == base64.b64decode(TEST_SECRET_KEY)
    assert from_env.webhooks.secret_key == from_env.secret_key  # delivery decrypts with it
    other = base64.b64encode(bytes(range(32))).decode()
    from_file = parse_config({**MINIMAL, "secrets": {"key": other}}, Path("/"))
    assert from_file.secret_key == bytes(range(32))
    assert "secret_key" not in repr(from_file)  # never in a log or a traceback
