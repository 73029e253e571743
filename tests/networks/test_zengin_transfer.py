"""Account transfer through the gateway: request files out, the simulated bank, results in.

Bills and mandates go in through the merchant API of the in-process daemon; request files are
written and result files loaded by ``gateway-admin`` (in-process), as an operator would; the
bank is ``simulators.zengin``. Dates are real bank business days from today.
"""

from __future__ import annotations

import contextlib
import io
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet.threads import deferToThread

from gateway import calendar
from gateway.app.admin.commands import main as admin_main
from gateway.mappers.zengin.mapper import ZenginFile, parse_file
from gateway.model import MessageKind
from simulators.zengin import SimulatedBank
from tests.billing.test_mandates_api import ACCOUNT
from tests.billing.test_payments_api import pay
from tests.conftest import Biller, Running, admin, jst_today
from tests.test_api import bill_body

FIXTURES = Path(__file__).parent.parent / "fixtures" / "zengin"
CONSIGNOR = "1234567890"


def debit_day(after: int = 3) -> date:
    return calendar.add_business_days(jst_today(), after)


def friday_before_a_weekend() -> date:
    """A business day followed by bank holidays (at least a Saturday)."""
    day = debit_day()
    while calendar.is_business_day(day + timedelta(days=1)):
        day = calendar.next_business_day(day)
    return day


def admin_fails(config: Path, *args: str) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = admin_main(["-c", str(config), *args])
    assert rc == 1, f"gateway-admin {' '.join(args)} should have failed"
    return err.getvalue()


async def run_admin(config: Path, *args: str) -> dict[str, Any]:
    """gateway-admin in a thread: the in-process daemon's reactor keeps serving meanwhile."""
    result: dict[str, Any] = await deferToThread(admin, config, *args)
    return result


def consignor(
    running: Running, biller: Biller, code: str = CONSIGNOR, account: str = "0001-001-1-1234567"
) -> None:
    admin(
        running.config_path,
        "biller",
        "zengin",
        "--id",
        biller.biller_id,
        "--consignor-code",
        code,
        "--account",
        account,
    )


async def bill(
    running: Running, who: Biller, bill_no: str, customer_no: str, amount: int, due: date, **o: Any
) -> dict[str, Any]:
    body = bill_body(bill_no, amount=amount, due_date=due.isoformat(), **o)
    body["customer"] = {**body["customer"], "customer_no": customer_no}
    status, made, _ = await running.request("POST", "/v1/bills", who, body)
    assert status == 201, made
    return dict(made)


async def mandate(running: Running, who: Biller, customer_no: str, **change: Any) -> None:
    status, made, _ = await running.request(
        "PUT", f"/v1/mandates/{customer_no}", who, {**ACCOUNT, **change}
    )
    assert status in (200, 201), made


def read_request(path: str) -> ZenginFile:
    return parse_file(Path(path).read_bytes(), source=path)


@pytest_twisted.ensureDeferred
async def test_a_request_file_carries_exactly_the_open_bills_with_active_mandates(
    gateway: Running,
) -> None:
    acme = gateway.onboard("acme")
    consignor(gateway, acme)
    day = debit_day()
    await mandate(gateway, acme, "C1")
    await mandate(gateway, acme, "C2", holder_kana="スズキ　ハナコ", account_number="1111111")
    await mandate(gateway, acme, "C3")
    await gateway.request("DELETE", "/v1/mandates/C3", acme)
    await bill(gateway, acme, "B1", "C1", 5400, day)
    await bill(gateway, acme, "B2", "C2", 12000, day)
    await bill(gateway, acme, "B3", "C1", 3000, day)  # a second bill of the same customer
    await bill(gateway, acme, "B4", "C3", 1000, day)  # revoked mandate
    await bill(gateway, acme, "B5", "C4", 1100, day)  # no mandate
    paid = await bill(gateway, acme, "B6", "C2", 1200, day)  # paid at a store first
    assert pay(gateway, paid["cvs"]["barcode"], MessageKind.PRELIMINARY) == "applied"
    await bill(gateway, acme, "B7", "C1", 1300, day)
    await gateway.request("POST", "/v1/bills/B7/cancel", acme)
    await bill(gateway, acme, "B8", "C1", 1400, calendar.next_business_day(day))  # not yet due
    await bill(gateway, acme, "B9", "C1", 1500, day, channels=["cvs"])  # not by transfer

    made = await run_admin(gateway.config_path, "zengin", "request", "--date", day.isoformat())
    (written,) = made["files"]
    assert written["records"] == 3 and written["total"] == 5400 + 12000 + 3000
    request = read_request(written["file"])
    assert not request.is_result
    header = request.header
    assert header.biller_code == CONSIGNOR and header.debit_mmdd == f"{day:%m%d}"
    assert (header.bank_code, header.branch_code, header.account_number) == (
        "0001",
        "001",
        "1234567",
    )
    assert header.biller_name == "ﾃｽﾄ"  # the biller's kana
    assert [d.amount for d in request.debits] == [5400, 12000, 3000]
    assert [d.holder_name for d in request.debits] == ["ﾔﾏﾀﾞ ﾀﾛｳ", "ｽｽﾞｷ ﾊﾅｺ", "ﾔﾏﾀﾞ ﾀﾛｳ"]
    assert [d.account_number for d in request.debits] == ["7654321", "1111111", "7654321"]
    assert {d.bank_code for d in request.debits} == {"0005"}
    assert all(d.new_code == "1" for d in request.debits)  # first debit of every mandate
    assert len({d.customer_number for d in request.debits}) == 3
    assert request.trailer.count == 3 and request.trailer.total == 20400

    # Never twice for one date, and the mandates are no longer new.
    again = await run_admin(gateway.config_path, "zengin", "request", "--date", day.isoformat())
    assert again["files"] == []
    _, c1, _ = await gateway.request("GET", "/v1/mandates/C1", acme)
    assert c1["next_new_code"] == "0"
    await mandate(gateway, acme, "C1", account_number="2222222")
    _, c1, _ = await gateway.request("GET", "/v1/mandates/C1", acme)
    assert c1["next_new_code"] == "2"  # a changed mandate the bank already knows

    # The next debit date carries B8, with the changed account and 新規コード 2.
    later = calendar.next_business_day(day)
    made = await run_admin(gateway.config_path, "zengin", "request", "--date", later.isoformat())
    (written,) = made["files"]
    (debit,) = read_request(written["file"]).debits
    assert (debit.amount, debit.account_number, debit.new_code) == (1400, "2222222", "2")


