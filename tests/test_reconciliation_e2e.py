"""Issue 21, item 3, through the real daemon (twistd subprocess) and the simulators: the networks'
money reconciled with the center's bank statement.

Bills are paid through all three networks — at stores (the CVS agency simulator over the 速報
link, then its 確報 file in the inbox), through Pay-easy (the MPN center simulator, then the
day's 閉局), by account transfer (the request file, the simulated bank's result file) — then the
simulated bank writes the center's statement (入出金取引明細) with what each network remitted,
less the CVS agency's fees, and one deposit nobody expected. ``gateway-admin recon import``
reads it; every expected remittance is matched to the yen, and the planted deposit is the one
open item that finance sees through ``gateway-admin recon show``, ``GET
/v1/admin/reconciliation`` and the ``gateway_reconciliation_open_items`` gauge.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from gateway import calendar
from gateway.app.process import DaemonProcess, admin, admin_json, free_port, http
from gateway.infra.tls import TLSFiles
from gateway.model import JST
from simulators.bank_statement import (
    Fees,
    Remittance,
    cvs_remittances,
    mpn_remittances,
    statement_file,
    transfer_remittances,
)
from simulators.cvs import Agency, Scenario, Slip
from simulators.cvs_link import start_agency_link
from simulators.mpn import MpnCenter, MpnScenario
from simulators.mpn_link import MpnCenterFactory, listen_mpn_center
from simulators.zengin import SimulatedBank
from tests.billing.test_mandates_api import ACCOUNT
from tests.conftest import config_text, due

pytestmark = pytest.mark.e2e

TIMEOUT = 60  # seconds: the bound of each wait below (the 閉局 waits for its minute)
CVS_NAME, MPN_NAME, BANK_NAME = "ｶ)ｺﾝﾋﾞﾆｼﾕｳﾉｳ", "ﾏﾙﾁﾍﾟｲﾒﾝﾄ", "ｺｳｻﾞﾌﾘｶｴ"
CVS_FEE = Fees(per_item=30, per_remittance=200)  # what the agency keeps (tax 10 % on it)
CONSIGNOR = "1234567890"
MPN_SECTION = '[mpn]\ninstitution_code = "58191"\n'


@dataclass
class Site:
    root: Path
    config: Path
    api_port: int
    metrics_port: int
    link_port: int
    center_port: int
    key: str = ""
    admin_key: str = ""

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def tls(self, name: str) -> TLSFiles:
        tls = self.root / "tls"
        return TLSFiles(tls / "ca.pem", tls / f"{name}.pem", tls / f"{name}.key")


def close_minute() -> str:
    """A JST minute at least 40 s away: the 閉局 of today, after the day's 消込."""
    at = datetime.now(JST) + timedelta(seconds=100)
    return f"{at:%H:%M}"


def make_site(root: Path, database_url: str) -> Site:
    api, metrics, link, center = free_port(), free_port(), free_port(), free_port()
    tls = root / "tls"
    extra = (
        "poll_interval = 0.2\n\n"  # [zengin]
        f'[tls]\nca = "{tls}/ca.pem"\ncertificate = "{tls}/gateway.pem"\n'
        f'key = "{tls}/gateway.key"\n\n'
        f'[cvs.link]\nlisten = "tcp:{link}:interface=127.0.0.1"\npeers = ["cvs-agency"]\n\n'
        f'[cvs.files]\ninbox = "{root}/inbox"\npoll_interval = 0.2\n\n'
        "[reconciliation]\n"
        'account = "0005-135-1-7654321"\n'
        "payeasy_days = 1\ntransfer_days = 0\ninterval = 1\n\n"
        "[[reconciliation.remitters]]\n"
        f'network = "cvs"\nagency = "default"\nname = "{CVS_NAME}"\n'
        f"fee_per_item = {CVS_FEE.per_item}\nfee_per_remittance = {CVS_FEE.per_remittance}\n\n"
        "[[reconciliation.remitters]]\n"
        f'network = "payeasy"\nagency = "58191"\nname = "{MPN_NAME}"\n\n'
        "[[reconciliation.remitters]]\n"
        f'network = "transfer"\nagency = "{CONSIGNOR}"\nname = "{BANK_NAME}"\n'
    )
    text = config_text(
        database_url,
        api=f"tcp:{api}:interface=127.0.0.1",
        metrics=f"tcp:{metrics}:interface=127.0.0.1",
        public_url=f"http://127.0.0.1:{api}",
        extra=extra,
    )
    assert MPN_SECTION in text
    text = text.replace(
        MPN_SECTION,
        f'{MPN_SECTION}connect = "tcp:127.0.0.1:{center}"\ncenter_code = "0001"\n'
        f'hostname = "mpn-center"\nclose_at = "{close_minute()}"\n',
    )
    path = root / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    site = Site(root, path, api, metrics, link, center)
    admin(path, "migrate")
    admin(path, "certs", "make", str(tls))
    admin(path, "biller", "create", "--id", "acme", "--name", "Acme", "--kana", "ｱｸﾒ")
    admin(path, "biller", "zengin", "--id", "acme", "--consignor-code", CONSIGNOR,
          "--account", "0005-135-1-7654321")  # fmt: skip
    site.key = admin_json(path, "key", "create", "--biller", "acme")["key"]
    site.admin_key = admin_json(path, "key", "create", "--admin")["key"]
    return site


