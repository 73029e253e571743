"""Webhooks end to end: the real service (make_service) in this process, a real HTTP receiver
(twisted.web on 127.0.0.1:0) that checks every signature with gateway.webhooks.signing, and the
delivery log read back through the API. SQLite, or PostgreSQL when GATEWAY_TEST_DATABASE_URL
is set. Timers are short through [webhooks] (poll 0.05 s, back-off 0.05-0.2 s)."""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from sqlalchemy import select
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.web import resource, server

from gateway.config import WebhooksConfig, load_config
from gateway.model import Channel
from gateway.protocols.webhook_client import PostResult, WebhookClient, client_for
from gateway.store import Store, create_db_engine
from gateway.store.billers import create_biller
from gateway.store.events import append_event
from gateway.store.schema import webhook_attempts, webhook_deliveries
from gateway.store.webhooks import create_endpoint
from gateway.webhooks.address import AddressPolicy
from gateway.webhooks.delivery import WebhookDelivery
from gateway.webhooks.signing import SignatureError, verify_signature
from tests.conftest import Biller, Running, admin, config_text, due

LOOPBACK = (IPv4Network("127.0.0.0/8"),)  # the receivers' network: allowed in these tests


def reactor() -> Any:
    from twisted.internet import reactor as global_reactor  # noqa: TID251 - the tests' reactor

    return global_reactor


def webhooks_toml(**over: Any) -> str:
    """The body of the [webhooks] section: short timers, receivers on 127.0.0.0/8 allowed."""
    values: dict[str, Any] = {
        "allowed_networks": ["127.0.0.0/8"],
        "timeout": 0.5,
        "poll_interval": 0.05,
        "backoff_base": 0.05,
        "backoff_cap": 0.2,
        "concurrency": 8,
        "per_endpoint": 2,
    }
    values.update(over)
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


@asynccontextmanager
async def gateway_with(tmp_path: Path, url: str, **webhooks: Any) -> AsyncIterator[Running]:
    from gateway.app.service import make_service

    path = tmp_path / "gateway.toml"
    path.write_text(config_text(url, webhooks=webhooks_toml(**webhooks)), encoding="utf-8")
    config = load_config(path)
    top = make_service(config, reactor())
    top.startService()
    try:
        api = await top.getServiceNamed("api").listening  # type: ignore[attr-defined]
        metrics = await top.getServiceNamed("metrics").listening  # type: ignore[attr-defined]
        yield Running(
            config,
            path,
            f"http://127.0.0.1:{api.getHost().port}",
            f"http://127.0.0.1:{metrics.getHost().port}",
        )
    finally:
        await top.stopService()


# --- the receiver ---------------------------------------------------------------------------


@dataclass
class Arrival:
    path: str
    at: float  # reactor.seconds(): the daemon's clock
    event_id: str
    delivery_id: str
    body: bytes
    verified: str  # "ok" or why not
    content_type: str
    answer: int | str = 0  # the status sent, or "hang"


Behaviour = Callable[[Arrival, int], int | str]  # (arrival, nth arrival of this event) -> answer


@dataclass
class Receiver(resource.Resource):
    """Endpoints at paths of one Site: each with its secret and behaviour."""

    isLeaf = True
    secrets: dict[str, str] = field(default_factory=dict)
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    arrivals: list[Arrival] = field(default_factory=list)
    hanging: dict[str, set[server.Request]] = field(default_factory=dict)
    most_hanging: Counter[str] = field(default_factory=Counter)
    base: str = ""
    port: Any = None

    def __post_init__(self) -> None:
        resource.Resource.__init__(self)

    def render_POST(self, request: server.Request) -> Any:
        path = request.path.decode()
        assert request.content is not None
        body = request.content.read()
        try:
            verify_signature(
                self.secrets.get(path, "?"),
                request.getHeader("gateway-signature") or "",
                body,
                now=reactor().seconds(),
            )
            verified = "ok"
        except SignatureError as e:
            verified = f"{type(e).__name__}: {e}"
        arrival = Arrival(
            path,
            reactor().seconds(),
            request.getHeader("gateway-event-id") or "",
            request.getHeader("gateway-delivery-id") or "",
            body,
            verified,
            request.getHeader("content-type") or "",
        )
        self.arrivals.append(arrival)
        nth = sum(1 for a in self.arrivals if a.path == path and a.event_id == arrival.event_id)
        answer = self.behaviour.get(path, lambda a, n: 200)(arrival, nth)
        arrival.answer = answer
        if answer == "hang":
            open_ = self.hanging.setdefault(path, set())
            open_.add(request)
            self.most_hanging[path] = max(self.most_hanging[path], len(open_))
            request.notifyFinish().addBoth(lambda _: open_.discard(request))
            return server.NOT_DONE_YET
        assert isinstance(answer, int)
        request.setResponseCode(answer)
        return b"thanks"

    def start(self) -> None:
        site = server.Site(self)
        site.log = lambda request: None  # type: ignore[method-assign]
        self.port = reactor().listenTCP(0, site, interface="127.0.0.1")
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"

    async def stop(self) -> None:
        for open_ in self.hanging.values():
            for request in list(open_):
                request.channel.transport.abortConnection()  # type: ignore[union-attr]
        await self.port.stopListening()

    def at(self, path: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.path == path]


