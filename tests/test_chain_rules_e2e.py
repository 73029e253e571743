"""Chain rules against the real daemon (twistd subprocess), paid through the agency simulator
over the mutual-TLS 速報 link and confirmed by its 確報 file in the inbox:

- the operator sets the biller's rules with ``gateway-admin biller set`` (accepted chains, a
  chain that stamps every receipt of ¥50,000 or more whatever the tax);
- every payment at a chain the biller does not accept is stored, pays its bill and is flagged
  ``chain_accepted: false`` in ``GET /v1/payments`` and in its events, and counted in
  ``gateway_ingest_off_chain_payments_total``; the others are not;
- the settlement (``GET /v1/settlements/upcoming``, the run's own arithmetic) charges a stamp
  for exactly the receipts the chains stamped: the slips that asked for one, and the taxable
  bills of ¥50,000 or more before their tax was taken out that were paid at the stamp chain.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from gateway.app.process import admin, http
from gateway.model import JST
from simulators.cvs import Agency, Scenario, Slip
from simulators.cvs_link import start_agency_link
from tests.conftest import due
from tests.test_cvs_link_e2e import make_site, metric

pytestmark = pytest.mark.e2e

ACCEPTED = {"000010", "000020", "000030"}
STAMP_CHAIN = "000020"
CHAINS = ("000010", "000020", "000030", "000050", "000820")  # Daily Yamazaki, PayPay: not taken
# (amount, tax): taxable bills of ¥52,000 (¥47,273 before tax: the slip asks for no stamp),
# bills whose slip asks for a stamp, and small ones.
BILLS = [(52_000, 4_727)] * 8 + [(60_000, 0)] * 3 + [(3_000, 0)] * 3


def setup(site: Any) -> str:
    """Migrate, certificates, the biller with its contract and chain rules, its key."""
    admin(site.config, "migrate")
    admin(site.config, "certs", "make", str(site.tls))
    admin(site.config, "biller", "create", "--id", "gas", "--name", "東都ガス", "--kana", "ﾄｳﾄｶﾞｽ",
          "--channels", "cvs")  # fmt: skip
    plan = site.config.parent / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "effective_from": datetime.now(JST).date().replace(day=1).isoformat(),
                "cycle": "monthly",
                "payout_days": 3,
                "channels": {"cvs": {"per_payment": 0, "stamp_charge": 200}},
            }
        )
    )
    admin(site.config, "contract", "set", "--biller", "gas", "--plan", str(plan))
    shown = json.loads(
        admin(
            site.config,
            "biller",
            "set",
            "--id",
            "gas",
            "--chains",
            ",".join(sorted(ACCEPTED)),
            "--stamp-chains",
            STAMP_CHAIN,
        ).stdout
    )
    assert shown["chain_rules"] == {
        "accepted": ["010", "020", "030"],
        "max_due_days": {},
        "stamp_all": ["020"],
    }
    return str(json.loads(admin(site.config, "key", "create", "--biller", "gas").stdout)["key"])


@pytest_twisted.ensureDeferred
async def test_off_chain_payments_are_flagged_and_stamps_follow_the_chain(
    tmp_path: Path, database_url: str
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    site = make_site(tmp_path, database_url)
    key = await deferToThread(setup, site)
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    daemon = site.start()
    link = None
    try:
        await deferToThread(daemon.wait, "/readyz")
        slips = []
        for n, (amount, tax) in enumerate(BILLS):
            body: dict[str, Any] = {
                "bill_no": f"G-{n}",
                "amount": amount,
                "due_date": due(20),
                "channels": ["cvs"],
            }
            if tax:
                body["tax"] = {"taxable": True, "tax_amount": tax}
            status, bill, _ = await deferToThread(
                http, "POST", daemon.api + "/v1/bills", body, auth
            )
            assert status == 201, bill
            assert bill["cvs"]["stamp"] is (amount - tax >= 50_000)
            slips.append(Slip(bill["cvs"]["barcode"], bill_no=bill["bill_no"]))
        scenario = Scenario(
            seed=22, void_probability=0, double_probability=0, chains=CHAINS, clock_factor=0
        )
        agency = Agency(scenario, reactor)
        link = start_agency_link(
            reactor,
            f"tcp:127.0.0.1:{site.link_port}",
            site.agency_tls(),
            "gateway",
            retry_delay=0.2,
        )
        acks = await agency.stream(link, agency.pay(slips), timeout=30)
        assert acks == {"00": len(BILLS)}
        inbox = tmp_path / "inbox"
        agency.write_file(inbox, "kakuho.dat", agency.confirmation_file(agency.last_paid_on()))
        for _ in range(200):
            if (inbox / "done" / "kakuho.dat").exists():
                break
            assert not (inbox / "rejected" / "kakuho.dat").exists()
            await deferLater(reactor, 0.1)
        else:
            raise AssertionError("kakuho.dat was not applied")

        # The simulator's own record: where each bill was paid.
        paid = {p.bill_no: p for p in agency.payments.values()}
        off_chain = {b for b, p in paid.items() if p.chain not in ACCEPTED}
        stamped = {
            b
            for b, p in paid.items()
            if p.barcode[36] == "1" or (p.chain == STAMP_CHAIN and p.amount >= 50_000)
        }
        by_chain_rule = {b for b in stamped if paid[b].barcode[36] == "0"}
        # The seed spreads the bills so that every case is there.
        assert off_chain and len(off_chain) < len(BILLS) and by_chain_rule
        assert any(p.chain != STAMP_CHAIN and p.amount == 52_000 for p in paid.values())

        status, page, _ = await deferToThread(
            http, "GET", daemon.api + "/v1/payments?limit=100", None, auth
        )
        assert status == 200 and len(page["data"]) == len(BILLS)
        shown = {p["bill_no"]: p for p in page["data"]}
        assert {b for b, p in shown.items() if p["chain_accepted"] is False} == off_chain
        assert all(p["status"] == "confirmed" for p in shown.values())
        status, listed, _ = await deferToThread(
            http, "GET", daemon.api + "/v1/bills?limit=100", None, auth
        )
        assert {b["status"] for b in listed["data"]} == {"confirmed"}  # the money counts
        status, feed, _ = await deferToThread(
            http, "GET", daemon.api + "/v1/events?limit=500", None, auth
        )
        flagged = {
            (e["type"], e["data"]["payment"]["bill_no"])
            for e in feed["data"]
            if e["data"].get("payment", {}).get("chain_accepted") is False
        }
        assert flagged == {(t, b) for b in off_chain for t in ("payment.preliminary",
                                                               "payment.confirmed")}  # fmt: skip
        assert metric(daemon, "gateway_ingest_off_chain_payments_total", channel="cvs") == len(
            off_chain
        )

        status, upcoming, _ = await deferToThread(
            http, "GET", daemon.api + "/v1/settlements/upcoming", None, auth
        )
        assert status == 200, upcoming
        assert upcoming["payments_count"] == len(BILLS)
        assert upcoming["stamp_count"] == len(stamped)
        assert upcoming["stamp_duty"] == 200 * len(stamped)
        assert sum(line["amount"] for line in upcoming["lines"]) == upcoming["payout"]
    finally:
        if link is not None:
            await link.stop()
        await deferToThread(daemon.stop)
