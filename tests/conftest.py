"""Shared fixtures.

The suite runs on SQLite (a file in the test's temp dir). With GATEWAY_TEST_DATABASE_URL set
(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) every test that needs a database gets
a database of its own on that server, created and dropped around it, so runs cannot collide.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.engine import make_url
from twisted.logger import formatEvent, globalLogPublisher

from gateway.app.admin.commands import main as admin_main
from gateway.config import Config, load_config
from gateway.model import JST
from gateway.store import create_db_engine
from gateway.store.migrate import migrate
from gateway.store.schema import payments, settlement_lines, settlements

DB_ENV = "GATEWAY_TEST_DATABASE_URL"


@contextlib.contextmanager
def logged() -> Iterator[list[str]]:
    """Every log event published while the block runs, formatted as the daemon's log writes it
    (to check what a log line says, and that it says nothing personal)."""
    lines: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        lines.append(formatEvent(event) or "")

    globalLogPublisher.addObserver(observe)
    try:
        yield lines
    finally:
        globalLogPublisher.removeObserver(observe)


def on_postgres() -> bool:
    return bool(os.environ.get(DB_ENV))


def check_settlements_reconcile(url: str) -> None:
    """For every settlement a test stored: its lines add up to its payout, to the yen, the
    payout is never negative, and the payments it took add up to what it says it collected.

    Run at the teardown of every test database, so it covers every settlement of the suite.
    """
    engine = create_db_engine(url, 1)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("settlement_lines"):
                return
            lines = (
                select(func.coalesce(func.sum(settlement_lines.c.amount), 0))
                .where(settlement_lines.c.settlement_id == settlements.c.settlement_id)
                .scalar_subquery()
            )
            taken = (
                select(func.coalesce(func.sum(payments.c.amount), 0))
                .where(payments.c.settlement_id == settlements.c.settlement_id)
                .scalar_subquery()
            )
            rows = conn.execute(
                select(
                    settlements.c.settlement_id,
                    settlements.c.payout,
                    lines,
                    settlements.c.collected,
                    taken,
                )
            ).all()
    finally:
        engine.dispose()
    for settlement_id, payout, lines_total, collected, taken_total in rows:
        assert int(lines_total) == int(payout) >= 0, settlement_id
        assert int(taken_total) == int(collected), settlement_id


@contextlib.contextmanager
def server_database(template: str | None = None) -> Iterator[str]:
    """A database of its own on the GATEWAY_TEST_DATABASE_URL server, dropped afterwards
    (a copy of ``template`` when given)."""
    base = os.environ[DB_ENV]
    name = "gwtest_" + secrets.token_hex(6)
    server = create_engine(base, isolation_level="AUTOCOMMIT")
    copy = f' TEMPLATE "{template}"' if template else ""
    with server.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"{copy}')
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
        check_settlements_reconcile(url)
    finally:
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file in the test's temp dir, or one on the server."""
    if not on_postgres():
        path = tmp_path / "gateway.sqlite3"
        yield f"sqlite:///{path}"
        if path.exists():
            check_settlements_reconcile(f"sqlite:///{path}")
        return
    with server_database() as url:
        yield url


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database migrated once per run, that each ``migrated_url`` starts as a copy
    of (0.3 s on PostgreSQL instead of a 1 s create-and-migrate per test). The tests that
    start the daemon on an empty ``database_url`` still migrate it themselves."""
    if on_postgres():
        with server_database() as url:
            engine = create_db_engine(url, 1)
            migrate(engine)
            engine.dispose()  # CREATE DATABASE … TEMPLATE needs it unused
            yield make_url(url).database or ""
        return
    path = tmp_path_factory.mktemp("template") / "gateway.sqlite3"
    engine = create_db_engine(f"sqlite:///{path}", 1)
    migrate(engine)
    engine.dispose()  # the last connection's close checkpoints the WAL into the file
    yield str(path)


@pytest.fixture
def migrated_url(tmp_path: Path, migrated_template: str) -> Iterator[str]:
    """A database at the newest schema, a copy of the run's migrated template."""
    if on_postgres():
        with server_database(template=migrated_template) as url:
            yield url
        return
    path = tmp_path / "gateway.sqlite3"
    shutil.copyfile(migrated_template, path)
    yield f"sqlite:///{path}"
    check_settlements_reconcile(f"sqlite:///{path}")


def jst_today() -> date:
    from datetime import datetime

    return datetime.now(JST).date()


def due(days: int = 30) -> str:
    return (jst_today() + timedelta(days=days)).isoformat()