@pytest_twisted.async_yield_fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    r.start()
    try:
        yield r
    finally:
        await r.stop()


async def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = reactor().seconds() + timeout
    while not check():
        if reactor().seconds() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await deferLater(reactor(), 0.05)


async def register(
    gw: Running, who: Biller, receiver: Receiver, path: str, events: list[str] | None = None
) -> dict[str, Any]:
    status, doc, _ = await gw.request(
        "POST",
        "/v1/webhook-endpoints",
        who,
        {"url": receiver.base + path, "events": events or ["*"]},
    )
    assert status == 201, doc
    receiver.secrets[path] = doc["secret"]
    return doc


async def new_bills(gw: Running, who: Biller, n: int, prefix: str = "WH") -> list[str]:
    for i in range(n):
        body = {"bill_no": f"{prefix}-{i:04d}", "amount": 1000 + i, "due_date": due(30)}
        body["channels"] = ["cvs"]
        status, doc, _ = await gw.request("POST", "/v1/bills", who, body)
        assert status == 201, doc
    status, page, _ = await gw.request("GET", "/v1/events?limit=500", who)
    assert status == 200
    return [e["id"] for e in page["data"] if e["data"]["bill"]["bill_no"].startswith(prefix)]


async def log_of(gw: Running, who: Biller, endpoint_id: str) -> list[dict[str, Any]]:
    status, page, _ = await gw.request(
        "GET", f"/v1/webhook-endpoints/{endpoint_id}/deliveries?limit=100", who
    )
    assert status == 200, page
    data: list[dict[str, Any]] = page["data"]
    return data


