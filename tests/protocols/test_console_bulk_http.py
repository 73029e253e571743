"""The console's bulk upload over HTTP, through the real service (in this process): a
``multipart/form-data`` CSV file with its CSRF token, the job's page and progress fragment
polled until the file is registered, the bulk API's result file, a refused file's errors and
their CSV, the audit line, and who may see which upload. In a real browser, with 4,000 rows and
its progress bar: tests/test_console_screens_e2e.py."""

from __future__ import annotations

import csv
import io
import re
import secrets
from typing import Any

import pytest_twisted
import treq
from twisted.internet import task

from tests.billing.test_bulk_api import csv_text, line
from tests.conftest import Running
from tests.protocols.test_console_http import Client, audit, csrf_of, location, logged_in


async def upload(
    client: Client,
    data: bytes,
    csrf: str | None,
    name: str = "bills.csv",
    biller: str | None = None,
) -> tuple[int, str, Any]:
    """The upload form as a browser sends it."""
    boundary = "----form" + secrets.token_hex(8)
    parts = []
    if csrf is not None:
        parts.append(("csrf_token", None, csrf.encode()))
    if biller is not None:
        parts.append(("biller", None, biller.encode()))
    parts.append(("file", name, data))
    body = b""
    for field, filename, content in parts:
        disposition = f'form-data; name="{field}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            body += b"Content-Type: text/csv\r\n"
        body += b"\r\n" + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items()),
    }
    resp = await treq.request(
        "POST", client.base + "/console/bulk", headers=headers, data=body, allow_redirects=False
    )
    return resp.code, (await resp.content()).decode(), resp.headers


async def finished(client: Client, job: str) -> str:
    """The job's progress fragment, asked for as htmx does until the job is over."""
    from twisted.internet import reactor  # noqa: TID251 - tests drive the real reactor

    for _ in range(600):
        status, fragment, _ = await client.get(job + "/progress", hx_request="true")
        assert status == 200, fragment
        if "hx-trigger" not in fragment:  # a finished job's fragment stops the polling
            return fragment
        await task.deferLater(reactor, 0.1, lambda: None)
    raise AssertionError("the upload never finished")


async def raw_get(client: Client, path: str) -> tuple[int, bytes, Any]:
    """A download, as bytes."""
    cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    resp = await treq.get(client.base + path, headers={"Cookie": cookies})
    return resp.code, await resp.content(), resp.headers


