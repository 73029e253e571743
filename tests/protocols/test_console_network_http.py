"""The center's network screen over HTTP, through the real service (in this process): the
store's state, what is waiting, a result file the Zengin inbox refused shown with its report,
and the MPN 閉局 of the last days next to the ledger's counts, a mismatch marked; a biller's
user finds no such screen. The links' states (up or down, since when) are the daemon's
readiness: tests/protocols/test_cvs_link.py and test_mpn_link.py, and in a real browser with
an agency connected, tests/test_console_center_e2e.py."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest_twisted
from twisted.internet import task

from gateway.model import JST
from gateway.store import create_db_engine
from gateway.store.mpn import record_day_close
from tests.conftest import Running
from tests.protocols.test_console_http import logged_in


@pytest_twisted.ensureDeferred
async def test_the_network_screen(gateway: Running) -> None:
    from twisted.internet import reactor  # noqa: TID251 - the daemon's watcher runs on it

    gateway.onboard("acme")
    assert gateway.config.zengin is not None
    inbox = gateway.config.zengin.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "ZENGIN_BAD.txt").write_bytes(b"this is no Zengin file\r\n")
    today = datetime.now(JST).date()
    engine = create_db_engine(gateway.config.database.url, 1)
    with engine.begin() as conn:
        # The center counted a 消込 the ledger never received; the day before, all matched.
        record_day_close(conn, today, (0, 0, 0, 0), (1, 5_400, 0, 0), datetime.now(JST))
        before = today - timedelta(days=1)
        record_day_close(conn, before, (0, 0, 0, 0), (0, 0, 0, 0), datetime.now(JST))
        record_day_close(conn, today - timedelta(days=30), (0, 0, 0, 0), None, datetime.now(JST))
    engine.dispose()
    for _ in range(100):  # the inbox is polled every 5 s
        if (inbox / "rejected" / "ZENGIN_BAD.txt").exists():
            break
        await task.deferLater(reactor, 0.2, lambda: None)
    report = (inbox / "rejected" / "ZENGIN_BAD.txt.report.txt").read_text(encoding="utf-8")

    ops = await logged_in(gateway, "ops", "operator", None)
    status, page, _ = await ops.get("/console/network")
    assert status == 200
    assert re.search(
        r'id="store-state">データベース：<span class="status status-confirmed">正常', page
    )
    assert 'id="no-links"' in page  # no link in this configuration
    assert "未対応の返金案件" in page
    row = page[page.index('id="inbox-zengin"') :]
    row = row[: row.index("</tr>")]
    assert "口座振替（全銀）" in row and "ZENGIN_BAD.txt" in row and "受付拒否" in row
    shown = page[page.index('<details class="rejected">') :]
    assert "ZENGIN_BAD.txt" in shown
    first_line = report.splitlines()[0]
    assert first_line and first_line.replace('"', "&#34;").replace("'", "&#39;") in shown

    closes = re.findall(r'<tr id="close-(\d{4}-\d{2}-\d{2})">', page)
    assert closes == [today.isoformat(), before.isoformat()]  # newest first, two weeks only
    mismatch = page[page.index(f'id="close-{today}"') :]
    mismatch = mismatch[: mismatch.index("</tr>")]
    assert "1 件 ¥5,400" in mismatch and "0 件 ¥0" in mismatch and "不一致" in mismatch
    matched = page[page.index(f'id="close-{before}"') :]
    assert 'status-confirmed">一致' in matched[: matched.index("</tr>")]

    for role in ("support", "finance"):
        center = await logged_in(gateway, f"{role}-1", role, None)
        assert (await center.get("/console/network"))[0] == 200
    clerk = await logged_in(gateway, "clerk", "biller_admin", "acme")
    assert (await clerk.get("/console/network"))[0] == 404
    _, home, _ = await clerk.get("/console/")
    assert "/console/network" not in home