# --- the API --------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_endpoints_api_shows_the_secret_once(tmp_path: Path, migrated_url: str) -> None:
    async with gateway_with(tmp_path, migrated_url) as gw:
        acme = gw.onboard("acme")
        body = {"url": "https://hooks.acme.example/gw", "events": ["payment.preliminary"]}
        key = {"Idempotency-Key": "create-1"}
        status, made, _ = await gw.request("POST", "/v1/webhook-endpoints", acme, body, key)
        assert status == 201, made
        assert made["secret"].startswith("whsec_") and len(made["secret"]) >= 40
        assert made["status"] == "enabled" and made["events"] == ["payment.preliminary"]
        assert made["disabled_at"] is None and made["url"] == body["url"]

        # the same key and body: the same answer (secret included); another body: 409
        status, again, headers = await gw.request("POST", "/v1/webhook-endpoints", acme, body, key)
        assert (status, again) == (201, made)
        assert headers.getRawHeaders("idempotent-replayed") == ["true"]
        other = {**body, "events": ["*"]}
        status, problem, _ = await gw.request("POST", "/v1/webhook-endpoints", acme, other, key)
        assert status == 409 and problem["errors"][0]["field"] == "Idempotency-Key"

        status, listed, _ = await gw.request("GET", "/v1/webhook-endpoints", acme)
        assert status == 200 and listed["next_cursor"] is None
        assert listed["data"] == [{k: v for k, v in made.items() if k != "secret"}]
        status, one, _ = await gw.request("GET", f"/v1/webhook-endpoints/{made['id']}", acme)
        assert status == 200 and "secret" not in one and made["secret"] not in json.dumps(one)

        status, gone, _ = await gw.request("DELETE", f"/v1/webhook-endpoints/{made['id']}", acme)
        assert status == 200 and gone["status"] == "disabled" and gone["disabled_at"]
        status, twice, _ = await gw.request("DELETE", f"/v1/webhook-endpoints/{made['id']}", acme)
        assert (status, twice) == (200, gone)

        # admin keys have no endpoints; no key, no answer
        key = admin(gw.config_path, "key", "create", "--admin")["key"]
        as_admin = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        for method, path in [
            ("GET", "/v1/webhook-endpoints"),
            ("POST", "/v1/webhook-endpoints"),
            ("DELETE", f"/v1/webhook-endpoints/{made['id']}"),
            ("POST", "/v1/events/evt_000000000000000000000000/redeliver"),
        ]:
            status, problem, _ = await gw.request(method, path, headers=as_admin, body=body)
            assert status == 403, problem
        status, _, _ = await gw.request("GET", "/v1/webhook-endpoints")
        assert status == 401


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"url": "http://hooks.acme.example/", "events": ["*"]}, 422, "url"),
        ({"url": "ftp://hooks.acme.example/", "events": ["*"]}, 422, "url"),
        ({"url": "https://user:pw@hooks.acme.example/", "events": ["*"]}, 422, "url"),
        ({"url": "https:///nohost", "events": ["*"]}, 422, "url"),
        ({"url": "https://a.example/#x", "events": ["*"]}, 422, "url"),
        ({"url": "https://a.example:99999/", "events": ["*"]}, 422, "url"),
        ({"url": "https://a.example/" + "x" * 2048, "events": ["*"]}, 422, "url"),
        ({"url": "https://a.example/", "events": []}, 422, "events"),
        ({"url": "https://a.example/", "events": ["bill.paid"]}, 422, "events[0]"),
        ({"url": "https://a.example/", "events": ["*", "bill.created"]}, 422, "events[0]"),
        (
            {"url": "https://a.example/", "events": ["bill.created", "bill.created"]},
            422,
            "events[1]",
        ),
        ({"url": "https://a.example/", "events": "bill.created"}, 400, "events"),
        ({"url": 5, "events": ["*"]}, 400, "url"),
        ({"events": ["*"]}, 400, "url"),
        ({"url": "https://a.example/", "events": ["*"], "secret": "mine"}, 400, "secret"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_bad_endpoint_is_refused_naming_the_field(
    tmp_path: Path, migrated_url: str, body: dict[str, Any], status: int, field: str
) -> None:
    async with gateway_with(tmp_path, migrated_url) as gw:
        acme = gw.onboard("acme")
        got, problem, _ = await gw.request("POST", "/v1/webhook-endpoints", acme, body)
        assert got == status, problem
        assert field in {e["field"] for e in problem["errors"]}
        _, listed, _ = await gw.request("GET", "/v1/webhook-endpoints", acme)
        assert listed["data"] == []


@pytest_twisted.ensureDeferred
async def test_http_to_loopback_only_unless_allowed(tmp_path: Path, migrated_url: str) -> None:
    loopback = ["127.0.0.0/8", "::1/128"]  # allowed_networks: loopback is not public
    for host in ("127.0.0.1:8080", "localhost", "[::1]:9"):
        async with gateway_with(tmp_path, migrated_url, allowed_networks=loopback) as gw:
            acme = gw.onboard(f"a{secrets.token_hex(3)}")
            body = {"url": f"http://{host}/hook", "events": ["*"]}
            status, doc, _ = await gw.request("POST", "/v1/webhook-endpoints", acme, body)
            assert status == 201, doc
    async with gateway_with(tmp_path, migrated_url, allow_http=True) as gw:
        acme = gw.onboard("plain")
        body = {"url": "http://hooks.acme.example/", "events": ["*"]}
        status, doc, _ = await gw.request("POST", "/v1/webhook-endpoints", acme, body)
        assert status == 201, doc


# --- delivery -------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_flaky_receiver_gets_every_event_signed_and_the_log_shows_each_attempt(
    tmp_path: Path, migrated_url: str, receiver: Receiver
) -> None:
    """500, then a hang past the 0.5 s timeout, then 200: three attempts per event."""
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        async with gateway_with(tmp_path, migrated_url) as gw:
            acme = gw.onboard("acme")
            path = f"/flaky-{secrets.token_hex(6)}"
            receiver.behaviour[path] = lambda a, n: {1: 500, 2: "hang"}.get(n, 200)
            endpoint = await register(gw, acme, receiver, path)
            event_ids = await new_bills(gw, acme, 5)
            assert len(event_ids) == 5

            def all_ok() -> bool:
                return {a.event_id for a in receiver.at(path) if a.answer == 200} == set(event_ids)

            await wait_for("a 200 for every event", all_ok)

            arrivals = receiver.at(path)
            assert all(a.verified == "ok" for a in arrivals), {a.verified for a in arrivals}
            assert all(a.content_type == "application/json" for a in arrivals)
            assert len({a.delivery_id for a in arrivals}) == len(arrivals)  # new per attempt
            by_event = {e: [a.answer for a in arrivals if a.event_id == e] for e in event_ids}
            assert by_event == {e: [500, "hang", 200] for e in event_ids}

            # the body is the events feed's item, byte for byte
            _, feed, _ = await gw.request("GET", "/v1/events", acme)
            items = {i["id"]: i for i in feed["data"]}
            for a in arrivals:
                item = items[a.event_id]
                assert json.loads(a.body)["id"] == a.event_id
                assert (
                    a.body == json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
                )

            # the delivery log: every attempt, with its status or error
            async def complete() -> list[dict[str, Any]]:
                entries = await log_of(gw, acme, endpoint["id"])
                return entries

            entries: list[dict[str, Any]] = []

            def logged_all() -> bool:
                return len(entries) == 15 and all(e["result"] != "in_flight" for e in entries)

            deadline = reactor().seconds() + 20
            while not logged_all():
                assert reactor().seconds() < deadline, entries
                entries = await complete()
                await deferLater(reactor(), 0.05)
            for event_id in event_ids:
                mine = sorted(
                    (e for e in entries if e["event_id"] == event_id), key=lambda e: e["attempt"]
                )
                assert [(e["attempt"], e["result"], e["status_code"]) for e in mine] == [
                    (1, "retry", 500),
                    (2, "retry", None),
                    (3, "success", 200),
                ]
                assert mine[1]["error"].startswith("timeout")
                assert mine[0]["next_attempt_at"] and mine[1]["next_attempt_at"]
                assert mine[2]["next_attempt_at"] is None
                assert mine[1]["duration_ms"] >= 450  # cut at the 0.5 s timeout
                assert {e["delivery_id"] for e in mine} == {
                    a.delivery_id for a in arrivals if a.event_id == event_id
                }
                assert all(e["event_type"] == "bill.created" and not e["redelivery"] for e in mine)

            # metrics: results and durations, labels from fixed sets only
            metrics = (await (await treq.get(gw.metrics + "/metrics")).text()).splitlines()
            webhook_lines = [m for m in metrics if m.startswith("gateway_webhook")]
            assert any(
                m.startswith('gateway_webhook_deliveries_total{result="success"}') for m in metrics
            )
            assert any(
                m.startswith("gateway_webhook_attempt_duration_seconds_count") for m in metrics
            )
            assert any(m.startswith('gateway_webhook_queue_depth{state="due"}') for m in metrics)
            assert not any(path in m or "acme" in m for m in webhook_lines)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    from twisted.logger import formatEvent

    text = "\n".join(formatEvent(e) + repr(e) for e in logged)
    assert receiver.secrets[path] not in text
    assert path not in text  # the URL (a biller may put a token in it) is never logged
    assert "failed: HTTP 500" in text  # …but failures are, by delivery and endpoint id