@pytest_twisted.ensureDeferred
async def test_a_debit_falls_on_the_business_day_before_a_holiday_due_date(
    gateway: Running,
) -> None:
    acme = gateway.onboard("acme")
    consignor(gateway, acme)
    friday = friday_before_a_weekend()
    saturday = friday + timedelta(days=1)
    await mandate(gateway, acme, "C1")
    await bill(gateway, acme, "SAT", "C1", 2000, saturday)
    problem = admin_fails(gateway.config_path, "zengin", "request", "--date", str(saturday))
    assert "not a bank business day" in problem and str(friday) in problem
    yesterday = jst_today() - timedelta(days=1)
    problem = admin_fails(gateway.config_path, "zengin", "request", "--date", str(yesterday))
    assert "--date" in problem and "in the past" in problem
    made = await run_admin(gateway.config_path, "zengin", "request", "--date", str(friday))
    (written,) = made["files"]
    assert [d.amount for d in read_request(written["file"]).debits] == [2000]


@pytest_twisted.ensureDeferred
async def test_results_reach_the_ledger_once_and_change_the_mandates(
    gateway: Running, tmp_path: Path
) -> None:
    acme = gateway.onboard("acme")
    consignor(gateway, acme)
    day = debit_day()
    amounts = {"C1": 5400, "C2": 6000, "C3": 7000, "C4": 8000, "C5": 9000}
    for customer_no, amount in amounts.items():
        await mandate(gateway, acme, customer_no)
        await bill(gateway, acme, f"B-{customer_no}", customer_no, amount, day)
    made = await run_admin(gateway.config_path, "zengin", "request", "--date", day.isoformat())
    (written,) = made["files"]
    request = read_request(written["file"])
    by_amount = {d.amount: d.customer_number for d in request.debits}
    codes = {"C1": "0", "C2": "1", "C3": "2", "C4": "3", "C5": "0"}
    overrides = {by_amount[amounts[c]]: code for c, code in codes.items()}

    # C5's bill is paid at a store after the request went out: its debit pays it twice.
    _, b5, _ = await gateway.request("GET", "/v1/bills/B-C5", acme)
    assert pay(gateway, b5["cvs"]["barcode"], MessageKind.PRELIMINARY) == "applied"

    outbox = Path(written["file"]).parent
    bank = SimulatedBank(outbox, tmp_path / "bank-out", tmp_path / "bank", overrides=overrides)
    (result_path,) = bank.process_once()
    summary = await run_admin(gateway.config_path, "import", "zengin-result", str(result_path))
    assert summary["records"] == 5 and summary["matched"] == 5
    assert summary["debited"] == {"count": 2, "total": 5400 + 9000}
    assert summary["failed"] == {"count": 3, "total": 6000 + 7000 + 8000}
    assert summary["outcomes"] == {"applied": 5}
    assert summary["mandates_changed"] == 2

    states = {}
    for customer_no in amounts:
        _, b, _ = await gateway.request("GET", f"/v1/bills/B-{customer_no}", acme)
        states[customer_no] = (b["status"], b["double_paid"])
    assert states == {
        "C1": ("confirmed", False),
        "C2": ("open", False),  # 資金不足: still payable through the other channels
        "C3": ("open", False),
        "C4": ("open", False),
        "C5": ("confirmed", True),  # the debit is confirmed money; the 速報 is the spare
    }
    _, listed, _ = await gateway.request("GET", "/v1/payments?channel=transfer", acme)
    transfers = listed["data"]
    assert {(p["bill_no"], p["status"], p["amount"]) for p in transfers} == {
        ("B-C1", "confirmed", 5400),
        ("B-C5", "confirmed", 9000),
    }
    assert {p["transfer_date"] for p in transfers} == {day.isoformat()}
    assert transfers[0]["bank"] == {"bank_code": "0005", "branch_code": "135"}
    # Checked against the bank's own record: what it debited is what the ledger holds.
    totals = bank.totals()
    assert totals.debited_count == len(transfers)
    assert totals.debited_total == sum(p["amount"] for p in transfers)

    _, cases, _ = await gateway.request("GET", "/v1/refund-cases", acme)
    assert [(c["bill_no"], c["reason"]) for c in cases["data"]] == [("B-C5", "double_payment")]

    _, feed, _ = await gateway.request("GET", "/v1/events?limit=500", acme)
    failed = [e for e in feed["data"] if e["type"] == "transfer.failed"]
    assert sorted(
        (e["data"]["bill"]["bill_no"], e["data"]["detail"]["result_code"]) for e in failed
    ) == [("B-C2", "1"), ("B-C3", "2"), ("B-C4", "3")]
    detail = next(e for e in failed if e["data"]["bill"]["bill_no"] == "B-C2")["data"]["detail"]
    assert detail["result"] == "資金不足 (insufficient funds)"
    assert detail["debit_date"] == day.isoformat()

    mandates = {}
    for customer_no in amounts:
        _, m, _ = await gateway.request("GET", f"/v1/mandates/{customer_no}", acme)
        mandates[customer_no] = m["status"]
    assert mandates == {
        "C1": "active",
        "C2": "active",
        "C3": "invalid",
        "C4": "suspended",
        "C5": "active",
    }
    _, c3, _ = await gateway.request("GET", "/v1/mandates/C3", acme)
    assert c3["status_reason"].startswith("振替結果コード 2: 取引なし")

    # The same file again changes nothing.
    events_before = len(feed["data"])
    again = await run_admin(gateway.config_path, "import", "zengin-result", str(result_path))
    assert again["outcomes"] == {"duplicate": 5} and again["mandates_changed"] == 0
    _, feed, _ = await gateway.request("GET", "/v1/events?limit=500", acme)
    assert len(feed["data"]) == events_before

    # A suspended or invalid mandate is not debited again.
    later = calendar.next_business_day(day)
    for customer_no in ("C3", "C4"):
        await bill(gateway, acme, f"L-{customer_no}", customer_no, 1000, later)
    made = await run_admin(gateway.config_path, "zengin", "request", "--date", later.isoformat())
    assert made["files"] == []


