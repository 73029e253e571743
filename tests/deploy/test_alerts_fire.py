"""The alerts fire against the real daemon: a real Prometheus (the Debian package ``prometheus``)
scrapes the real service in this process every second with deploy/prometheus/alerts.yml and
recording.yml, and the daemon is driven into each condition:

- a CVS agency connects to the 速報 link, then goes away: GatewayCvsLinkDown becomes active
  (pending: it fires after 10 minutes), and was not while the agency was there;
- a 確報 file that cannot be read is dropped in the watched inbox: GatewayInboxFileRejected fires;
- the MPN center answers 閉局 with other counters than the gateway's: GatewayMpnCloseMismatch
  fires; the center goes away: GatewayMpnLinkDown becomes active;
- a biller's webhook receiver answers 500 to everything: GatewayWebhookEndpointFailing becomes
  active for that endpoint, and no other.

Each wait is bounded (60 s); an alert that does not come fails the test with its name.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.web import resource, server

from gateway.app.process import free_port
from gateway.infra.tls import TLSFiles, make_certs
from gateway.mappers.mpn.mapper import Close
from gateway.networks.mpn import DayCloser
from simulators.cvs_link import start_agency_link
from simulators.mpn_link import MpnCenterFactory, listen_mpn_center
from tests.conftest import config_text, due, onboard
from tests.deploy.promserver import daemon, needs_prometheus, prometheus, reactor

pytestmark = needs_prometheus


def tls_section(tls: Path) -> str:
    return (
        f'[tls]\nca = "{tls}/ca.pem"\ncertificate = "{tls}/gateway.pem"\n'
        f'key = "{tls}/gateway.key"\n\n'
    )


def peer_files(tls: Path, name: str) -> TLSFiles:
    return TLSFiles(tls / "ca.pem", tls / f"{name}.pem", tls / f"{name}.key")


@pytest_twisted.ensureDeferred
async def test_a_dropped_cvs_link_and_a_rejected_file_raise_their_alerts(
    tmp_path: Path, migrated_url: str
) -> None:
    tls = tmp_path / "tls"
    make_certs(tls, now=datetime.now(UTC))
    link_port = free_port()
    inbox = tmp_path / "inbox"
    extra = (
        tls_section(tls)
        + f'[cvs.link]\nlisten = "tcp:{link_port}:interface=127.0.0.1"\npeers = ["cvs-agency"]\n\n'
        + f'[cvs.files]\ninbox = "{inbox}"\npoll_interval = 0.2\n'
    )
    async with daemon(tmp_path, config_text(migrated_url, extra=extra)) as gw:
        with prometheus(tmp_path / "prometheus", gw.running.metrics) as prom:
            agency = start_agency_link(
                reactor(), f"tcp:127.0.0.1:{link_port}", peer_files(tls, "cvs-agency"), "gateway"
            )
            try:
                await prom.scraped('gateway_cvs_link_connections{job="gateway"}', 1)
                assert await prom.alerts("GatewayCvsLinkDown") == []
                assert await prom.alerts("GatewayInboxFileRejected") == []
                assert await prom.value('gateway_tls_certificate_not_after_seconds{link="cvs"}')
            finally:
                await agency.stop()
            down = await prom.active("GatewayCvsLinkDown")
            assert down["labels"]["severity"] == "critical"
            assert down["annotations"]["runbook_url"] == "docs/runbook.md#GatewayCvsLinkDown"

            (inbox / "KAKUHO-20261201.dat").write_bytes(b"not a result file\r\n")
            rejected = await prom.active("GatewayInboxFileRejected", states=("firing",))
            assert rejected["labels"]["network"] == "cvs"
            assert (inbox / "rejected" / "KAKUHO-20261201.dat").exists()


@pytest_twisted.ensureDeferred
async def test_a_close_mismatch_and_a_dropped_mpn_link_raise_their_alerts(
    tmp_path: Path, migrated_url: str
) -> None:
    tls = tmp_path / "tls"
    make_certs(tls, now=datetime.now(UTC))
    center_port = free_port()

    def other_figures(ours: Close) -> Close:  # the center counts a payment we never saw
        return dataclasses.replace(
            ours, payments_count=ours.payments_count + 1, payments_sum=ours.payments_sum + 1000
        )

    center = MpnCenterFactory(reactor(), close_figures=other_figures)
    port = await listen_mpn_center(
        reactor(),
        f"tcp:{center_port}:interface=127.0.0.1",
        peer_files(tls, "mpn-center"),
        factory=center,
    )
    text = config_text(migrated_url, extra=tls_section(tls)).replace(
        '[mpn]\ninstitution_code = "58191"\n',
        '[mpn]\ninstitution_code = "58191"\n'
        f'connect = "tcp:127.0.0.1:{center_port}"\ncenter_code = "0001"\nhostname = "mpn-center"\n',
    )
    try:
        async with daemon(tmp_path, text) as gw:
            with prometheus(tmp_path / "prometheus", gw.running.metrics) as prom:
                await center.opened
                await prom.scraped('gateway_mpn_link_up{job="gateway"}', 1)
                assert await prom.alerts("GatewayMpnLinkDown") == []
                assert await prom.alerts("GatewayMpnCloseMismatch") == []

                (closer,) = gw.services(DayCloser)
                assert await Deferred.fromCoroutine(closer.close(closer.network.business_date()))
                mismatch = await prom.active("GatewayMpnCloseMismatch", states=("firing",))
                assert mismatch["labels"]["severity"] == "critical"

                await maybeDeferred(port.stopListening)
                if center.connected_protocol is not None:
                    transport: Any = center.connected_protocol.transport
                    transport.abortConnection()
                down = await prom.active("GatewayMpnLinkDown")
                assert down["labels"]["instance"] == gw.running.metrics.removeprefix("http://")
    finally:
        await maybeDeferred(port.stopListening)


class Failing(resource.Resource):
    """A webhook receiver that answers 500 to everything."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.posts = 0

    def render_POST(self, request: server.Request) -> bytes:
        self.posts += 1
        request.setResponseCode(500)
        return b"down for maintenance"


