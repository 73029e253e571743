"""Webhook endpoints as billers manage them through the API, and what a delivery sends.

``POST /v1/webhook-endpoints`` registers an endpoint and answers its secret once; ``GET`` lists
them without secrets; ``DELETE …/{id}`` disables one (its pending deliveries are cancelled);
``GET …/{id}/deliveries`` is its delivery log; ``POST /v1/events/{id}/redeliver`` queues the
event again. Delivery itself is :mod:`gateway.webhooks.delivery`. See docs/webhooks.md.

The console (gateway.webhooks.console) acts through the same methods, passing an ``audit``
callback that writes its audit line in the transaction of the change; it also enables a
disabled endpoint again (:meth:`WebhookApi.enable`), which the API does not offer.
"""

from __future__ import annotations

import json
import random
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway.billing.bills import decode_cursor, encode_cursor
from gateway.clock import now as clock_now
from gateway.config import Config
from gateway.errors import ConfigError, NotFound
from gateway.ids import new_id
from gateway.infra.secretbox import ENV as SECRET_ENV
from gateway.infra.secretbox import SecretBox
from gateway.model import EventType, Outcome, Principal
from gateway.store import Store
from gateway.store.idempotency import IdempotencyClaim, StoredResponse, run_idempotent
from gateway.store.webhooks import (
    Endpoint,
    create_endpoint,
    disable_endpoint,
    enable_endpoint,
    endpoint_secret,
    get_endpoint,
    list_attempts,
    list_endpoints,
    redeliver,
)
from gateway.validation import Fields
from gateway.views import iso
from gateway.webhooks.address import AddressPolicy, parse_literal
from gateway.webhooks.attempts import shown_error