@pytest_twisted.ensureDeferred
async def test_a_hanging_endpoint_does_not_delay_a_healthy_one(
    tmp_path: Path, migrated_url: str, receiver: Receiver
) -> None:
    timeout = 3.0
    async with gateway_with(
        tmp_path, migrated_url, timeout=timeout, concurrency=4, per_endpoint=2
    ) as gw:
        acme = gw.onboard("acme")
        receiver.behaviour["/hang"] = lambda a, n: "hang"
        await register(gw, acme, receiver, "/hang")
        await register(gw, acme, receiver, "/ok")
        event_ids = await new_bills(gw, acme, 10)
        await wait_for(
            "every event at the healthy endpoint",
            lambda: {a.event_id for a in receiver.at("/ok")} == set(event_ids),
            timeout=timeout * 3,
        )
        hung = receiver.at("/hang")
        assert hung, "the hanging endpoint was not even tried"
        first_hang = min(a.at for a in hung)
        # Every healthy delivery arrived while the hanging endpoint's first attempts were still
        # open: none waited for a timeout (measured on the daemon's own clock).
        assert max(a.at for a in receiver.at("/ok")) < first_hang + timeout
        assert receiver.most_hanging["/hang"] <= 2  # per_endpoint
        assert all(a.verified == "ok" for a in receiver.arrivals)


