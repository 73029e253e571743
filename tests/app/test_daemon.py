"""The real daemon: ``twistd -n gateway`` as a subprocess, onboarded with ``gateway-admin``."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.app.process import DaemonProcess
from gateway.mappers.cvs import barcode
from gateway.store import create_db_engine
from gateway.store.schema import bills, events
from tests.conftest import due
from tests.daemon import Daemon, admin_cli, http, start_daemon, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def daemon(tmp_path: Path, database_url: str) -> Iterator[Daemon]:
    config, api_port, metrics_port = write_config(tmp_path, database_url)
    assert json.loads(admin_cli(config, "migrate").stdout)["to"]
    running = start_daemon(config, api_port, metrics_port)
    try:
        running.wait()
        yield running
    finally:
        running.stop()


def onboard(config: Path, biller_id: str) -> dict[str, str]:
    made = json.loads(
        admin_cli(
            config,
            "biller",
            "create",
            "--id",
            biller_id,
            "--name",
            "東京ガス代行",
            "--kana",
            "ﾄｳｷﾖｳｶﾞｽ",
        ).stdout
    )
    key = json.loads(admin_cli(config, "key", "create", "--biller", biller_id).stdout)
    assert key["key"].startswith("gw_") and made["code"].isdigit()
    return {
        "code": made["code"],
        "Authorization": f"Bearer {key['key']}",
        "Content-Type": "application/json",
    }


def count(url: str, table: Any) -> int:
    engine = create_db_engine(url, 1)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(table)).scalar_one()
    engine.dispose()
    return int(n)


def body(bill_no: str, amount: int = 5400) -> dict[str, Any]:
    return {
        "bill_no": bill_no,
        "amount": amount,
        "due_date": due(20),
        "channels": ["cvs", "payeasy"],
        "customer": {"customer_no": "C1", "name": "山田"},
    }


def test_daemon_serves_bills_end_to_end(daemon: Daemon, database_url: str) -> None:
    acme = onboard(daemon.config, "acme")
    rival = onboard(daemon.config, "rival")
    auth = {k: v for k, v in acme.items() if k != "code"}
    assert http("GET", daemon.metrics + "/readyz")[0] == 200

    status, bill, _ = http("POST", daemon.api + "/v1/bills", body("E2E-1"), auth)
    assert status == 201, bill
    code = barcode.parse(bill["cvs"]["barcode"])
    assert code.free_field.startswith(acme["code"]) and code.amount == 5400
    assert bill["page_url"].startswith(daemon.api + "/p/")

    # Idempotency: replay, conflict, and one effect under concurrency.
    keyed = dict(auth, **{"Idempotency-Key": "e2e-key"})
    first = http("POST", daemon.api + "/v1/bills", body("E2E-2"), keyed)
    replay = http("POST", daemon.api + "/v1/bills", body("E2E-2"), keyed)
    assert first[0] == replay[0] == 201 and first[1] == replay[1]
    assert replay[2].get("Idempotent-Replayed") == "true"
    assert http("POST", daemon.api + "/v1/bills", body("E2E-2", 999), keyed)[0] == 409

    race = dict(auth, **{"Idempotency-Key": "race"})
    with ThreadPoolExecutor(10) as pool:
        answers = list(
            pool.map(
                lambda _: http("POST", daemon.api + "/v1/bills", body("E2E-RACE"), race), range(10)
            )
        )
    assert {a[0] for a in answers} == {201}
    assert len({json.dumps(a[1], sort_keys=True) for a in answers}) == 1
    assert count(database_url, bills) == 3
    assert count(database_url, events) == 3  # one bill.created each, no more

    # Isolation: rival sees acme's bill exactly as an unknown one.
    rival_auth = {k: v for k, v in rival.items() if k != "code"}
    foreign = http("GET", daemon.api + "/v1/bills/E2E-1", None, rival_auth)
    assert foreign[0] == 404 and foreign[1]["status"] == 404

    # Errors name the field.
    status, problem, hdrs = http(
        "POST", daemon.api + "/v1/bills", dict(body("E2E-3"), amount=400_000), auth
    )
    assert status == 422 and hdrs["Content-Type"].startswith("application/problem+json")
    assert [e["field"] for e in problem["errors"]] == ["amount"]

    rc = daemon.stop()
    assert rc == 0
    out = daemon.output()
    assert "Store stopped" in out and "Server Shut Down" in out
    assert "gw_" not in out  # API keys never reach the log


def test_readyz_is_false_until_the_schema_is_migrated(tmp_path: Path, database_url: str) -> None:
    config, api_port, metrics_port = write_config(tmp_path, database_url)
    daemon = start_daemon(config, api_port, metrics_port)
    try:
        daemon.wait()
        status, doc, _ = http("GET", daemon.metrics + "/readyz")
        assert status == 503 and doc["ready"] is False
        assert "gateway-admin migrate" in doc["checks"]["store"]
        admin_cli(config, "migrate")
        assert http("GET", daemon.metrics + "/readyz")[0] == 200
    finally:
        assert daemon.stop() == 0


def test_migrate_on_start_with_json_logs(tmp_path: Path, database_url: str) -> None:
    config, api_port, metrics_port = write_config(tmp_path, database_url, migrate_on_start=True)
    daemon = DaemonProcess.start(
        config, api_port, metrics_port, twistd_args=("--logger", "gateway.app.logs.json_observer")
    )
    try:
        daemon.wait()
        assert http("GET", daemon.metrics + "/readyz")[0] == 200
    finally:
        daemon.stop()
    records = [json.loads(line) for line in daemon.output().splitlines() if line.strip()]
    assert any(
        r.get("log_namespace") == "gateway.protocols.listen" and r.get("name") == "api"
        for r in records
    )
    assert any("Schema migrated" in r.get("log_format", "") for r in records)


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ('[cvs.link]\nlisten = "tcp:notaport"\n', "cvs.link.listen"),
        ('[bills]\nmax_due_days = "soon"\n', "bills.max_due_days"),
        ("[surprise]\nx = 1\n", "surprise"),
    ],
)
def test_bad_config_stops_the_daemon_before_it_listens(
    tmp_path: Path, extra: str, path: str
) -> None:
    config, api_port, metrics_port = write_config(
        tmp_path, f"sqlite:///{tmp_path}/g.sqlite3", extra=extra
    )
    daemon = start_daemon(config, api_port, metrics_port)
    rc = daemon.proc.wait(30)
    assert rc != 0
    assert f"configuration error: {path}:" in daemon.output()
    with socket.socket() as s, pytest.raises(OSError):
        s.connect(("127.0.0.1", api_port))


def test_a_port_in_use_stops_the_daemon(tmp_path: Path, database_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config, _, metrics_port = write_config(
            tmp_path, database_url, api=f"tcp:{port}:interface=127.0.0.1"
        )
        daemon = start_daemon(config, port, metrics_port)
        assert daemon.proc.wait(30) == 1
        assert "api cannot listen" in daemon.output()


def test_admin_commands_fail_with_one_line(tmp_path: Path, database_url: str) -> None:
    config, _, _ = write_config(tmp_path, database_url)
    admin_cli(config, "migrate")
    again = json.loads(admin_cli(config, "migrate").stdout)
    assert again["from"] == again["to"]  # safe to run twice
    onboard(config, "acme")
    for args in (
        ["biller", "create", "--id", "acme", "--name", "x", "--kana", "ﾃｽﾄ"],
        ["biller", "create", "--id", "Bad Id", "--name", "x", "--kana", "ﾃｽﾄ"],
        ["biller", "create", "--id", "b2", "--name", "x", "--kana", "ﾃｽﾄｮ"],  # small kana
        ["biller", "create", "--id", "b3", "--name", "x", "--kana", "ﾃｽﾄ", "--channels", "fax"],
        ["key", "create", "--biller", "nobody"],
        ["key", "create"],
    ):
        proc = admin_cli(config, *args, ok=False)
        assert proc.returncode == 1, args
        assert proc.stderr.startswith("gateway-admin: ") and proc.stderr.count("\n") == 1, (
            args,
            proc.stderr,
        )
    made = json.loads(
        admin_cli(
            config, "biller", "create", "--id", "second", "--name", "x", "--kana", "ﾃｽﾄ"
        ).stdout
    )
    assert made["code"] == "00002"


def test_certs_make(tmp_path: Path) -> None:
    config, _, _ = write_config(tmp_path, f"sqlite:///{tmp_path}/g.sqlite3")
    made = json.loads(admin_cli(config, "certs", "make", str(tmp_path / "tls")).stdout)
    for name in ("ca", "gateway", "gateway_key", "cvs-agency", "mpn-center", "bank"):
        assert Path(made[name]).is_file()
    assert (tmp_path / "tls" / "gateway.key").stat().st_mode & 0o777 == 0o600
    refused = admin_cli(config, "certs", "make", str(tmp_path / "tls"), ok=False)
    assert refused.returncode == 1 and "exists" in refused.stderr


@pytest.mark.parametrize("option", ["mail.ca", "cvs.link.ca"])
def test_a_file_the_config_names_that_cannot_be_read_stops_the_daemon_in_one_line(
    tmp_path: Path, option: str
) -> None:
    """A CA file that does not exist is found when the service is built, after the config was
    parsed: the daemon exits non-zero with one line naming the option, not a traceback, and
    nothing listens."""
    missing = tmp_path / "no-such-ca.pem"
    tls = tmp_path / "tls"
    admin_cli(tmp_path / "unused.toml", "certs", "make", str(tls))
    if option == "mail.ca":
        extra = (
            '[mail]\nrelay = "tcp:127.0.0.1:2525"\nsender = "billing@example.jp"\n'
            f'ca = "{missing}"\n'
        )
    else:
        extra = (
            f'[tls]\nca = "{tls}/ca.pem"\ncertificate = "{tls}/gateway.pem"\n'
            f'key = "{tls}/gateway.key"\n\n[cvs.link]\nlisten = "tcp:0:interface=127.0.0.1"\n'
            f'peers = ["cvs-agency"]\nca = "{missing}"\n'
        )
    config, api_port, metrics_port = write_config(
        tmp_path, f"sqlite:///{tmp_path}/g.sqlite3", extra=extra
    )
    daemon = start_daemon(config, api_port, metrics_port)
    assert daemon.proc.wait(30) != 0
    output = daemon.output()
    assert f"configuration error: {option}:" in output
    assert "Traceback" not in output
    with socket.socket() as s, pytest.raises(OSError):
        s.connect(("127.0.0.1", api_port))
