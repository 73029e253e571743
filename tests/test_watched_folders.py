"""Attacks on the folders the daemon reads and writes (issue 14, finding 3), on the real daemon.

Whoever can write to a watched folder (a peer's upload account, a biller's SFTP folder) may
leave there a symbolic link to a file the daemon can read or write, a FIFO, or a huge file;
or plant a link at a name the daemon is about to write (its output, its temporary file, a
``done/`` or ``rejected/`` folder). None of these may make the daemon read, show or overwrite
anything outside the folder, or hang.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import calendar
from gateway.app.process import DaemonProcess, admin_json, http
from gateway.protocols.inbox import MAX_FILE_BYTES
from tests.billing.test_bulk_api import csv_text, line
from tests.billing.test_mandates_api import ACCOUNT
from tests.conftest import jst_today
from tests.daemon import admin_cli, write_config
from tests.test_api import bill_body

pytestmark = pytest.mark.e2e

CANARY = b"CANARY-4242-SECRET"
# A file the daemon's user may read: would a parser quote it, the canary would show (the bill
# inbox names a bill_no twice in its errors file; the result-file parsers quote bad records).
SECRET = csv_text(line(CANARY.decode()), line(CANARY.decode())).encode()

FOLDERS = """poll_interval = 0.1

[cvs.files]
inbox = "var/inbox/cvs"
poll_interval = 0.1

[bulk]
inbox = "var/inbox/bills"
poll_interval = 0.1