@pytest_twisted.ensureDeferred
async def test_a_result_for_no_request_opens_a_refund_case_for_the_consignor(
    gateway: Running, tmp_path: Path
) -> None:
    """The spec's result vector names debits this center never asked for."""
    acme = gateway.onboard("acme")
    vector = parse_file((FIXTURES / "result_91.txt").read_bytes())
    consignor(gateway, acme, vector.header.biller_code, "0005-135-1-1234567")
    summary = await run_admin(
        gateway.config_path, "import", "zengin-result", str(FIXTURES / "result_91.txt")
    )
    debited = [d for d in vector.debits if d.debited]
    assert summary["matched"] == 0
    assert summary["outcomes"] == {"unknown_bill": len(vector.debits)}
    _, cases, _ = await gateway.request("GET", "/v1/refund-cases", acme)
    assert len(cases["data"]) == len(debited)
    assert {c["reason"] for c in cases["data"]} == {"unknown_bill"}
    assert sorted(c["amount"] for c in cases["data"]) == sorted(d.amount for d in debited)


@pytest_twisted.ensureDeferred
async def test_bad_result_files_are_refused_whole(gateway: Running) -> None:
    gateway.onboard("acme")
    for name, words in [
        ("invalid_trailer_sum.txt", "record"),
        ("invalid_short_record.txt", "record"),
        ("invalid_small_kana.txt", "biller_name"),
    ]:
        problem = admin_fails(gateway.config_path, "import", "zengin-result", str(FIXTURES / name))
        assert "refused, nothing applied" in problem and words in problem, problem
    problem = admin_fails(
        gateway.config_path, "import", "zengin-result", str(FIXTURES / "result_91.txt")
    )
    assert "is not a consignor of this center" in problem
    problem = admin_fails(
        gateway.config_path, "import", "zengin-result", str(FIXTURES / "request_91.txt")
    )
    assert "this is a request" in problem