def call(site: Site, method: str, path: str, body: Any = None, key: str = "") -> tuple[int, Any]:
    status, doc, _ = http(method, site.api + path, body, site.headers(key or site.key))
    return status, doc


def make_bills(site: Site, debit_date: date) -> dict[str, list[dict[str, Any]]]:
    made: dict[str, list[dict[str, Any]]] = {"cvs": [], "payeasy": [], "transfer": []}
    for i in range(4):
        body = {"bill_no": f"C-{i}", "amount": 3000 + 100 * i, "due_date": due(30),
                "channels": ["cvs"]}  # fmt: skip
        status, bill = call(site, "POST", "/v1/bills", body)
        assert status == 201, bill
        made["cvs"].append(bill)
    for i in range(3):
        body = {"bill_no": f"P-{i}", "amount": 2000 + 10 * i, "due_date": due(30),
                "channels": ["payeasy"]}  # fmt: skip
        status, bill = call(site, "POST", "/v1/bills", body)
        assert status == 201, bill
        made["payeasy"].append(bill)
    for i in range(3):
        customer = f"T{i}"
        assert call(site, "PUT", f"/v1/mandates/{customer}", ACCOUNT)[0] == 201
        body = {"bill_no": f"T-{i}", "amount": 5000 + i, "due_date": debit_date.isoformat(),
                "channels": ["transfer"], "customer": {"customer_no": customer}}  # fmt: skip
        status, bill = call(site, "POST", "/v1/bills", body)
        assert status == 201, bill
        made["transfer"].append(bill)
    return made


def confirmed(site: Site, channel: str) -> int:
    status, page = call(site, "GET", f"/v1/payments?channel={channel}&limit=100")
    assert status == 200, page
    return sum(1 for p in page["data"] if p["status"] == "confirmed")