@pytest_twisted.ensureDeferred
async def test_redeliver_sends_again_and_another_biller_cannot(
    tmp_path: Path, migrated_url: str, receiver: Receiver
) -> None:
    async with gateway_with(tmp_path, migrated_url) as gw:
        acme, beta = gw.onboard("acme"), gw.onboard("beta")
        endpoint = await register(gw, acme, receiver, "/acme")
        [event_id] = await new_bills(gw, acme, 1)
        await wait_for("the first delivery", lambda: len(receiver.at("/acme")) == 1)

        status, doc, _ = await gw.request(
            "POST", f"/v1/events/{event_id}/redeliver", acme, headers={"Idempotency-Key": "r1"}
        )
        assert status == 202, doc
        assert doc == {
            "event_id": event_id,
            "type": "bill.created",
            "deliveries": [{"endpoint_id": endpoint["id"], "redelivery": 1}],
        }
        # the same key again: replayed, not a third delivery
        status, again, _ = await gw.request(
            "POST", f"/v1/events/{event_id}/redeliver", acme, headers={"Idempotency-Key": "r1"}
        )
        assert (status, again) == (202, doc)
        await wait_for("the redelivery", lambda: len(receiver.at("/acme")) == 2)
        first, second = receiver.at("/acme")
        assert (first.event_id, second.event_id) == (event_id, event_id)
        assert first.delivery_id != second.delivery_id and first.body == second.body
        assert second.verified == "ok"
        await deferLater(reactor(), 0.3)
        assert len(receiver.at("/acme")) == 2

        entries = await log_of(gw, acme, endpoint["id"])
        assert sorted((e["redelivery"], e["result"]) for e in entries) == [
            (False, "success"),
            (True, "success"),
        ]

        # beta: acme's endpoint and event are unknown, exactly as made-up ones
        unknown_endpoint, unknown_event = "we_" + "0" * 24, "evt_" + "0" * 24
        for method, template in [
            ("GET", "/v1/webhook-endpoints/{}"),
            ("DELETE", "/v1/webhook-endpoints/{}"),
            ("GET", "/v1/webhook-endpoints/{}/deliveries"),
        ]:
            theirs = await gw.request(method, template.format(endpoint["id"]), beta)
            made_up = await gw.request(method, template.format(unknown_endpoint), beta)
            assert theirs[0] == made_up[0] == 404
            assert theirs[1] == {
                **made_up[1],
                "detail": made_up[1]["detail"].replace(unknown_endpoint, endpoint["id"]),
            }
        theirs = await gw.request("POST", f"/v1/events/{event_id}/redeliver", beta)
        made_up = await gw.request("POST", f"/v1/events/{unknown_event}/redeliver", beta)
        assert theirs[0] == made_up[0] == 404
        assert theirs[1]["detail"] == made_up[1]["detail"].replace(unknown_event, event_id)
        _, listed, _ = await gw.request("GET", "/v1/webhook-endpoints", beta)
        assert listed["data"] == []
        # acme's endpoint is still there and enabled
        status, still, _ = await gw.request("GET", f"/v1/webhook-endpoints/{endpoint['id']}", acme)
        assert status == 200 and still["status"] == "enabled"
        # beta's own endpoint gets none of acme's events
        await register(gw, beta, receiver, "/beta")
        await new_bills(gw, acme, 1, prefix="MORE")
        await wait_for("acme's next event", lambda: len(receiver.at("/acme")) == 3)
        await deferLater(reactor(), 0.3)
        assert receiver.at("/beta") == []