WEBHOOKS = (
    'allowed_networks = ["127.0.0.0/8"]\ntimeout = 0.5\npoll_interval = 0.05\n'
    "backoff_base = 0.05\nbackoff_cap = 0.2\n"
)


@pytest_twisted.ensureDeferred
async def test_a_failing_webhook_endpoint_raises_its_alert(
    tmp_path: Path, migrated_url: str
) -> None:
    receiver = Failing()
    listening = reactor().listenTCP(0, server.Site(receiver), interface="127.0.0.1")
    url = f"http://127.0.0.1:{listening.getHost().port}/hook"
    try:
        config = config_text(migrated_url, webhooks=WEBHOOKS)
        async with daemon(tmp_path, config) as gw:
            with prometheus(tmp_path / "prometheus", gw.running.metrics) as prom:
                await prom.scraped('gateway_ready{job="gateway"}', 1)
                acme = onboard(gw.running.config_path, "acme")
                status, endpoint, _ = await gw.running.request(
                    "POST", "/v1/webhook-endpoints", acme, {"url": url, "events": ["*"]}
                )
                assert status == 201, endpoint
                assert await prom.alerts("GatewayWebhookEndpointFailing") == []
                for i in range(3):
                    body = {
                        "bill_no": f"WH-{i}",
                        "amount": 1000,
                        "due_date": due(30),
                        "channels": ["cvs"],
                    }
                    status, doc, _ = await gw.running.request("POST", "/v1/bills", acme, body)
                    assert status == 201, doc
                failing = await prom.active("GatewayWebhookEndpointFailing")
                assert failing["labels"]["endpoint"] == endpoint["id"]
                assert receiver.posts >= 5
                assert len(await prom.alerts("GatewayWebhookEndpointFailing")) == 1
    finally:
        await maybeDeferred(listening.stopListening)
