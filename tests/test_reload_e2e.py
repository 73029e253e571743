"""SIGHUP against the real daemon (twistd subprocess): the 速報 link takes the new peer names
for new connections while the established one keeps acking; a bad file is refused whole."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.threads import deferToThread

from gateway.app.process import DaemonProcess, admin, http
from gateway.infra.tls import TLSFiles, make_certs
from simulators.cvs_link import start_agency_link
from tests.protocols.test_cvs_link_reload import NEW, OLD, one_record, record
from tests.test_cvs_link_e2e import make_site

pytestmark = pytest.mark.e2e
TIMEOUT = 30


def reloads(daemon: DaemonProcess) -> dict[str, float]:
    _, text, _ = http("GET", daemon.metrics + "/metrics")
    return {
        s.labels["result"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "gateway_config_reloads_total"
    }


def hang_up(daemon: DaemonProcess, line: str) -> None:
    """SIGHUP, then wait for the ``line`` it logs (the n-th occurrence: one more than before)."""
    assert daemon.proc is not None
    before = daemon.output().count(line)
    daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + TIMEOUT
    while daemon.output().count(line) <= before:
        assert time.monotonic() < deadline, f"no {line!r} after SIGHUP:\n{daemon.output()}"
        time.sleep(0.05)


@pytest_twisted.ensureDeferred
async def test_sighup_reloads_peers_and_keeps_the_established_link(
    tmp_path: Path, database_url: str
) -> None:
    from twisted.internet import reactor  # noqa: TID251

    site = make_site(tmp_path, database_url)
    certs = make_certs(site.tls, now=datetime.now(UTC), peers=(OLD, NEW, "mpn-center"))
    await deferToThread(admin, site.config, "migrate")
    daemon = site.start()
    await deferToThread(daemon.wait, "/readyz")
    agency = TLSFiles(certs["ca"], certs[OLD], certs[f"{OLD}_key"])
    link = start_agency_link(reactor, f"tcp:127.0.0.1:{site.link_port}", agency, "gateway")
    try:
        first = await link.send(record(1)).addTimeout(TIMEOUT, reactor)
        assert first in {"00", "10"}

        text = site.config.read_text(encoding="utf-8")
        site.config.write_text(text.replace(f'peers = ["{OLD}"]', f'peers = ["{NEW}"]'), "utf-8")
        await deferToThread(hang_up, daemon, "reloaded: ")
        assert f"reloaded: cvs link (peers {NEW})" in daemon.output()

        # The established connection keeps acking; new ones follow the new names.
        assert await link.send(record(2)).addTimeout(TIMEOUT, reactor) == first
        port = site.link_port
        assert await deferToThread(one_record, port, certs, OLD) == "closed"
        assert await deferToThread(one_record, port, certs, NEW) == first

        # A file that is not there, beside the old peers: refused with the option's name, and
        # not half applied (the old peer stays out).
        bad = text.replace("gateway.pem", "missing.pem")
        site.config.write_text(bad, "utf-8")
        await deferToThread(hang_up, daemon, "reload refused: ")
        assert "reload refused: tls.certificate: " in daemon.output()
        assert await deferToThread(one_record, port, certs, OLD) == "closed"
        assert await deferToThread(one_record, port, certs, NEW) == first
        assert await link.send(record(3)).addTimeout(TIMEOUT, reactor) == first
        assert await deferToThread(reloads, daemon) == {"ok": 1.0, "refused": 1.0}
    finally:
        await link.stop()
        assert await deferToThread(daemon.stop) == 0
