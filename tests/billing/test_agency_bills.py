"""Billers under agencies and slips without a deadline, through the real service (issue 16).

Two agencies are configured the way agencies issue their codes: ``gs`` holds one code (25207)
for the whole center and takes slips without a deadline; ``kessai`` gives each biller its own
code, has a lower ceiling, and takes no slip without a deadline.
"""

from __future__ import annotations

import contextlib
import io
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_twisted
import treq

from gateway.app.admin.commands import main as admin_main
from gateway.mappers.cvs import barcode
from gateway.store import create_db_engine
from gateway.store.expiry import lock_overdue
from tests.conftest import Biller, Running, admin, config_text, due

AGENCIES = """
[cvs]
default_agency = "gs"

[[cvs.agencies]]
id = "gs"
company_code = "929023"
assigned_by = "agency"
center_code = "25207"
no_deadline = true

[[cvs.agencies]]
id = "kessai"
company_code = "987654"
assigned_by = "agency"
ceiling = 100000
"""


def agency_config(database_url: str) -> str:
    text = config_text(database_url)
    single = re.search(r"\[cvs\]\ncompany_code = \"987654\"\nceiling = 300000\n", text)
    assert single is not None, "tests.conftest.config_text changed its [cvs]"
    return text.replace(single.group(0), AGENCIES)


def admin_fails(config_path: Path, *args: str) -> str:
    """Run a gateway-admin command that must fail; its message."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = admin_main(["-c", str(config_path), *args])
    assert rc == 1, f"gateway-admin {' '.join(args)} should have failed"
    return err.getvalue()


def create(path: Path, biller_id: str, *flags: str) -> tuple[dict[str, Any], Biller]:
    made = admin(
        path,
        "biller",
        "create",
        "--id",
        biller_id,
        "--name",
        f"{biller_id} 株式会社",
        "--kana",
        "ﾃｽﾄ",
        "--channels",
        "cvs,payeasy",
        *flags,
    )
    key = admin(path, "key", "create", "--biller", biller_id)
    return made, Biller(biller_id, made["code"], key["key"])


@pytest.fixture
def gateway_config(migrated_url: str) -> str:
    """The service of the ``gateway`` fixture runs with the two agencies."""
    return agency_config(migrated_url)


def bill(bill_no: str, channels: list[str], **fields: Any) -> dict[str, Any]:
    return {"bill_no": bill_no, "amount": 5400, "channels": channels, **fields}


@pytest_twisted.ensureDeferred
async def test_a_biller_of_the_center_code_agency_gets_slips_without_a_deadline(
    gateway: Running, migrated_url: str
) -> None:
    made, gas = create(gateway.config_path, "gas")  # under the default agency, gs
    assert made["cvs"] == {
        "agency": "gs",
        "company_code": "929023",
        "prefix": "25207" + made["code"],
    }
    status, doc, _ = await gateway.request("POST", "/v1/bills", gas, bill("G-1", ["cvs"]))
    assert status == 201, doc
    assert doc["due_date"] is None
    code = barcode.parse(doc["cvs"]["barcode"])
    assert (code.company_code, code.due, code.due_text) == ("929023", None, "999999")
    assert code.free_field.startswith("25207" + made["code"])
    assert barcode.FreeFieldLayout("25207").biller_code(code.free_field) == made["code"]

    # its page says so, where a bill with a deadline shows the date
    page = await treq.get(gateway.api + urlsplit(doc["page_url"]).path)
    html = (await page.content()).decode()
    assert page.code == 200
    assert "期限なし" in html

    # and the expiry job never takes it, however late it is
    engine = create_db_engine(migrated_url, 1)
    with engine.begin() as conn:
        overdue = lock_overdue(conn, date.today() + timedelta(days=3650), 100)
    engine.dispose()
    assert "G-1" not in {b.bill_no for _, b in overdue}

    # a bill with another channel still needs a due date (422, the field named)
    status, doc, _ = await gateway.request(
        "POST", "/v1/bills", gas, bill("G-2", ["cvs", "payeasy"])
    )
    assert status == 422
    assert doc["errors"] == [
        {"field": "due_date", "message": "is required unless cvs is the only channel"}
    ]


@pytest_twisted.ensureDeferred
async def test_an_agency_that_assigns_codes_per_biller_names_the_biller_in_its_barcodes(
    gateway: Running,
) -> None:
    made, water = create(
        gateway.config_path, "water", "--cvs-agency", "kessai", "--cvs-code", "25207"
    )
    assert made["cvs"] == {"agency": "kessai", "company_code": "987654", "prefix": "25207"}
    body = bill("W-1", ["cvs"], due_date=due(10))
    status, doc, _ = await gateway.request("POST", "/v1/bills", water, body)
    assert status == 201, doc
    code = barcode.parse(doc["cvs"]["barcode"])
    assert code.company_code == "987654"
    assert barcode.split_free_field(code.free_field)[0] == "25207"

    # this agency takes no slip without a deadline, and its ceiling is its own
    body = bill("W-2", ["cvs"], amount=100_001)
    status, doc, _ = await gateway.request("POST", "/v1/bills", water, body)
    assert status == 422
    assert {e["field"] for e in doc["errors"]} == {"amount", "due_date"}
    assert any("agency kessai" in e["message"] for e in doc["errors"])


def test_the_operator_is_told_what_an_agency_needs(tmp_path: Path, migrated_url: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(agency_config(migrated_url), encoding="utf-8")
    flags = ("--name", "A 株式会社", "--kana", "ﾃｽﾄ", "--channels", "cvs")
    said = admin_fails(path, "biller", "create", "--id", "a", *flags, "--cvs-agency", "kessai")
    assert "--cvs-code: is required: agency kessai assigns each biller its own 5-digit code" in said
    said = admin_fails(path, "biller", "create", "--id", "a", *flags, "--cvs-code", "12345")
    assert "--cvs-code: is not taken: agency gs holds one code (25207)" in said
    said = admin_fails(path, "biller", "create", "--id", "a", *flags, "--cvs-agency", "nope")
    assert "--cvs-agency: 'nope' is not an agency (gs, kessai)" in said
    said = admin_fails(
        path,
        "biller",
        "create",
        "--id",
        "a",
        *flags,
        "--cvs-agency",
        "kessai",
        "--cvs-code",
        "1234",
    )
    assert "--cvs-code: '1234' is not 5 digits" in said

    admin(
        path,
        "biller",
        "create",
        "--id",
        "a",
        *flags,
        "--cvs-agency",
        "kessai",
        "--cvs-code",
        "11111",
    )
    said = admin_fails(
        path,
        "biller",
        "create",
        "--id",
        "b",
        *flags,
        "--cvs-agency",
        "kessai",
        "--cvs-code",
        "11111",
    )
    assert "agency kessai's code 11111 is biller a's" in said
