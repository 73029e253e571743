"""Webhook SSRF (issue 14, finding 2): a biller's endpoint must not make the daemon reach its
own loopback listeners, a metadata service or the private network it sits in.

- the real daemon (twistd, a subprocess) answers 422 to endpoints at internal literal
  addresses, and does not reach a receiver on 127.0.0.1 once ``allowed_networks`` no longer
  lists 127.0.0.0/8 (an endpoint registered before is refused at each attempt);
- the real service (make_service in this process) with a name resolver the test controls: a
  name that resolves to 127.0.0.1 is refused at delivery, and the delivery log says so;
- a real delivery to a receiver on [::1] when ``::1/128`` is allowed.

Nothing here sends a packet to a non-loopback address: 10.0.0.1, 169.254.169.254 and the like
are refused before any connection (tests/protocols/test_webhook_client.py shows it on a
MemoryReactor); a receiver stands on loopback only."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import deferLater
from twisted.web import server

from gateway.app.process import DaemonProcess, free_port, http
from gateway.protocols.webhook_client import REFUSED_ADDRESS
from tests.conftest import config_text, due
from tests.daemon import admin_cli
from tests.protocols.test_webhook_client import FakeResolver
from tests.webhooks.test_webhooks import (
    Receiver,
    gateway_with,
    log_of,
    new_bills,
    reactor,
    wait_for,
)

FAST = "poll_interval = 0.1\nbackoff_base = 0.1\nbackoff_cap = 0.5\ntimeout = 2\n"

# --- the real daemon --------------------------------------------------------------------------


class Arrivals(BaseHTTPRequestHandler):
    seen: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append(self.headers.get("Gateway-Event-Id", ""))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def loopback_receiver() -> Iterator[tuple[str, list[str]]]:
    """An HTTP receiver on 127.0.0.1 (a thread: the tests below do not run the reactor);
    yields its base URL and the event ids it received."""
    seen: list[str] = []
    handler = type("Handler", (Arrivals,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def start(tmp_path: Path, url: str, webhooks: str) -> DaemonProcess:
    api, metrics = free_port(), free_port()
    path = tmp_path / "gateway.toml"
    text = config_text(
        url,
        api=f"tcp:{api}:interface=127.0.0.1",
        metrics=f"tcp:{metrics}:interface=127.0.0.1",
        public_url=f"http://127.0.0.1:{api}",
        webhooks=webhooks,
    )
    path.write_text(text, encoding="utf-8")
    daemon = DaemonProcess.start(path, api, metrics)
    try:
        daemon.wait("/readyz")
    except BaseException:
        daemon.stop()
        raise
    return daemon


def onboard(config: Path, biller_id: str) -> dict[str, str]:
    admin_cli(config, "biller", "create", "--id", biller_id, "--name", "SSRF", "--kana", "ｴｽ")
    key = json.loads(admin_cli(config, "key", "create", "--biller", biller_id).stdout)["key"]
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def register(daemon: DaemonProcess, auth: dict[str, str], url: str) -> tuple[int, Any]:
    body = {"url": url, "events": ["*"]}
    status, doc, _ = http("POST", daemon.api + "/v1/webhook-endpoints", body, auth)
    return status, doc


def new_bill(daemon: DaemonProcess, auth: dict[str, str], bill_no: str) -> None:
    body = {"bill_no": bill_no, "amount": 1200, "due_date": due(20), "channels": ["cvs"]}
    status, doc, _ = http("POST", daemon.api + "/v1/bills", body, auth)
    assert status == 201, doc


def wait_until(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.e2e
def test_the_daemon_refuses_endpoints_at_internal_addresses(
    tmp_path: Path, migrated_url: str
) -> None:
    daemon = start(tmp_path, migrated_url, webhooks="")  # allowed_networks: empty, the default
    try:
        auth = onboard(daemon.config, "mallory")
        metrics_port = daemon.metrics.rsplit(":", 1)[1]
        for url in [
            f"http://127.0.0.1:{metrics_port}/metrics",  # the daemon's own metrics listener
            "https://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
            "https://10.0.0.1/",
            "https://[fd00::1]/",
            "https://[::1]/",
            "https://[::ffff:10.0.0.1]/",  # IPv4-mapped
            "https://[::ffff:169.254.169.254]/",
            "https://100.64.0.1/",  # CGNAT
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://[fe80::1]/",
            "https://224.0.0.1/",
            "https://[ff02::1]/",
            "https://0.0.0.0/",
            "https://[::]/",
            "https://2130706433/",  # 127.0.0.1 as the C resolver reads it
            "https://0x7f.1/",
            f"http://localhost:{metrics_port}/metrics",
            "https://[2001:db8::1]/",  # documentation prefix: not routed
        ]:
            status, problem = register(daemon, auth, url)
            assert status == 422, (url, problem)
            assert [e["field"] for e in problem["errors"]] == ["url"], (url, problem)
            assert "not a public address" in problem["errors"][0]["message"]
        status, listed, _ = http("GET", daemon.api + "/v1/webhook-endpoints", None, auth)
        assert status == 200 and listed["data"] == []
        # a public name is accepted (its addresses are checked when it is delivered to)
        assert register(daemon, auth, "https://hooks.example.com/gw")[0] == 201
    finally:
        assert daemon.stop() == 0


@pytest.mark.e2e
def test_a_receiver_on_loopback_is_not_reached_unless_its_network_is_allowed(
    tmp_path: Path, migrated_url: str, loopback_receiver: tuple[str, list[str]]
) -> None:
    """Registered while 127.0.0.0/8 was allowed, the endpoint gets its webhooks; once the
    operator removes it from allowed_networks, every attempt is refused before connecting."""
    base, seen = loopback_receiver
    allowed = 'allowed_networks = ["127.0.0.0/8"]\n' + FAST
    daemon = start(tmp_path, migrated_url, webhooks=allowed)
    try:
        auth = onboard(daemon.config, "acme")
        status, endpoint = register(daemon, auth, base + "/hook")
        assert status == 201, endpoint
        new_bill(daemon, auth, "SSRF-1")
        wait_until("the webhook while 127.0.0.0/8 is allowed", lambda: len(seen) == 1)
    finally:
        assert daemon.stop() == 0

    daemon = start(tmp_path, migrated_url, webhooks=FAST)  # allowed_networks: empty
    try:
        assert register(daemon, auth, base + "/again")[0] == 422
        new_bill(daemon, auth, "SSRF-2")
        deliveries = daemon.api + f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"

        def refused_twice() -> list[dict[str, Any]]:
            _, page, _ = http("GET", deliveries, None, auth)
            refused = [e for e in page["data"] if e["error"] == REFUSED_ADDRESS]
            return refused if len(refused) >= 2 else []

        refused = wait_until("two refused attempts in the delivery log", refused_twice)
        assert all(e["status_code"] is None and e["result"] == "retry" for e in refused)
        assert seen == [seen[0]]  # the receiver got nothing more
        _, metrics, _ = http("GET", daemon.metrics + "/metrics")
        line = next(
            m for m in metrics.splitlines() if m.startswith("gateway_webhook_refused_addresses")
        )
        assert float(line.split()[-1]) >= 2
    finally:
        assert daemon.stop() == 0


# --- the real service, with a name resolver the test controls ----------------------------------


@pytest_twisted.ensureDeferred
async def test_a_name_that_resolves_to_loopback_is_refused_at_delivery(
    tmp_path: Path, migrated_url: str
) -> None:
    receiver = Receiver()
    receiver.start()
    port = receiver.port.getHost().port
    resolver = FakeResolver({"hooks.rebind.test": [["127.0.0.1"]]}, reactor().nameResolver)
    previous = reactor().installNameResolver(resolver)
    try:
        # allow_http: the name is not loopback, so http:// needs it; no network is allowed
        async with gateway_with(tmp_path, migrated_url, allowed_networks=[], allow_http=True) as gw:
            acme = gw.onboard("acme")
            body = {"url": f"http://hooks.rebind.test:{port}/hook", "events": ["*"]}
            status, endpoint, _ = await gw.request("POST", "/v1/webhook-endpoints", acme, body)
            assert status == 201, endpoint  # a name: its addresses are checked at each attempt
            receiver.secrets["/hook"] = endpoint["secret"]
            await new_bills(gw, acme, 1)
            entries: list[dict[str, Any]] = []

            async def refused() -> bool:
                entries[:] = await log_of(gw, acme, endpoint["id"])
                return sum(e["error"] == REFUSED_ADDRESS for e in entries) >= 2

            deadline = reactor().seconds() + 20
            while not await refused():
                assert reactor().seconds() < deadline, entries
                await deferLater(reactor(), 0.05)
            assert receiver.arrivals == []
            assert "hooks.rebind.test" in resolver.asked

        # the same name, the same receiver, with 127.0.0.0/8 allowed: delivered (the resolver
        # above is what the delivery used)
        async with gateway_with(tmp_path, migrated_url, allow_http=True) as gw:
            beta = gw.onboard("beta")
            body = {"url": f"http://hooks.rebind.test:{port}/ok", "events": ["*"]}
            status, endpoint, _ = await gw.request("POST", "/v1/webhook-endpoints", beta, body)
            assert status == 201, endpoint
            receiver.secrets["/ok"] = endpoint["secret"]
            [event_id] = await new_bills(gw, beta, 1, prefix="OK")
            await wait_for("the webhook", lambda: len(receiver.at("/ok")) == 1)
            assert receiver.at("/ok")[0].event_id == event_id
            assert receiver.at("/ok")[0].verified == "ok"
    finally:
        reactor().installNameResolver(previous)
        await receiver.stop()


@pytest_twisted.ensureDeferred
async def test_a_webhook_reaches_a_receiver_on_ipv6_loopback_when_allowed(
    tmp_path: Path, migrated_url: str
) -> None:
    """http://[::1]:port/ failed with InvalidCodepoint before any connection."""
    receiver = Receiver()
    site = server.Site(receiver)
    site.log = lambda request: None  # type: ignore[method-assign]
    receiver.port = reactor().listenTCP(0, site, interface="::1")
    receiver.base = f"http://[::1]:{receiver.port.getHost().port}"
    try:
        async with gateway_with(tmp_path, migrated_url, allowed_networks=["::1/128"]) as gw:
            acme = gw.onboard("acme")
            body = {"url": receiver.base + "/v6", "events": ["*"]}
            status, endpoint, _ = await gw.request("POST", "/v1/webhook-endpoints", acme, body)
            assert status == 201, endpoint
            receiver.secrets["/v6"] = endpoint["secret"]
            [event_id] = await new_bills(gw, acme, 1)
            await wait_for("the webhook on [::1]", lambda: len(receiver.at("/v6")) == 1)
            arrival = receiver.at("/v6")[0]
            assert (arrival.event_id, arrival.verified) == (event_id, "ok")

            async def logged() -> list[dict[str, Any]]:
                return await log_of(gw, acme, endpoint["id"])

            entries = await logged()
            deadline = reactor().seconds() + 10
            while not entries or entries[0]["result"] == "in_flight":
                assert reactor().seconds() < deadline, entries
                await deferLater(reactor(), 0.05)
                entries = await logged()
            assert [(e["result"], e["status_code"], e["error"]) for e in entries] == [
                ("success", 200, None)
            ]
            # 127.0.0.0/8 is not in this list: refused
            v4 = {"url": "http://127.0.0.1:9/", "events": ["*"]}
            assert (await gw.request("POST", "/v1/webhook-endpoints", acme, v4))[0] == 422
    finally:
        await receiver.stop()