@pytest_twisted.ensureDeferred
async def test_deleting_an_endpoint_stops_its_deliveries(
    tmp_path: Path, migrated_url: str, receiver: Receiver
) -> None:
    async with gateway_with(tmp_path, migrated_url) as gw:
        acme = gw.onboard("acme")
        receiver.behaviour["/down"] = lambda a, n: 503
        endpoint = await register(gw, acme, receiver, "/down")
        await new_bills(gw, acme, 3)
        await wait_for("retries", lambda: len(receiver.at("/down")) >= 6)
        status, _, _ = await gw.request("DELETE", f"/v1/webhook-endpoints/{endpoint['id']}", acme)
        assert status == 200
        await deferLater(reactor(), 0.3)  # an attempt in flight at the DELETE may still land
        seen = len(receiver.at("/down"))
        await new_bills(gw, acme, 2, prefix="AFTER")
        await deferLater(reactor(), 1.0)  # 20 polls, 5 back-off caps
        assert len(receiver.at("/down")) == seen
        engine = create_db_engine(migrated_url, 1)
        try:
            with engine.connect() as conn:
                states = Counter(conn.execute(select(webhook_deliveries.c.state)).scalars())
        finally:
            engine.dispose()
        assert states == {"cancelled": 3}
        entries = await log_of(gw, acme, endpoint["id"])
        assert {e["status_code"] for e in entries} == {503}
        assert {e["result"] for e in entries} <= {"retry", "cancelled"}


# --- two delivery services on one database -----------------------------------------------------


