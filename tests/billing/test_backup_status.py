"""``gateway-admin backup`` (issue 19, part 7) and ``gateway-admin status``: a backup taken
while the daemon runs restores to a whole ledger; the status shows the store, what waits and
the daemon's readiness."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import pytest_twisted
from sqlalchemy import func, select
from twisted.internet.threads import deferToThread

from gateway.model import MessageKind
from gateway.store import create_db_engine
from gateway.store.schema import audit_log, bills, collection_messages, events, payments
from tests.billing.test_payments_api import pay
from tests.billing.test_support_desk import admin_fails, double_paid
from tests.conftest import Running, admin, config_text, on_postgres
from tests.test_api import bill_body

TABLES = (bills, payments, collection_messages, events, audit_log)


def counts(url: str) -> dict[str, int]:
    engine = create_db_engine(url, 1)
    try:
        with engine.connect() as conn:
            return {
                t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in TABLES
            }
    finally:
        engine.dispose()


async def some_ledger(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    await double_paid(gateway, acme, "B-1")
    _, bill, _ = await gateway.request("POST", "/v1/bills", acme, bill_body("B-2"))
    assert pay(gateway, bill["cvs"]["barcode"], MessageKind.PRELIMINARY) == "applied"


@pytest.mark.skipif(on_postgres(), reason="the online backup is SQLite's; see the pg_dump test")
@pytest_twisted.ensureDeferred
async def test_a_backup_restores_a_whole_ledger(gateway: Running, tmp_path: Path) -> None:
    await some_ledger(gateway)
    copy = tmp_path / "backup.sqlite3"
    done = admin(gateway.config_path, "backup", str(copy))  # the daemon is running
    assert done["file"] == str(copy) and done["bytes"] > 0
    assert "already exists" in admin_fails(gateway.config_path, "backup", str(copy))

    # restore: the copy becomes the database of another configuration
    restored = tmp_path / "restored" / "gateway.sqlite3"
    restored.parent.mkdir()
    shutil.copyfile(copy, restored)
    url = f"sqlite:///{restored}"
    config = tmp_path / "restored.toml"
    config.write_text(config_text(url), encoding="utf-8")
    assert counts(url) == counts(gateway.config.database.url)
    assert counts(url)["payments"] == 3
    before = admin(gateway.config_path, "bill", "show", "--biller", "acme", "--bill", "B-1")
    after = admin(config, "bill", "show", "--biller", "acme", "--bill", "B-1")
    assert after == before and len(after["payments"]) == 2
    status = admin(config, "status")
    assert status["store"]["state"] == "ok"
    assert status["backlogs"]["refund_cases_open"] == 1


@pytest.mark.skipif(not on_postgres(), reason="PostgreSQL's procedure (docs/operations.md)")
@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed")
@pytest_twisted.ensureDeferred
async def test_pg_dump_and_pg_restore_give_a_whole_ledger(gateway: Running, tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    from tests.conftest import server_database

    await some_ledger(gateway)
    url = make_url(gateway.config.database.url)
    dump = tmp_path / "gateway.dump"
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run(["pg_dump", "--format=custom", "--file", str(dump), libpq], check=True)
    assert "backup: the database is not a SQLite file" in admin_fails(
        gateway.config_path, "backup", str(tmp_path / "x")
    )
    with server_database() as target:
        libpq_target = make_url(target).set(drivername="postgresql")
        subprocess.run(
            [
                "pg_restore",
                "--no-owner",
                "--dbname",
                libpq_target.render_as_string(hide_password=False),
                str(dump),
            ],
            check=True,
        )
        assert counts(target) == counts(gateway.config.database.url)


@pytest_twisted.ensureDeferred
async def test_the_status_shows_store_backlogs_and_the_daemon(gateway: Running) -> None:
    await some_ledger(gateway)
    # the daemon answers on this process's reactor: the command waits for it in a thread
    status = await deferToThread(admin, gateway.config_path, "status", "--url", gateway.metrics)
    assert status["store"]["state"] == "ok"
    assert status["store"]["revision"] == status["store"]["head"]
    assert status["backlogs"]["refund_cases_open"] == 1
    assert status["backlogs"]["webhook_deliveries"] == {"due": 0, "retrying": 0, "in_flight": 0}
    assert status["daemon"]["status"] == 200  # with /readyz's own answer beside it
    assert len(status["daemon"]) > 1
    assert status["inboxes"]["zengin"]["path"].endswith("var/inbox/zengin")
    # a daemon that does not answer is said so, not a failure of the command
    gone = admin(gateway.config_path, "status", "--url", "http://127.0.0.1:9")
    assert gone["daemon"]["status"] is None and "error" in gone["daemon"]
