"""The billers' watched folder of bulk files ([bulk] inbox), in the real service."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.task import deferLater

from gateway.mappers.bills_csv import ERROR_COLUMNS
from gateway.store.schema import bill_batches, bills, events
from tests.billing.test_bulk_api import (
    assert_result_matches_bills,
    count,
    csv_text,
    line,
    parse_result,
    post_csv,
)
from tests.conftest import Running, admin


@pytest.fixture
def gateway_extra() -> str:
    return '\n[bulk]\ninbox = "var/inbox/bills"\npoll_interval = 0.05\n'


def inbox(gateway: Running) -> Path:
    assert gateway.config.bulk is not None
    return gateway.config.bulk.inbox


def drop(folder: Path, name: str, data: bytes) -> Path:
    """As a biller's upload should: under a .part name, then renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / (name + ".part")
    part.write_bytes(data)
    part.rename(folder / name)
    return folder / name


async def pause(seconds: float) -> None:
    from twisted.internet import reactor  # noqa: TID251 - tests drive the real reactor

    await deferLater(reactor, seconds, lambda: None)


async def settled(path: Path, seconds: float = 15.0) -> str:
    """Wait until the watcher has moved ``path``: 'done' or 'rejected'."""
    for _ in range(int(seconds / 0.05)):
        for outcome in ("done", "rejected"):
            if (path.parent / outcome / path.name).exists():
                return outcome
        await pause(0.05)
    raise AssertionError(f"{path} was not taken within {seconds}s")


def read_errors(data: bytes, encoding: str) -> list[dict[str, str]]:
    text = data[3:].decode() if encoding == "utf-8" else data.decode("cp932")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == ERROR_COLUMNS
    return list(reader)


@pytest.mark.parametrize("codec", ["utf-8-sig", "cp932"])
@pytest_twisted.ensureDeferred
async def test_a_dropped_file_is_registered_and_answered_beside_it(
    gateway: Running, codec: str
) -> None:
    acme = gateway.onboard("acme")
    folder = inbox(gateway) / "acme"
    data = csv_text(line("F-1"), line("F-2", name="髙橋")).encode(codec)
    path = drop(folder, "december.csv", data)
    assert await settled(path) == "done"

    result = (folder / "december.result.csv").read_bytes()
    encoding = "utf-8" if codec == "utf-8-sig" else "shift_jis"  # answered in the file's own
    rows = parse_result(result, encoding)
    assert [(r["row"], r["bill_no"], r["result"]) for r in rows] == [
        ("2", "F-1", "created"),
        ("3", "F-2", "created"),
    ]
    report = (folder / "done" / "december.csv.report.txt").read_text(encoding="utf-8")
    assert report.startswith("registered: batch bat_") and "2 created, 0 existing" in report
    assert "december.result.csv" in report
    assert sorted(p.name for p in folder.iterdir()) == ["december.result.csv", "done"]
    _, bill, _ = await gateway.request("GET", "/v1/bills/F-2", acme)
    assert bill["customer"]["name"] == "髙橋"
    for r in rows:
        _, bill, _ = await gateway.request("GET", f"/v1/bills/{r['bill_no']}", acme)
        assert r["barcode"] == bill["cvs"]["barcode"] and r["page_url"] == bill["page_url"]
    _, feed, _ = await gateway.request("GET", "/v1/events", acme)
    assert [e["type"] for e in feed["data"]] == ["bill.created", "bill.created"]

    # The same bytes again (a second drop): the first registration's answer, nothing new.
    again = drop(folder, "december-again.csv", data)
    assert await settled(again) == "done"
    assert parse_result((folder / "december-again.result.csv").read_bytes(), encoding) == rows
    assert count(gateway.config.database.url, bills) == 2


@pytest_twisted.ensureDeferred
async def test_a_refused_file_stores_nothing_and_lists_every_error(gateway: Running) -> None:
    gateway.onboard("acme")
    folder = inbox(gateway) / "acme"
    data = csv_text(line("G-1"), line("G-2", amount="0"), line("G-1", email="x")).encode("cp932")
    path = drop(folder, "bad.csv", data)
    assert await settled(path) == "rejected"
    errors = read_errors((folder / "bad.errors.csv").read_bytes(), "shift_jis")
    assert [(e["row"], e["column"]) for e in errors] == [("3", "amount"), ("4", "bill_no")]
    assert errors[1]["message"] == "G-1 is also on row 2"
    report = (folder / "rejected" / "bad.csv.report.txt").read_text(encoding="utf-8")
    assert report.startswith("refused: 2 error(s) in 2 row(s); nothing of the file was stored")
    assert "row 3: amount:" in report and "bad.errors.csv" in report
    url = gateway.config.database.url
    assert count(url, bills) == count(url, events) == count(url, bill_batches) == 0