class CountingClient(WebhookClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent = 0

    def post(self, url: str, body: bytes, headers: Any) -> Deferred[PostResult]:
        self.sent += 1
        return super().post(url, body, headers)


@pytest_twisted.ensureDeferred
async def test_two_delivery_services_on_one_database_send_each_attempt_once(
    migrated_url: str, receiver: Receiver
) -> None:
    """Two dispatcher/worker sets (as two daemons have) on one database: every event reaches
    every endpoint, each attempt once (one Gateway-Delivery-Id, one arrival, one log row)."""
    now = datetime.now(UTC)
    engine = create_db_engine(migrated_url, 1)
    billers = ["b1", "b2", "b3"]
    with engine.begin() as conn:
        for biller in billers:
            create_biller(
                conn,
                biller_id=biller,
                name=biller,
                kana="ｱ",
                channels=frozenset({Channel.CVS}),
                payeasy_institution_code=None,
                now=now,
            )
            for path in (f"/{biller}/ok", f"/{biller}/flaky"):
                secret = "whsec_" + secrets.token_hex(16)
                receiver.secrets[path] = secret
                receiver.behaviour[path] = (
                    (lambda a, n: 200)
                    if path.endswith("ok")
                    else (lambda a, n: 500 if n == 1 else 200)
                )
                create_endpoint(
                    conn,
                    biller_id=biller,
                    endpoint_id="we_" + secrets.token_hex(12),
                    url=receiver.base + path,
                    event_types=("*",),
                    secret=secret,
                    now=now,
                )
    config = WebhooksConfig(
        timeout=2.0,
        poll_interval=0.05,
        backoff_base=0.05,
        backoff_cap=0.1,
        concurrency=3,
        per_endpoint=1,
        allowed_networks=LOOPBACK,
    )
    stores = [Store.from_url(migrated_url, reactor(), 2) for _ in range(2)]
    services = []
    for n, store in enumerate(stores):
        store.start()
        client = CountingClient(
            reactor(),
            config.timeout,
            config.per_endpoint,
            policy=AddressPolicy(config.allowed_networks),
        )
        services.append(
            WebhookDelivery(store, reactor(), config, client=client, owner=f"daemon-{n}")
        )
    for service in services:
        service.startService()
    try:
        event_ids = []
        for i in range(60):
            with engine.begin() as conn:
                event_id = f"evt_{i:024x}"
                append_event(
                    conn,
                    biller_id=billers[i % 3],
                    event_id=event_id,
                    type="bill.created",
                    data={"i": i},
                    now=now,
                )
                event_ids.append(event_id)
            if i % 10 == 0:
                await deferLater(reactor(), 0.02)  # events keep coming while both work

        def delivered() -> bool:
            oks = Counter(a.path.rsplit("/", 1)[1] for a in receiver.arrivals if a.answer == 200)
            return oks == {"ok": 60, "flaky": 60}

        await wait_for("every event at both endpoints of its biller", delivered, timeout=60)
        await deferLater(reactor(), 0.3)  # outcomes recorded
    finally:
        for service in services:
            await service.stopService()
        for store in stores:
            store.stop()
    arrivals = receiver.arrivals
    assert all(a.verified == "ok" for a in arrivals)
    ids = [a.delivery_id for a in arrivals]
    assert len(ids) == len(set(ids)) == 60 * 3  # ok once, flaky twice (500 then 200)
    per_endpoint_event = Counter((a.path, a.event_id) for a in arrivals)
    for i, event_id in enumerate(event_ids):
        biller = billers[i % 3]
        assert per_endpoint_event[(f"/{biller}/ok", event_id)] == 1
        assert per_endpoint_event[(f"/{biller}/flaky", event_id)] == 2
    with engine.connect() as conn:
        rows = conn.execute(select(webhook_attempts.c.delivery_id, webhook_attempts.c.result)).all()
        states = Counter(conn.execute(select(webhook_deliveries.c.state)).scalars())
    engine.dispose()
    assert sorted(r.delivery_id for r in rows) == sorted(ids)
    assert Counter(r.result for r in rows) == {"success": 120, "retry": 60}
    assert states == {"succeeded": 120}
    # Each attempt went out from exactly one of the two. Which one took how many is up to
    # timing (one may be quick enough to take them all), so only the sum is a property.
    sent = [s.client.sent for s in services]  # type: ignore[attr-defined]
    assert sum(sent) == 180, sent


@pytest_twisted.ensureDeferred
async def test_stopping_gives_attempts_in_flight_back_at_once(
    migrated_url: str, receiver: Receiver
) -> None:
    """A daemon that stops cuts its open attempts off and records them as failed attempts that
    are due again now, so another daemon takes them up without waiting for the lease."""
    now = datetime.now(UTC)
    engine = create_db_engine(migrated_url, 1)
    with engine.begin() as conn:
        create_biller(
            conn,
            biller_id="acme",
            name="acme",
            kana="ｱ",
            channels=frozenset({Channel.CVS}),
            payeasy_institution_code=None,
            now=now,
        )
        receiver.secrets["/slow"] = "whsec_slow"
        receiver.behaviour["/slow"] = lambda a, n: "hang"  # until the first daemon stops
        create_endpoint(
            conn,
            biller_id="acme",
            endpoint_id="we_" + "1" * 24,
            url=receiver.base + "/slow",
            event_types=("*",),
            secret="whsec_slow",
            now=now,
        )
        for i in range(3):
            append_event(
                conn,
                biller_id="acme",
                event_id=f"evt_{i:024x}",
                type="bill.created",
                data={},
                now=now,
            )
    config = WebhooksConfig(
        timeout=30.0,
        poll_interval=0.05,
        concurrency=2,
        per_endpoint=2,
        allowed_networks=LOOPBACK,
    )
    stores = [Store.from_url(migrated_url, reactor(), 2) for _ in range(2)]
    for store in stores:
        store.start()
    try:
        await _stop_and_take_over(engine, stores, config, receiver)
    finally:
        for store in stores:
            store.stop()
        engine.dispose()


async def _stop_and_take_over(
    engine: Any, stores: list[Store], config: WebhooksConfig, receiver: Receiver
) -> None:
    first = WebhookDelivery(
        stores[0], reactor(), config, client=client_for(reactor(), config), owner="first"
    )
    first.startService()
    try:
        await wait_for("two attempts hanging", lambda: len(receiver.hanging.get("/slow", ())) == 2)
    finally:
        stopped_at = reactor().seconds()
        await first.stopService()
    with engine.connect() as conn:
        log = conn.execute(
            select(webhook_attempts.c.result, webhook_attempts.c.error).order_by(
                webhook_attempts.c.id
            )
        ).all()
        due_at = conn.execute(select(webhook_deliveries.c.due_at)).scalars().all()
    # two were being sent (cut off), one was queued here (never sent): all due again at once
    assert sorted(r for r, _ in log) == ["retry", "retry", "retry"], log
    assert sorted(e for _, e in log) == [
        "cancelled: the daemon stopped during the attempt",
        "cancelled: the daemon stopped during the attempt",
        "not sent: the daemon stopped",
    ]
    assert all(d.timestamp() <= stopped_at + 1 for d in due_at)
    receiver.behaviour["/slow"] = lambda a, n: 200
    second = WebhookDelivery(
        stores[1], reactor(), config, client=client_for(reactor(), config), owner="second"
    )
    second.startService()
    try:
        await wait_for(
            "every event delivered by the other daemon",
            lambda: (
                {a.event_id for a in receiver.at("/slow") if a.answer == 200}
                == {f"evt_{i:024x}" for i in range(3)}
            ),
            timeout=10,
        )
    finally:
        await second.stopService()
