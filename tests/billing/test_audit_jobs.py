"""The daemon's own scheduled runs in the audit log (issue 19, part 6): the settlement run and
the retention purge that ``twistd -n gateway`` starts by itself are written as
``system:settlement`` and ``system:retention``, with what they made or purged, next to the
operator's actions; a biller's key still cannot read the log."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from gateway.app.process import admin_json
from gateway.mappers.cvs.mapper import RecordKind, ResultRecord, build_file
from gateway.store import create_db_engine
from gateway.store.schema import bills, data_purges
from tests.conftest import jst_today
from tests.daemon import Daemon, admin_cli, http, start_daemon, write_config
from tests.money.test_settlement_api import MONTH, PLAN
from tests.test_api import bill_body

pytestmark = pytest.mark.e2e


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def paid_at_a_store(config: Path, tmp_path: Path, barcode: str) -> None:
    """A 速報 file of one payment, applied by hand (as if from the agency's inbox)."""
    today = jst_today()
    record = ResultRecord(
        kind=RecordKind.PRELIMINARY,
        paid_on=today,
        paid_time="0930",
        barcode=barcode,
        store_code="0001234",
        customer_segment="  ",
        data_date=today,
        transfer_date=None,
        accounting_date=None,
        chain_code="000010",
    )
    file = tmp_path / "sokuho.dat"
    file.write_bytes(build_file(today, "987654", "ｼﾕｳﾉｳﾀﾞｲｺｳ", [record]))
    admin_cli(config, "import", "cvs", str(file))


def audit_lines(daemon: Daemon, op: dict[str, str], action: str) -> list[dict[str, Any]]:
    """The audit lines of ``action``, read over the admin API once there is one (the jobs run
    at start, a moment after the daemon answers)."""
    for _ in range(300):
        status, page, _ = http("GET", f"{daemon.api}/v1/support/audit?action={action}", None, op)
        assert status == 200, page
        if page["data"]:
            return list(page["data"])
        time.sleep(0.1)
    raise AssertionError(f"no {action} line in the audit log within 30 s")


def test_the_daemons_own_settlement_and_retention_runs_are_audited_as_the_system(
    tmp_path: Path, database_url: str
) -> None:
    config, api_port, metrics_port = write_config(tmp_path, database_url)
    admin_cli(config, "migrate")
    admin_cli(config, "biller", "create", "--id", "school", "--name", "学校", "--kana", "ｶﾞﾂｺｳ")
    school = headers(admin_json(config, "key", "create", "--biller", "school")["key"])
    made = admin_json(config, "key", "create", "--admin")
    op, by_key = headers(made["key"]), f"key:{made['key_id']}"

    daemon = start_daemon(config, api_port, metrics_port)
    try:
        daemon.wait("/readyz")
        # The operator gives the biller a contract from last month on: the period closed.
        path = f"/v1/billers/school/fee-plans/{MONTH}"
        status, plan, _ = http("PUT", daemon.api + path, PLAN, op)
        assert status == 201, plan
        # A bill paid at a store, then (as the clock would have it) left alone four months.
        status, bill, _ = http("POST", daemon.api + "/v1/bills", bill_body("R-1"), school)
        assert status == 201, bill
        paid_at_a_store(config, tmp_path, bill["cvs"]["barcode"])
    finally:
        assert daemon.stop() == 0
    engine = create_db_engine(database_url, 1)
    try:
        long_ago = datetime.now(UTC) - timedelta(days=125)
        with engine.begin() as conn:
            conn.execute(update(bills).where(bills.c.bill_no == "R-1").values(updated_at=long_ago))

        # Started again, the daemon runs both jobs at once, by itself.
        daemon = start_daemon(config, api_port, metrics_port)
        try:
            daemon.wait("/readyz")
            [settled] = audit_lines(daemon, op, "settlement.run")
            [purged] = audit_lines(daemon, op, "retention.purge")
            status, listed, _ = http("GET", daemon.api + "/v1/settlements", None, school)
            assert status == 200, listed
            [settlement] = listed["data"]
            status, shown, _ = http("GET", daemon.api + "/v1/bills/R-1", None, school)
            assert status == 200 and set(shown["customer"]) == {"customer_no"}  # purged
            status, log, _ = http("GET", daemon.api + "/v1/support/audit", None, op)
            assert status == 200, log
            assert http("GET", daemon.api + "/v1/support/audit", None, school)[0] == 403
        finally:
            assert daemon.stop() == 0
        with engine.connect() as conn:
            [purge_id] = conn.execute(select(data_purges.c.id)).scalars()
    finally:
        engine.dispose()

    assert (settled["actor"], settled["biller_id"]) == ("system:settlement", "school")
    assert settled["target"] == f"settlement:{settlement['settlement_id']}"
    assert settled["after"]["payout"] == settlement["payout"]
    assert settled["after"]["period"] == settlement["period"]
    assert settled["after"]["period"]["start"] == MONTH.isoformat()

    assert (purged["actor"], purged["target"]) == ("system:retention", f"data_purge:{purge_id}")
    assert purged["biller_id"] is None and purged["before"] is None
    assert purged["after"]["bills"] == 1 and purged["after"]["billers"] == {"school": 1}
    assert purged["after"]["months"] == 3
    assert "山田" not in json.dumps(purged)  # counts, never a customer

    # Newest first, next to the operator's own actions.
    [by_cli] = {a["actor"] for a in log["data"] if a["action"] == "biller.create"}
    assert by_cli.startswith("cli:")
    lines = [(a["action"], a["actor"]) for a in log["data"]]
    assert set(lines[:2]) == {
        ("settlement.run", "system:settlement"),
        ("retention.purge", "system:retention"),
    }
    assert lines[2:] == [
        ("import.cvs", by_cli),
        ("fee_plan.put", by_key),
        ("key.create", by_cli),
        ("key.create", by_cli),
        ("biller.create", by_cli),
        ("schema.migrate", by_cli),
    ]