EVENT_TYPES = tuple(t.value for t in EventType)
EVENT_ID = re.compile(r"evt_[0-9a-f]{24}")
ENDPOINT_ID = re.compile(r"we_[0-9a-f]{24}")
LOOPBACK = ("localhost", "127.0.0.1", "::1")
URL_MAX = 2048
URL = r"[Hh][Tt][Tt][Pp][Ss]?://\S+"  # read by the validator and the OpenAPI document


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1, 2, …): "full jitter", uniform
    between 0 and ``min(cap, base * 2 ** (attempt - 1))``, so that receivers coming back after
    an outage are not hit by every retry at once."""
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 1) - 1, 60))
    return rng.uniform(0.0, ceiling)


def event_body(event_id: str, seq: int, type: str, created_at: datetime, data: str) -> bytes:
    """The event as the events feed shows it (``{"id","seq","type","created_at","data"}``,
    compact JSON, UTF-8); ``data`` is the stored JSON text, written with the same settings."""
    head = json.dumps(
        {"id": event_id, "seq": seq, "type": type, "created_at": iso(created_at)},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return (head[:-1] + ',"data":' + data + "}").encode("utf-8")


def ipv6_literal(host: str) -> str | None:
    literal = parse_literal(host)
    return str(literal) if literal is not None and literal.version == 6 else None


def _is_loopback(host: str) -> bool:
    return host in LOOPBACK or (host.startswith("127.") and host.replace(".", "").isdigit())


def parse_endpoint_request(
    body: object, *, allow_http: bool, policy: AddressPolicy | None = None
) -> tuple[str, tuple[str, ...]]:
    """The endpoint's URL and event types, or InvalidRequest naming each bad field. A literal
    address (or ``localhost``) that ``policy`` refuses is refused here; a name's addresses are
    checked at each attempt (gateway.protocols.webhook_client)."""
    policy = policy if policy is not None else AddressPolicy()
    f = Fields(body)
    url = f.string(
        "url",
        required=True,
        max_len=URL_MAX,
        pattern=URL,
        hint="an http:// or https:// URL without spaces",
    )
    raw_events = f.string_list("events", required=True)
    f.finish()
    if url is not None:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            _ = parts.port  # raises on a port that is not a number in range
        except ValueError as e:
            f.bad("url", f"is not a valid URL: {e}")
        else:
            if not host:
                f.bad("url", "must name a host")
            elif "@" in parts.netloc:
                f.bad("url", "must not carry a user or password (the signature authenticates)")
            elif parts.fragment or url.endswith("#"):
                f.bad("url", "must not have a #fragment")
            elif "[" in parts.netloc and ipv6_literal(host) is None:
                f.bad("url", "must hold an IPv6 address between [ and ]")
            elif not policy.permits_host(host):
                f.bad(
                    "url",
                    f"{host[:60]} is not a public address: webhooks do not go to loopback, "
                    "private, link-local, shared (CGNAT), unique-local, multicast or other "
                    "non-public addresses",
                )
            elif parts.scheme.lower() == "http" and not allow_http and not _is_loopback(host):
                f.bad("url", "must be https:// (plain http:// only to 127.0.0.1 or localhost)")
    types: list[str] = []
    if raw_events is not None:
        if not raw_events:
            f.bad("events", 'must name at least one event type, or be ["*"]')
        for i, name in enumerate(raw_events):
            if name == "*":
                if len(raw_events) > 1:
                    f.bad(f"events[{i}]", '"*" (every event) must be alone')
            elif name not in EVENT_TYPES:
                f.bad(f"events[{i}]", f"{name[:40]!r} is not an event type")
            if name in types:
                f.bad(f"events[{i}]", f"{name[:40]} is listed twice")
            types.append(name)
    f.raise_if_invalid()
    assert url is not None
    return url, tuple(types)


def endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.endpoint_id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "status": "enabled" if endpoint.enabled else "disabled",
        "created_at": iso(endpoint.created_at),
        "disabled_at": iso(endpoint.disabled_at),
    }


def attempt_json(row: Any) -> dict[str, Any]:
    return {
        "delivery_id": row.delivery_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "redelivery": bool(row.redelivery),
        "attempt": row.attempt,
        "attempted_at": iso(row.attempted_at),
        "result": row.result,
        "status_code": row.status_code,
        "error": shown_error(row.error),
        "duration_ms": row.duration_ms,
        "next_attempt_at": iso(row.next_attempt_at),
    }


#: Called in the transaction of a change: the endpoint before it (None: a new one), after it,
#: and the change's time.
EndpointAudit = Callable[[Connection, Endpoint | None, Endpoint, datetime], None]
#: Called in the transaction of a redelivery: the event's type, the deliveries queued (each
#: endpoint with its round) and the time.
RedeliveryAudit = Callable[[Connection, str, list[tuple[Endpoint, int]], datetime], None]


def _dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _biller_id(principal: Principal) -> str:
    if principal.biller_id is None:
        raise NotFound("webhook endpoints (use a biller's API key)")
    return principal.biller_id


class WebhookApi:
    """The API's webhook operations; each one is one store interaction."""

    def __init__(self, store: Store, clock: IReactorTime, config: Config) -> None:
        self.store = store
        self.clock = clock
        self.ttl = config.api.idempotency_ttl
        if config.secret_key is None:
            raise ConfigError("secrets.key", f"is required (or the environment's {SECRET_ENV})")
        self.box = SecretBox(config.secret_key)  # the secrets are stored encrypted
        self.allow_http = config.webhooks.allow_http
        self.policy = AddressPolicy(config.webhooks.allowed_networks)

    async def create(
        self,
        principal: Principal,
        body: object,
        claim: IdempotencyClaim | None,
        audit: EndpointAudit | None = None,
    ) -> StoredResponse:
        biller_id = _biller_id(principal)
        url, types = parse_endpoint_request(body, allow_http=self.allow_http, policy=self.policy)
        now = clock_now(self.clock)
        secret = "whsec_" + secrets.token_urlsafe(32)
        endpoint_id = new_id("we")

        def effect(conn: Connection) -> StoredResponse:
            endpoint = create_endpoint(
                conn,
                biller_id=biller_id,
                endpoint_id=endpoint_id,
                url=url,
                event_types=types,
                secret=self.box.encrypt(secret, endpoint_id),
                now=now,
            )
            if audit is not None:
                audit(conn, None, endpoint, now)
            # The only answer that carries the secret (and its Idempotency-Key replay, which
            # reads it again: the replay table keeps the answer without it).
            doc = endpoint_json(endpoint)
            return StoredResponse(
                Outcome.CREATED, _dumps({**doc, "secret": secret}), kept=_dumps(doc)
            )

        def restore(conn: Connection, replay: StoredResponse) -> StoredResponse:
            doc = json.loads(replay.body)
            stored = endpoint_secret(conn, biller_id, str(doc.get("id", "")))
            if "secret" in doc or stored is None:
                return replay
            doc["secret"] = self.box.decrypt(stored, doc["id"])
            return StoredResponse(replay.outcome, _dumps(doc), replayed=True)

        return await self.store.run_interaction(
            "webhooks.create_endpoint", run_idempotent, claim, now, self.ttl, effect, restore
        )

    async def list(self, principal: Principal, cursor: str | None, limit: int) -> dict[str, Any]:
        biller_id = _biller_id(principal)
        after = decode_cursor(cursor) if cursor is not None else 0
        found = await self.store.run_interaction(
            "webhooks.list_endpoints", list_endpoints, biller_id, after, limit + 1
        )
        page = found[:limit]
        return {
            "data": [endpoint_json(e) for e in page],
            "next_cursor": encode_cursor(page[-1].pk) if len(found) > limit else None,
        }

    async def get(self, principal: Principal, endpoint_id: str) -> dict[str, Any]:
        biller_id = _biller_id(principal)
        found = await self.store.run_interaction(
            "webhooks.get_endpoint", get_endpoint, biller_id, endpoint_id
        )
        if found is None:
            raise NotFound(f"webhook endpoint {endpoint_id[:40]}")
        return endpoint_json(found)

    async def delete(
        self, principal: Principal, endpoint_id: str, audit: EndpointAudit | None = None
    ) -> dict[str, Any]:
        """The endpoint disabled (again: no change, and no audit line)."""
        return await self._switch(principal, endpoint_id, disable_endpoint, audit)

    async def enable(
        self, principal: Principal, endpoint_id: str, audit: EndpointAudit | None = None
    ) -> dict[str, Any]:
        """A disabled endpoint enabled again, for the events committed from now on."""
        return await self._switch(principal, endpoint_id, enable_endpoint, audit)

    async def _switch(
        self,
        principal: Principal,
        endpoint_id: str,
        change: Callable[[Connection, str, str, datetime], Endpoint],
        audit: EndpointAudit | None,
    ) -> dict[str, Any]:
        biller_id = _biller_id(principal)
        now = clock_now(self.clock)

        def txn(conn: Connection) -> Endpoint:
            before = get_endpoint(conn, biller_id, endpoint_id)
            after = change(conn, biller_id, endpoint_id, now)
            if audit is not None and before is not None and before.enabled != after.enabled:
                audit(conn, before, after, now)
            return after

        endpoint = await self.store.run_interaction(f"webhooks.{change.__name__}", txn)
        return endpoint_json(endpoint)

    async def deliveries(
        self,
        principal: Principal,
        endpoint_id: str,
        *,
        cursor: str | None,
        event_id: str | None,
        limit: int,
    ) -> dict[str, Any]:
        biller_id = _biller_id(principal)
        before = decode_cursor(cursor) if cursor is not None else None

        def txn(conn: Connection) -> list[Any]:
            endpoint = get_endpoint(conn, biller_id, endpoint_id)
            if endpoint is None:
                raise NotFound(f"webhook endpoint {endpoint_id[:40]}")
            return list_attempts(
                conn, endpoint, before_id=before, event_id=event_id, limit=limit + 1
            )

        rows = await self.store.run_interaction("webhooks.list_attempts", txn)
        page = rows[:limit]
        return {
            "data": [attempt_json(r) for r in page],
            "next_cursor": encode_cursor(page[-1].id) if len(rows) > limit else None,
        }

    async def redeliver(
        self,
        principal: Principal,
        event_id: str,
        body: object,
        claim: IdempotencyClaim | None,
        audit: RedeliveryAudit | None = None,
    ) -> StoredResponse:
        biller_id = _biller_id(principal)
        endpoint_id: str | None = None
        if body is not None:
            f = Fields(body)
            endpoint_id = f.string(
                "endpoint_id", max_len=40, pattern=ENDPOINT_ID.pattern, hint="we_ and 24 hex digits"
            )
            f.finish()
            f.raise_if_invalid()
        now = clock_now(self.clock)

        def effect(conn: Connection) -> StoredResponse:
            type_, made = redeliver(conn, biller_id, event_id, endpoint_id, now)
            if audit is not None:
                audit(conn, type_, made, now)
            doc = {
                "event_id": event_id,
                "type": type_,
                "deliveries": [
                    {"endpoint_id": endpoint.endpoint_id, "redelivery": round_}
                    for endpoint, round_ in made
                ],
            }
            return StoredResponse(Outcome.ACCEPTED, _dumps(doc))

        return await self.store.run_interaction(
            "webhooks.redeliver", run_idempotent, claim, now, self.ttl, effect
        )