#: [secrets] key of the test configuration (page tokens, webhook secrets): 32 bytes in base64.
TEST_SECRET_KEY = "dGVzdC1zZWNyZXQta2V5LW9mLTMyLWJ5dGVzLWxvbmc="


def config_text(
    database_url: str,
    api: str = "tcp:0:interface=127.0.0.1",
    metrics: str = "tcp:0:interface=127.0.0.1",
    public_url: str = "http://127.0.0.1:8080",
    extra: str = "",
    webhooks: str = 'allowed_networks = ["127.0.0.0/8"]\n',
) -> str:
    """The test configuration; ``extra`` goes at the end (after [zengin]), ``webhooks`` is the
    body of the [webhooks] section (by default: receivers on 127.0.0.0/8 may be reached)."""
    return f"""
[database]
url = "{database_url}"
pool_size = 4

[api]
listen = "{api}"
public_url = "{public_url}"
auth_cache_seconds = 0

[metrics]
listen = "{metrics}"

[secrets]
key = "{TEST_SECRET_KEY}"

[cvs]
company_code = "987654"
ceiling = 300000

[mpn]
institution_code = "58191"
number_key = "5e1f0c2a9b7d4e6f8a3c1b2d0e9f7a6c"

[webhooks]
{webhooks}
[zengin]
outbox = "var/outbox/zengin"
inbox = "var/inbox/zengin"
{extra}
"""


def admin(config_path: Path, *args: str) -> dict[str, Any]:
    """Run a gateway-admin command in-process; fail the test on a non-zero exit."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = admin_main(["-c", str(config_path), *args])
    assert rc == 0, f"gateway-admin {' '.join(args)} failed"
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


@dataclass
class Biller:
    biller_id: str
    code: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}


def onboard(config_path: Path, biller_id: str, channels: str = "cvs,payeasy,transfer") -> Biller:
    made = admin(
        config_path,
        "biller",
        "create",
        "--id",
        biller_id,
        "--name",
        f"{biller_id} 株式会社",
        "--kana",
        "ﾃｽﾄ",
        "--channels",
        channels,
    )
    key = admin(config_path, "key", "create", "--biller", biller_id)
    return Biller(biller_id, made["code"], key["key"])


@dataclass
class Running:
    config: Config
    config_path: Path
    api: str
    metrics: str

    def onboard(self, biller_id: str, channels: str = "cvs,payeasy,transfer") -> Biller:
        return onboard(self.config_path, biller_id, channels)

    async def request(
        self,
        method: str,
        path: str,
        who: Biller | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any, Any]:
        """(status, decoded JSON or text, response headers)."""
        h = dict(who.headers) if who else {}
        h.update(headers or {})
        data = (
            raw
            if raw is not None
            else (json.dumps(body, ensure_ascii=False).encode() if body is not None else None)
        )
        resp = await treq.request(method, self.api + path, headers=h, data=data)
        content = await resp.content()
        ctype = resp.headers.getRawHeaders("content-type", [""])[0]
        decoded: Any = json.loads(content) if "json" in ctype else content.decode()
        return resp.code, decoded, resp.headers


@pytest.fixture
def gateway_extra() -> str:
    """More configuration for the ``gateway`` fixture (a module overrides this fixture)."""
    return ""


@pytest.fixture
def gateway_config(migrated_url: str, gateway_extra: str) -> str:
    """The ``gateway`` fixture's whole configuration file (a module overrides this fixture to
    run the service with another one)."""
    return config_text(migrated_url, extra=gateway_extra)


@pytest_twisted.async_yield_fixture
async def gateway(tmp_path: Path, gateway_config: str) -> AsyncIterator[Running]:
    """The real service (make_service) in this process, listening on 127.0.0.1:0."""
    from twisted.internet import reactor  # noqa: TID251 - tests drive the real reactor

    from gateway.app.service import make_service

    path = tmp_path / "gateway.toml"
    path.write_text(gateway_config, encoding="utf-8")
    config = load_config(path)
    top = make_service(config, reactor)
    top.startService()
    api = top.getServiceNamed("api")
    metrics = top.getServiceNamed("metrics")
    api_port = await api.listening  # type: ignore[attr-defined]
    metrics_port = await metrics.listening  # type: ignore[attr-defined]
    try:
        yield Running(
            config,
            path,
            f"http://127.0.0.1:{api_port.getHost().port}",
            f"http://127.0.0.1:{metrics_port.getHost().port}",
        )
    finally:
        await top.stopService()