@pytest_twisted.ensureDeferred
async def test_a_formula_in_a_file_comes_back_as_text_in_the_errors_file(gateway: Running) -> None:
    """A bill_no a spreadsheet would run (issue 14, finding 13): the errors file quotes it as
    text, and the row numbers stay numbers."""
    gateway.onboard("acme")
    folder = inbox(gateway) / "acme"
    link = '=HYPERLINK("https://evil.example/","open")'
    rows = [line(link), line(link), line("-K-1", amount="-5400")]
    path = drop(folder, "formula.csv", csv_text(*rows).encode())
    assert await settled(path) == "rejected"
    errors = read_errors((folder / "formula.errors.csv").read_bytes(), "utf-8")
    assert [e["row"] for e in errors] == ["2", "3", "4", "4"]
    assert errors[1]["message"] == f"'{link} is also on row 2"
    assert all(not e["message"].startswith(("=", "+", "-", "@")) for e in errors)


@pytest_twisted.ensureDeferred
async def test_unknown_folders_and_other_files_are_left_alone(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    root = inbox(gateway)
    stranger = drop(root / "nobody", "bills.csv", csv_text(line("H-1")).encode())
    notes = drop(root / "acme", "notes.txt", b"not a bill file")
    partial = root / "acme" / "big.csv.part"
    partial.write_bytes(b"bill_no")
    path = drop(root / "acme", "ok.csv", csv_text(line("H-2")).encode())
    assert await settled(path) == "done"
    await pause(0.2)  # a few more scans
    assert stranger.exists() and not (stranger.parent / "done").exists()
    assert notes.exists() and partial.exists()
    assert not (root / "acme" / "ok.result.csv.result.csv").exists()
    status, _, _ = await gateway.request("GET", "/v1/bills/H-1", acme)
    assert status == 404


@pytest_twisted.ensureDeferred
async def test_the_api_and_the_folder_register_the_same_file_alike(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    data = csv_text(line("I-1")).encode()
    status, summary, _ = await post_csv(gateway, acme, data)
    assert status == 201
    folder = inbox(gateway) / "acme"
    path = drop(folder, "same.csv", data)
    assert await settled(path) == "done"
    rows = parse_result((folder / "same.result.csv").read_bytes(), "utf-8")
    assert [(r["bill_no"], r["result"]) for r in rows] == [("I-1", "existing")]
    await assert_result_matches_bills(gateway, acme, summary["result_url"], {"I-1": 2})
    assert (folder / "same.result.csv").read_bytes()[:3] == codecs.BOM_UTF8


@pytest_twisted.ensureDeferred
async def test_a_suspended_billers_file_is_refused_with_the_reason_until_it_is_resumed(
    gateway: Running,
) -> None:
    acme = gateway.onboard("acme")
    folder = inbox(gateway) / "acme"
    data = csv_text(line("H-1"), line("H-2")).encode("utf-8-sig")
    admin(gateway.config_path, "biller", "suspend", "--id", "acme", "--reason", "unpaid fees")

    path = drop(folder, "january.csv", data)
    assert await settled(path) == "rejected"
    why = "acme is suspended: no new bill until the operator resumes it"
    report = (folder / "rejected" / "january.csv.report.txt").read_text(encoding="utf-8")
    assert report.startswith(f"refused: biller: {why}\n")
    assert "january.errors.csv" in report
    errors = read_errors((folder / "january.errors.csv").read_bytes(), "utf-8")
    assert [(e["row"], e["column"], e["message"]) for e in errors] == [("", "biller", why)]
    url = gateway.config.database.url
    assert count(url, bills) == count(url, events) == count(url, bill_batches) == 0
    status, problem, _ = await gateway.request("GET", "/v1/bills", acme)  # its key too
    assert status == 403 and "suspended" in problem["detail"]

    admin(gateway.config_path, "biller", "resume", "--id", "acme")
    drop(folder, "january.csv", data)  # the same file, dropped again
    for _ in range(300):  # rejected/january.csv is the first one's: wait for done/
        if (folder / "done" / "january.csv").exists():
            break
        await pause(0.05)
    assert not (folder / "january.csv").exists()
    report = (folder / "done" / "january.csv.report.txt").read_text(encoding="utf-8")
    assert report.startswith("registered: batch bat_") and "2 created" in report
    rows = parse_result((folder / "january.result.csv").read_bytes(), "utf-8")
    assert [(r["bill_no"], r["result"]) for r in rows] == [("H-1", "created"), ("H-2", "created")]
    assert count(url, bills) == 2
    _, listed, _ = await gateway.request("GET", "/v1/bills", acme)
    assert sorted(b["bill_no"] for b in listed["data"]) == ["H-1", "H-2"]