@pytest_twisted.ensureDeferred
async def test_names_resolving_to_internal_hosts_are_refused_before_any_connection(
    tmp_path: Path, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metadata service and a private host behind names: every attempt fails as a refused
    address and the daemon never asks the reactor to connect there. (A guard on connectTCP
    refuses any non-loopback connection, so even a daemon without the check sends nothing.)"""
    asked: list[str] = []
    connect = reactor().connectTCP

    def guarded(host: str, port: int, factory: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        if not (host.startswith("127.") or host == "::1"):
            raise OSError(f"test guard: no connection to {host}")
        return connect(host, port, factory, *args, **kwargs)

    monkeypatch.setattr(reactor(), "connectTCP", guarded)
    resolver = FakeResolver(
        {
            "metadata.test": [["169.254.169.254"]],
            "intranet.test": [["10.0.0.1", "fd00::1", "::ffff:192.168.1.1"]],
        },
        reactor().nameResolver,
    )
    previous = reactor().installNameResolver(resolver)
    try:
        async with gateway_with(tmp_path, migrated_url) as gw:  # 127.0.0.0/8 allowed only
            acme = gw.onboard("acme")
            endpoints = []
            for url in ("https://metadata.test/latest/meta-data/", "https://intranet.test/"):
                body = {"url": url, "events": ["*"]}
                status, doc, _ = await gw.request("POST", "/v1/webhook-endpoints", acme, body)
                assert status == 201, doc
                endpoints.append(doc["id"])
            await new_bills(gw, acme, 1)
            for endpoint_id in endpoints:
                deadline = reactor().seconds() + 20
                entries = await log_of(gw, acme, endpoint_id)
                while sum(e["error"] == REFUSED_ADDRESS for e in entries) < 2:
                    assert reactor().seconds() < deadline, entries
                    await deferLater(reactor(), 0.05)
                    entries = await log_of(gw, acme, endpoint_id)
                assert {e["error"] for e in entries} <= {REFUSED_ADDRESS, None}
    finally:
        reactor().installNameResolver(previous)
    assert {"metadata.test", "intranet.test"} <= set(resolver.asked)
    assert [h for h in asked if not (h.startswith("127.") or h == "::1")] == []


@pytest_twisted.ensureDeferred
async def test_a_name_is_resolved_by_the_system_resolver_at_each_attempt(
    tmp_path: Path, migrated_url: str
) -> None:
    """No fake here: ``localhost`` goes through the reactor's own resolver (getaddrinfo), and
    its addresses are checked like any name's."""
    receiver = Receiver()
    receiver.start()
    port = receiver.port.getHost().port
    try:
        async with gateway_with(tmp_path, migrated_url) as gw:  # 127.0.0.0/8 allowed
            acme = gw.onboard("acme")
            body = {"url": f"http://localhost:{port}/by-name", "events": ["*"]}
            status, endpoint, _ = await gw.request("POST", "/v1/webhook-endpoints", acme, body)
            assert status == 201, endpoint
            receiver.secrets["/by-name"] = endpoint["secret"]
            [event_id] = await new_bills(gw, acme, 1)
            await wait_for("the webhook", lambda: len(receiver.at("/by-name")) == 1)
            assert receiver.at("/by-name")[0].event_id == event_id
            assert receiver.at("/by-name")[0].verified == "ok"
    finally:
        await receiver.stop()