async def eventually(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    from twisted.internet import reactor  # noqa: TID251

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await deferToThread(condition):
            return
        await deferLater(reactor, 0.3)
    raise AssertionError(f"not after {timeout} s: {what}")


def open_gauge(site: Site, kind: str) -> float | None:
    _, text, _ = http("GET", f"http://127.0.0.1:{site.metrics_port}/metrics")
    for line in text.splitlines():
        if line.startswith(f'gateway_reconciliation_open_items{{kind="{kind}"}}'):
            return float(line.split()[-1])
    return None


@pytest_twisted.ensureDeferred
async def test_the_networks_remittances_match_the_bank_statement_but_a_planted_deposit(
    tmp_path: Path, database_url: str
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    site = await deferToThread(make_site, tmp_path, database_url)
    today = datetime.now(JST).date()
    debit_date = calendar.add_business_days(today, 3)
    factory = MpnCenterFactory(reactor, deadline=5.0)
    port = await listen_mpn_center(
        reactor,
        f"tcp:{site.center_port}:interface=127.0.0.1",
        site.tls("mpn-center"),
        factory=factory,
    )
    daemon = DaemonProcess.start(
        site.config, site.api_port, site.metrics_port, log=tmp_path / "twistd.log"
    )
    try:
        await deferToThread(daemon.wait, "/readyz", 20)
        await factory.opened.addTimeout(20, reactor)
        bills = await deferToThread(make_bills, site, debit_date)

        # Stores: the agency's 速報 over the link, then its 確報 file (振込予定日 in it).
        agency = Agency(
            Scenario(seed=21, void_probability=0.0, double_probability=0.0, clock_factor=0),
            clock=reactor,
        )
        records = agency.pay(Slip(b["cvs"]["barcode"], bill_no=b["bill_no"]) for b in bills["cvs"])
        link = start_agency_link(
            reactor,
            f"tcp:127.0.0.1:{site.link_port}",
            site.tls("cvs-agency"),
            "gateway",
            retry_delay=0.2,
        )
        try:
            acks = await agency.stream(link, records, timeout=TIMEOUT)
        finally:
            await link.stop()
        assert acks == {"00": 4}
        kakuho = agency.confirmation_file(agency.last_paid_on())
        agency.write_file(tmp_path / "inbox", "KAKUHO_1.txt", kakuho)

        # Pay-easy: the center's banks pay; the 閉局 confirms the day's 消込.
        center = MpnCenter(
            factory,
            MpnScenario(
                seed=21,
                drop_probability=0.0,
                cancel_probability=0.0,
                wrong_probability=0.0,
                double_probability=0.0,
            ),
        )
        await center.run(bills["payeasy"], rate=50).addTimeout(TIMEOUT, reactor)
        assert center.mismatches == []

        # Account transfer: the request file, the bank's result file into the inbox.
        made = await deferToThread(
            admin_json, site.config, "zengin", "request", "--date", debit_date.isoformat()
        )
        (written,) = made["files"]
        bank = SimulatedBank(
            Path(written["file"]).parent,
            tmp_path / "var" / "inbox" / "zengin",
            tmp_path / "bank",
            mix={"0": 100},
            seed=21,
        )
        assert len(bank.process_once()) == 1

        await eventually(lambda: confirmed(site, "cvs") == 4, "the 確報 file applied")
        await eventually(lambda: confirmed(site, "transfer") == 3, "the result file applied")
        await eventually(
            lambda: confirmed(site, "payeasy") == 3, "the 閉局 confirmed the 消込", timeout=150
        )

        # The center's bank: what each network remitted, and a deposit nobody expected.
        remitted = [
            *cvs_remittances(agency, CVS_NAME, CVS_FEE),
            *mpn_remittances(center, MPN_NAME, days=1),
            *transfer_remittances(bank.sent.iterdir(), BANK_NAME, on=today, days=0),
        ]
        assert {r.name for r in remitted} == {CVS_NAME, MPN_NAME, BANK_NAME}
        planted = Remittance(today, 1_234, "ﾔﾏﾀﾞ ﾀﾛｳ")
        days = sorted({r.day for r in [*remitted, planted]})
        path = statement_file(
            tmp_path / "bank-statements",
            "NYUSHUKKIN.txt",
            [*remitted, planted],
            first_day=days[0],
            last_day=days[-1],
        )
        summary = await deferToThread(admin_json, site.config, "recon", "import", str(path))
        assert summary["deposits"] == summary["new_deposits"] == len(remitted) + 1
        assert summary["remittances"] == {"matched": len(remitted)}
        assert summary["open_items"] == 1
        again = await deferToThread(admin_json, site.config, "recon", "import", str(path))
        assert again["already_imported"] and again["open_items"] == 1

        # Every expected remittance matched to the yen, the agency's fees deducted.
        for day in days:
            shown = await deferToThread(
                admin_json, site.config, "recon", "show", "--date", day.isoformat()
            )
            for row in shown["remittances"]:
                assert row["state"] == "matched" and row["difference"] == 0, row
            expected_here = [r for r in remitted if r.day == day]
            assert sum(row["received"] for row in shown["remittances"]) == sum(
                r.amount for r in expected_here
            )
            if day == today:
                (item,) = shown["items"]
                assert (item["kind"], item["amount"], item["status"]) == (
                    "unexpected",
                    1234,
                    "open",
                )
            else:
                assert shown["items"] == []
        cvs_rows = [
            row
            for day in days
            for row in (
                await deferToThread(
                    admin_json, site.config, "recon", "show", "--date", day.isoformat()
                )
            )["remittances"]
            if row["network"] == "cvs"
        ]
        assert sum(row["count"] for row in cvs_rows) == 4
        assert sum(row["fees"] for row in cvs_rows) == sum(
            CVS_FEE.of(row["count"]) for row in cvs_rows
        )

        # What finance sees through the API (an admin key; a biller's key is refused).
        status, view = await deferToThread(
            call, site, "GET", "/v1/admin/reconciliation", None, site.admin_key
        )
        assert status == 200
        assert [(i["kind"], i["amount"]) for i in view["items"]] == [("unexpected", 1234)]
        status, day_view = await deferToThread(
            call, site, "GET", f"/v1/admin/reconciliation?date={today}", None, site.admin_key
        )
        assert status == 200 and len(day_view["items"]) == 1
        assert any(d["amount"] == 1234 and d["matched"] is None for d in day_view["deposits"])
        assert (await deferToThread(call, site, "GET", "/v1/admin/reconciliation"))[0] == 403
        await eventually(lambda: open_gauge(site, "unexpected") == 1.0, "the open-item gauge")
        assert json.dumps(view, ensure_ascii=False).count("rci_") == 1
    finally:
        await deferToThread(daemon.stop)
        await maybeDeferred(port.stopListening)
