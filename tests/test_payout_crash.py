"""A payout file and a crash between writing it and committing it: every settlement is paid out
exactly once, through the real daemon and the simulated bank.

The daemon kills itself (``GATEWAY_TEST_CRASH_AT=payout.after_file``, gateway/infra/crashpoints.py)
when the 総合振込 file is in the outbox and the transaction that marks it written is not
committed. The settlements were recorded with their file (``pending``) before it was written, so
the restarted daemon writes the same file again: same name, same bytes. Whether the bank took
the first copy before the restart (it then sees the same file twice and pays nothing twice) or
not (the second copy replaces the first in the outbox), each settlement is in one file, the bank
pays it once, and its amount is the settlement's payout. The same on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway import calendar
from gateway.app.process import BIN, DaemonProcess, admin_json, http
from gateway.infra.crashpoints import ENV as CRASH_ENV
from gateway.store import create_db_engine
from gateway.store.schema import payout_files, payout_items, settlements
from simulators.zengin_payouts import PayoutBank
from tests.conftest import jst_today
from tests.daemon import admin_cli, write_config
from tests.test_payouts_e2e import ACCOUNTS, PAYOUTS, last_month, paid_last_month

pytestmark = pytest.mark.e2e


def start(
    config: Path, api_port: int, metrics_port: int, crash_at: str, life: int
) -> DaemonProcess:
    log = config.parent / f"twistd-{life}.log"
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at:
        env[CRASH_ENV] = crash_at
    daemon = DaemonProcess(
        config, log, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}"
    )
    with log.open("wb") as out:
        daemon.proc = subprocess.Popen(
            [str(BIN / "twistd"), "-n", "--pidfile=", "gateway", "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=config.parent,
            env=env,
        )
    return daemon


def stored(url: str) -> tuple[list[tuple[str, int]], list[tuple[str, str]], int]:
    """(settlement id, payout) of every settlement; (file name, status) of every payout file;
    how many payout items."""
    engine = create_db_engine(url, 1)
    try:
        with engine.connect() as conn:
            made = conn.execute(
                select(settlements.c.settlement_id, settlements.c.payout).order_by(
                    settlements.c.settlement_id
                )
            ).all()
            files = conn.execute(
                select(payout_files.c.file_name, payout_files.c.status).order_by(payout_files.c.id)
            ).all()
            items = conn.execute(select(func.count()).select_from(payout_items)).scalar_one()
    finally:
        engine.dispose()
    return [(s, int(p)) for s, p in made], [(n, st) for n, st in files], int(items)


@pytest.mark.parametrize("bank_took_the_first_copy", [True, False])
def test_a_crash_between_the_file_and_its_commit_pays_every_settlement_once(
    tmp_path: Path, migrated_url: str, bank_took_the_first_copy: bool
) -> None:
    config, api_port, metrics_port = write_config(tmp_path, migrated_url, extra=PAYOUTS)
    today = jst_today()
    first, _ = last_month(today)
    plan = tmp_path / "plan.json"
    plan.write_text(
        f'{{"effective_from": "{first}", "cycle": "monthly", "payout_days": 1,'
        ' "channels": {"cvs": {"per_payment": 60}}}'
    )
    for biller, (number, holder) in ACCOUNTS.items():
        admin_cli(config, "biller", "create", "--id", biller, "--name", biller, "--kana", "ｱｸﾒ")
        admin_cli(config, "contract", "set", "--biller", biller, "--plan", str(plan))
        admin_cli(
            config, "biller", "payout-account", "--id", biller, "--account", number,
            "--holder", holder,
        )  # fmt: skip
    admin_key = admin_json(config, "key", "create", "--admin")["key"]
    headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"}
    paid_last_month(config, migrated_url, first)
    outbox = tmp_path / "var" / "outbox" / "payouts"
    bank = PayoutBank(
        outbox, tmp_path / "var" / "inbox" / "payouts", tmp_path / "bank", mix={"0": 1}
    )

    daemon = start(config, api_port, metrics_port, "payout.after_file", 1)
    try:
        daemon.wait("/readyz", timeout=60)
        deadline = time.monotonic() + 60
        while len(stored(migrated_url)[0]) < 2:  # the start-up settlement run
            assert time.monotonic() < deadline, daemon.output()
            time.sleep(0.1)
        made, _, _ = stored(migrated_url)
        day = calendar.on_or_after(today)
        body: dict[str, Any] = {"transfer_date": str(day)}
        with pytest.raises(OSError):  # the daemon dies before it answers
            http("POST", daemon.api + "/v1/admin/payouts", body, headers, timeout=60)
        assert daemon.proc is not None
        assert daemon.proc.wait(60) == -signal.SIGKILL
        assert "crash point payout.after_file: pass 1," in daemon.output()
        _, files, items = stored(migrated_url)
        assert [status for _, status in files] == ["pending"] and items == 2
        ((name, _),) = files
        first_copy = (outbox / name).read_bytes()
        if bank_took_the_first_copy:
            assert bank.process_once() == [] and len(bank.record()) == 2

        daemon = start(config, api_port, metrics_port, "", 2)
        daemon.wait("/readyz", timeout=60)
        deadline = time.monotonic() + 60
        while stored(migrated_url)[1] != [(name, "written")]:  # the job's first tick
            assert time.monotonic() < deadline, daemon.output()
            time.sleep(0.1)
        assert (outbox / name).read_bytes() == first_copy  # the same file, byte for byte
        bank.process_once()
        assert len(bank.duplicated) == (1 if bank_took_the_first_copy else 0)

        status, again, _ = http("POST", daemon.api + "/v1/admin/payouts", body, headers)
        assert status == 200 and again["file"] is None  # nothing left to carry
    finally:
        daemon.stop()

    _, files, items = stored(migrated_url)
    assert files == [(name, "written")] and items == 2
    paid = sorted(e.amount for e in bank.paid())
    assert len(bank.record()) == 2  # one transfer per settlement, whatever the bank saw
    assert paid == sorted(payout for _, payout in made)