def rows_of(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


@pytest_twisted.ensureDeferred
async def test_a_clerk_uploads_a_file_and_downloads_its_result(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    gateway.onboard("beta")
    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")
    status, page, _ = await clerk.get("/console/bulk")
    assert status == 200 and 'enctype="multipart/form-data"' in page
    assert 'name="biller"' not in page
    csrf = csrf_of(page)
    data = csv_text(*(line(f"BULK-{n:04d}", customer_no=f"C{n:04d}") for n in range(300)))

    status, _, _ = await upload(clerk, data.encode(), None)  # without its CSRF token
    assert status == 403
    status, _, _ = await upload(clerk, data.encode(), "0" * 64)
    assert status == 403
    status, _, headers = await upload(clerk, data.encode(), csrf, "12月分.csv", biller="beta")
    assert status == 303
    job = location(headers)
    assert re.fullmatch(r"/console/bulk/bat_[0-9a-f]{24}", job)
    status, page, _ = await clerk.get(job)
    assert status == 200 and 'id="bar"' in page and "12月分.csv" in page

    fragment = await finished(clerk, job)
    assert "登録しました" in fragment and 'value="100"' in fragment
    assert re.search(r'id="created">300<', fragment)
    status, body, headers = await clerk.get(job + "/result.csv?charset=utf-8")
    assert status == 200 and headers.getRawHeaders("content-type") == ["text/csv; charset=utf-8"]
    result = rows_of(body.encode())
    assert [r["bill_no"] for r in result] == [f"BULK-{n:04d}" for n in range(300)]
    assert {r["result"] for r in result} == {"created"} and all(r["barcode"] for r in result)
    _, sjis, headers = await raw_get(clerk, job + "/result.csv?charset=shift_jis")
    assert headers.getRawHeaders("content-type") == ["text/csv; charset=Shift_JIS"]
    assert sjis.decode("cp932").startswith("row,bill_no,result")

    # The bills are acme's (the form's biller=beta is not the clerk's to choose).
    status, bill, _ = await gateway.request("GET", "/v1/bills/BULK-0299", acme)
    assert status == 200 and bill["customer"]["customer_no"] == "C0299"
    line_ = audit(gateway, "--action", "bills.bulk_upload")[0]
    assert line_["actor"] == "user:clerk" and line_["biller_id"] == "acme"
    assert line_["target"] == "batch:" + job.rsplit("/", 1)[1]
    assert line_["after"]["file_name"] == "12月分.csv" and line_["after"]["created"] == 300

    # The same file again: every bill found as it is, nothing created twice.
    status, _, headers = await upload(clerk, data.encode(), csrf)
    fragment = await finished(clerk, location(headers))
    assert re.search(r'id="created">0<', fragment) and re.search(r'id="existing">300<', fragment)

    # Another biller's clerk finds neither the job nor its result; support uploads nothing.
    other = await logged_in(gateway, "other", "biller_staff", "beta")
    for path in (job, job + "/progress", job + "/result.csv"):
        assert (await other.get(path))[0] == 404, path
    desk = await logged_in(gateway, "desk", "support", None)
    assert (await desk.get("/console/bulk"))[0] == 404


@pytest_twisted.ensureDeferred
async def test_a_file_with_bad_rows_is_refused_whole(gateway: Running) -> None:
    acme = gateway.onboard("acme")
    clerk = await logged_in(gateway, "clerk", "biller_staff", "acme")
    csrf = await clerk.form_csrf("/console/bulk")
    data = csv_text(
        line("OK-1"),
        line("BAD-2", amount="abc"),
        line("OK-3"),
        line("BAD-4", due_date="2000-01-01", channels="cvs;card"),
    )
    status, _, headers = await upload(clerk, data.encode("cp932"), csrf)
    assert status == 303
    job = location(headers)
    fragment = await finished(clerk, job)
    assert "誤りがあったため、登録しませんでした" in fragment
    assert "row 3: amount" in fragment and "row 5: due_date" in fragment
    assert "row 5: channels" in fragment
    status, errors, headers = await raw_get(clerk, job + "/errors.csv")
    assert status == 200
    assert headers.getRawHeaders("content-type") == ["text/csv; charset=Shift_JIS"]
    listed = list(csv.reader(io.StringIO(errors.decode("cp932"))))
    assert listed[0] == ["row", "column", "message"]
    assert [r[:2] for r in listed[1:]] == [["3", "amount"], ["5", "due_date"], ["5", "channels"]]
    assert (await clerk.get(job + "/result.csv"))[0] == 404
    status, _, _ = await gateway.request("GET", "/v1/bills/OK-1", acme)
    assert status == 404  # all or none
    assert audit(gateway, "--action", "bills.bulk_upload") == []

    # An empty form, and a center operator who chose no biller: the form again.
    status, page, _ = await upload(clerk, b"", csrf)
    assert status == 422 and "ファイルを選んでください" in page
    ops = await logged_in(gateway, "ops", "operator", None)
    csrf = await ops.form_csrf("/console/bulk")
    status, page, _ = await upload(ops, data.encode(), csrf)
    assert status == 422 and "収納企業を選んでください" in page
    status, _, headers = await upload(ops, csv_text(line("OPS-1")).encode(), csrf, biller="acme")
    fragment = await finished(ops, location(headers))
    assert re.search(r'id="created">1<', fragment)
    assert audit(gateway, "--action", "bills.bulk_upload")[0]["actor"] == "user:ops"