[payouts]
consignor_code = "0000000001"
consignor_name = "ｷﾖｳﾄﾞｳｼﾕｳﾉｳｾﾝﾀ-"
account = "0001-001-1-1234567"
outbox = "var/outbox/payouts"
inbox = "var/inbox/payouts"
poll_interval = 0.1
"""


class Gateway:
    def __init__(self, root: Path, daemon: DaemonProcess) -> None:
        self.root = root
        self.daemon = daemon
        self.cvs = root / "var" / "inbox" / "cvs"
        self.zengin = root / "var" / "inbox" / "zengin"
        self.outbox = root / "var" / "outbox" / "zengin"
        self.bills = root / "var" / "inbox" / "bills" / "acme"
        self.payouts = root / "var" / "inbox" / "payouts"

    def metrics(self) -> str:
        _, text, _ = http("GET", self.daemon.metrics + "/metrics")
        return str(text)


@pytest.fixture
def gateway(tmp_path: Path, migrated_url: str) -> Iterator[Gateway]:
    config, api_port, metrics_port = write_config(tmp_path, migrated_url, extra=FOLDERS)
    admin_cli(config, "biller", "create", "--id", "acme", "--name", "ACME", "--kana", "ｱｸﾒ")
    daemon = DaemonProcess.start(config, api_port, metrics_port)
    try:
        daemon.wait("/readyz")
        gw = Gateway(tmp_path, daemon)
        for folder in (gw.cvs, gw.zengin, gw.bills.parent, gw.payouts):
            wait_until(folder.is_dir)  # made by the daemon
        gw.bills.mkdir()  # the biller's folder: made by the operator
        yield gw
    finally:
        assert daemon.stop() == 0


def wait_until(ready: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ready()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not so after {timeout}s: {ready}")


def set_aside(folder: Path, name: str) -> str:
    """Wait until the daemon has moved ``name`` to ``rejected/`` (the report is written just
    before the move); its report."""
    report = folder / "rejected" / f"{name}.report.txt"
    wait_until(lambda: report.exists() and os.path.lexists(folder / "rejected" / name))
    assert not os.path.lexists(folder / name)
    return report.read_text(encoding="utf-8")


def files_holding(root: Path, needle: bytes, but: tuple[Path, ...]) -> list[Path]:
    """Every regular file under ``root`` (links not followed) whose bytes contain ``needle``."""
    found = []
    for top, _, names in os.walk(root):  # followlinks=False
        for name in names:
            path = Path(top) / name
            if path in but or path.is_symlink() or not path.is_file():
                continue
            if needle in path.read_bytes():
                found.append(path)
    return found


def test_a_link_in_each_watched_folder_is_set_aside_unread(gateway: Gateway) -> None:
    secret = gateway.root / "secret.csv"
    secret.write_bytes(SECRET)
    links = {
        gateway.cvs: "kakuho-20261202.txt",
        gateway.zengin: "RESULT_ZENGIN91.txt",
        gateway.bills: "december.csv",
        gateway.payouts: "RETURN_SOGO21_0000000001_1202.txt",
    }
    for folder, name in links.items():
        (folder / name).symlink_to(secret)

    for folder, name in links.items():
        report = set_aside(folder, name)
        assert "symbolic link" in report and "not read" in report
        moved = folder / "rejected" / name
        assert moved.is_symlink() and os.readlink(moved) == str(secret)  # moved as a link
    assert secret.read_bytes() == SECRET  # the target is untouched

    # The biller's answer says why, as for any refused file; nothing of the target is in it.
    errors = (gateway.bills / "december.errors.csv").read_bytes().decode("utf-8-sig")
    assert errors.startswith("row,column,message\r\n,file,") and "a symbolic link" in errors
    assert files_holding(gateway.root, CANARY, but=(secret,)) == []  # no output, no log
    metrics = gateway.metrics()
    for network in ("cvs", "zengin", "bills", "payouts"):
        assert (
            f'gateway_inbox_refused_files_total{{network="{network}",reason="symlink"}} 1.0'
        ) in metrics
        assert f'gateway_inbox_files_total{{network="{network}",result="rejected"}} 1.0' in metrics
    assert 'gateway_bulk_files_total{result="refused",source="inbox"} 1.0' in metrics


def test_a_linked_done_or_rejected_folder_is_not_followed(gateway: Gateway) -> None:
    elsewhere = gateway.root / "elsewhere"
    elsewhere.mkdir()
    (gateway.zengin / "rejected").symlink_to(elsewhere, target_is_directory=True)
    (gateway.zengin / "garbage.txt").write_bytes(b"not a zengin file\r\n")

    assert "nothing of this file was applied" in set_aside(gateway.zengin, "garbage.txt")
    assert not (gateway.zengin / "rejected").is_symlink()
    assert (gateway.zengin / "rejected" / "garbage.txt").read_bytes() == b"not a zengin file\r\n"
    assert list(elsewhere.iterdir()) == []  # nothing was moved through the link
    aside = [p for p in gateway.zengin.iterdir() if p.name.startswith(".rejected.refused-")]
    assert len(aside) == 1 and os.readlink(aside[0]) == str(elsewhere)  # kept, as it was


def test_a_fifo_a_directory_and_an_oversize_file_are_refused_without_hanging(
    gateway: Gateway,
) -> None:
    os.mkfifo(gateway.cvs / "a-pipe.txt")  # opening it for reading would wait for a writer
    (gateway.cvs / "b-folder").mkdir()
    with (gateway.cvs / "c-huge.txt").open("wb") as f:  # sparse: nothing to read in the test
        f.truncate(MAX_FILE_BYTES + 1)

    assert "a FIFO" in set_aside(gateway.cvs, "a-pipe.txt")
    assert "a directory" in set_aside(gateway.cvs, "b-folder")
    report = set_aside(gateway.cvs, "c-huge.txt")
    assert f"{MAX_FILE_BYTES + 1:,} bytes, over the limit of {MAX_FILE_BYTES:,}" in report
    assert "not read" in report
    assert http("GET", gateway.daemon.metrics + "/healthz")[0] == 200  # still answering
    metrics = gateway.metrics()
    assert 'gateway_inbox_refused_files_total{network="cvs",reason="not_regular"} 2.0' in metrics
    assert 'gateway_inbox_refused_files_total{network="cvs",reason="too_large"} 1.0' in metrics


def test_links_at_the_names_the_bill_inbox_writes_are_not_followed(gateway: Gateway) -> None:
    folder = gateway.bills
    (folder / "rejected").mkdir()
    victims = {
        folder / "bad.errors.csv": gateway.root / "victim-output",
        folder / ".bad.errors.csv.tmp": gateway.root / "victim-temp",  # the old temporary name
        folder / "rejected" / ".bad.csv.report.txt.tmp": gateway.root / "victim-report",
    }
    for link, victim in victims.items():
        victim.write_bytes(b"precious")
        link.symlink_to(victim)

    (folder / "bad.csv").write_bytes(csv_text(line("A-1", amount="0")).encode())
    set_aside(folder, "bad.csv")
    for victim in victims.values():
        assert victim.read_bytes() == b"precious"
    written = folder / "bad.errors.csv"
    assert not written.is_symlink() and b"amount" in written.read_bytes()


def test_links_at_the_names_of_the_zengin_outbox_are_not_followed(
    gateway: Gateway, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.toml"
    admin_cli(
        config,
        "biller",
        "zengin",
        "--id",
        "acme",
        "--consignor-code",
        "1234567890",
        "--account",
        "0001-001-1-1234567",
    )
    key = admin_json(config, "key", "create", "--biller", "acme")["key"]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    day = calendar.add_business_days(jst_today(), 3)
    assert http("PUT", gateway.daemon.api + "/v1/mandates/C1", ACCOUNT, headers)[0] == 201
    body = bill_body("B-1", amount=3000, due_date=day.isoformat())
    body["customer"] = {**body["customer"], "customer_no": "C1"}
    assert http("POST", gateway.daemon.api + "/v1/bills", body, headers)[0] == 201

    # The request's file name is predictable (consignor, date, serial): links at it and at the
    # temporary name the gateway used to write it under, for the first few serials.
    gateway.outbox.mkdir(parents=True, exist_ok=True)
    victims = []
    for serial in range(1, 6):
        name = f"ZENGIN91_1234567890_{day:%Y%m%d}_{serial:08d}.txt"
        for planted in (name, f".{name}.tmp"):
            victim = tmp_path / f"victim{len(victims)}"
            victim.write_bytes(b"precious")
            (gateway.outbox / planted).symlink_to(victim)
            victims.append(victim)

    made = admin_json(config, "zengin", "request", "--date", day.isoformat())
    (written,) = made["files"]
    path = Path(written["file"])
    assert not path.is_symlink() and path.read_bytes().startswith(b"1")  # the request itself
    assert [v.read_bytes() for v in victims] == [b"precious"] * len(victims)


def test_a_report_written_to_a_folder_does_not_follow_a_link(gateway: Gateway) -> None:
    """``gateway-admin report daily --output`` into a folder others can write to: a link at the
    output name is replaced, never written through."""
    shared = gateway.root / "shared"
    shared.mkdir()
    victim = gateway.root / "victim"
    victim.write_bytes(b"precious")
    (shared / "daily.csv").symlink_to(victim)
    day = jst_today().isoformat()
    admin_cli(
        gateway.root / "gateway.toml",
        *("report", "daily", "--biller", "acme", "--from", day, "--to", day),
        *("--output", str(shared / "daily.csv")),
    )
    assert victim.read_bytes() == b"precious"
    written = shared / "daily.csv"
    assert not written.is_symlink() and written.read_bytes().startswith(b"\xef\xbb\xbf")
