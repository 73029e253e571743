"""A biller's webhook endpoints in the console (docs/console.md), through the merchant API's
own :class:`gateway.webhooks.api.WebhookApi` for the biller they belong to.

- **Who**: :data:`Permission.WEBHOOKS` — a biller's ``biller_admin`` for its own biller, the
  center's ``operator`` for the biller it chooses; another biller's endpoint is
  :class:`NotFound`, as an unknown one.
- **Created** from a URL and the event types (``event_all``, or a ``event_<type>`` box each),
  checked by the API's own rules (an https URL, a public address unless
  ``webhooks.allowed_networks`` says otherwise, …); the signing secret is in the answer, as the
  API's ``POST /v1/webhook-endpoints`` gives it. The form's one-time ``form_id`` is claimed as
  an ``Idempotency-Key``: sent again, the same endpoint (and its secret) comes back.
- **Disabled** (its pending deliveries cancelled) and **enabled** again (for the events
  committed from then on).
- **Delivery log**: the endpoint's deliveries, newest event first (gateway.store.console_webhooks),
  and the redelivery of one event to this endpoint (``POST /v1/events/{id}/redeliver`` with
  its ``endpoint_id``).
- **Audit**: ``webhook_endpoint.create``, ``webhook_endpoint.disable``,
  ``webhook_endpoint.enable`` (target ``webhook_endpoint:<id>``; the endpoint before and after,
  never its secret) and ``event.redeliver`` (target ``event:<event_id>``; the deliveries
  queued), with the actor ``user:<login>``, in the transaction of the change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from gateway.billing.actors import console_actor
from gateway.billing.console_access import ConsoleUser, Permission
from gateway.billing.console_actions import console_principal, form_claim
from gateway.billing.console_keys import admin_biller, biller_names
from gateway.errors import FieldError, InvalidRequest, NotFound
from gateway.store import Store
from gateway.store.audit import record
from gateway.store.console_webhooks import DeliveryRow, delivery_log
from gateway.store.webhooks import Endpoint, get_endpoint, list_endpoints
from gateway.webhooks.api import (
    ENDPOINT_ID,
    EVENT_ID,
    EVENT_TYPES,
    EndpointAudit,
    RedeliveryAudit,
    WebhookApi,
    endpoint_json,
)
from gateway.webhooks.attempts import shown_error

PAGE = 50  # deliveries a page
ENDPOINTS_MAX = 100  # endpoints listed (a biller has at most 20 enabled)
_CURSOR = re.compile(r"([0-9]{1,18})\.([0-9]{1,9})")


def endpoint_body(fields: Mapping[str, str]) -> dict[str, Any]:
    """The form as the body of ``POST /v1/webhook-endpoints``."""
    if fields.get("event_all"):
        types = ["*"]
    else:
        types = [t for t in EVENT_TYPES if fields.get(f"event_{t}")]
    return {"url": (fields.get("url") or "").strip(), "events": types}


def _endpoint_auditor(user: ConsoleUser, action: str) -> EndpointAudit:
    actor = console_actor(user.login)

    def audit(conn: Connection, before: Endpoint | None, after: Endpoint, now: datetime) -> None:
        record(
            conn,
            actor,
            action,
            f"webhook_endpoint:{after.endpoint_id}",
            now,
            biller_id=after.biller_id,
            before=None if before is None else endpoint_json(before),  # never the secret
            after=endpoint_json(after),
        )

    return audit


def _redelivery_auditor(user: ConsoleUser, biller_id: str, event_id: str) -> RedeliveryAudit:
    actor = console_actor(user.login)

    def audit(
        conn: Connection, event_type: str, made: list[tuple[Endpoint, int]], now: datetime
    ) -> None:
        record(
            conn,
            actor,
            "event.redeliver",
            f"event:{event_id}",
            now,
            biller_id=biller_id,
            after={
                "type": event_type,
                "deliveries": [
                    {"endpoint_id": e.endpoint_id, "redelivery": round_} for e, round_ in made
                ],
            },
        )

    return audit


def delivery_json(row: DeliveryRow) -> dict[str, Any]:
    return {
        "event_id": row.event_id,
        "event_type": row.event_type,
        "event_at": row.event_at,
        "round": row.round,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at if row.state in ("pending", "in_flight") else None,
        "completed_at": row.completed_at,
        "last_attempt_at": row.last_attempt_at,
        "last_result": row.last_result,
        "last_status": row.last_status,
        "last_error": shown_error(row.last_error),
    }


def parse_cursor(cursor: str | None) -> tuple[int, int] | None:
    if not cursor:
        return None
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        raise InvalidRequest([FieldError("cursor", "ページの指定が正しくありません")])
    return int(match.group(1)), int(match.group(2))


class ConsoleWebhooks:
    def __init__(self, store: Store, api: WebhookApi) -> None:
        self.store = store
        self.api = api

    def _endpoint_biller(self, user: ConsoleUser, biller_id: str, endpoint_id: str) -> str:
        """``biller_id`` when the user manages it and ``endpoint_id`` has an endpoint's shape;
        :class:`NotFound` otherwise, as for an unknown endpoint."""
        try:
            chosen = admin_biller(user, Permission.WEBHOOKS, biller_id)
        except InvalidRequest:
            chosen = None
        if chosen is None or chosen != biller_id or not ENDPOINT_ID.fullmatch(endpoint_id):
            raise NotFound(f"webhook endpoint {endpoint_id[:40]}")
        return chosen

    async def page(self, user: ConsoleUser, asked: str | None) -> dict[str, Any]:
        """``{"biller_id", "billers", "endpoints"}``, oldest endpoint first; ``endpoints``
        empty until a center user chooses a biller."""
        biller_id = admin_biller(user, Permission.WEBHOOKS, asked)

        def txn(conn: Connection) -> dict[str, Any]:
            billers = biller_names(conn)
            found: list[dict[str, Any]] = []
            if biller_id is not None:
                if biller_id not in billers:
                    raise NotFound(f"biller {biller_id}")
                found = [
                    endpoint_json(e) for e in list_endpoints(conn, biller_id, 0, ENDPOINTS_MAX)
                ]
            return {"biller_id": biller_id, "billers": billers, "endpoints": found}

        return await self.store.run_interaction("console.webhook_endpoints", txn)

    async def create(self, user: ConsoleUser, fields: Mapping[str, str]) -> dict[str, Any]:
        """The endpoint as the API answers it, with its ``secret``."""
        biller_id = admin_biller(user, Permission.WEBHOOKS, fields.get("biller"))
        if biller_id is None:
            raise InvalidRequest([FieldError("biller", "収納企業を選んでください")])
        body = endpoint_body(fields)
        claim = form_claim(user, fields, f"webhook_endpoint.create {biller_id}")
        stored = await self.api.create(
            console_principal(user, biller_id),
            body,
            claim,
            audit=_endpoint_auditor(user, "webhook_endpoint.create"),
        )
        return {**json.loads(stored.body), "biller_id": biller_id}

    async def endpoint(
        self,
        user: ConsoleUser,
        biller_id: str,
        endpoint_id: str,
        cursor: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """``{"endpoint", "biller_name", "deliveries", "next_cursor"}``: the endpoint and a page
        of its deliveries (one event's only, with ``event_id``)."""
        self._endpoint_biller(user, biller_id, endpoint_id)
        after = parse_cursor(cursor)
        if event_id is not None and not EVENT_ID.fullmatch(event_id):
            raise InvalidRequest([FieldError("event", "イベントIDが正しくありません")])

        def txn(conn: Connection) -> dict[str, Any]:
            endpoint = get_endpoint(conn, biller_id, endpoint_id)
            if endpoint is None:
                raise NotFound(f"webhook endpoint {endpoint_id}")
            rows = delivery_log(conn, endpoint, limit=PAGE + 1, after=after, event_id=event_id)
            page = rows[:PAGE]
            return {
                "endpoint": endpoint_json(endpoint),
                "biller_name": biller_names(conn).get(biller_id, biller_id),
                "deliveries": [delivery_json(r) for r in page],
                "next_cursor": page[-1].cursor if len(rows) > PAGE else None,
            }

        return await self.store.run_interaction("console.webhook_deliveries", txn)

    async def disable(self, user: ConsoleUser, biller_id: str, endpoint_id: str) -> dict[str, Any]:
        self._endpoint_biller(user, biller_id, endpoint_id)
        return await self.api.delete(
            console_principal(user, biller_id),
            endpoint_id,
            audit=_endpoint_auditor(user, "webhook_endpoint.disable"),
        )

    async def enable(self, user: ConsoleUser, biller_id: str, endpoint_id: str) -> dict[str, Any]:
        self._endpoint_biller(user, biller_id, endpoint_id)
        return await self.api.enable(
            console_principal(user, biller_id),
            endpoint_id,
            audit=_endpoint_auditor(user, "webhook_endpoint.enable"),
        )

    async def redeliver(
        self, user: ConsoleUser, biller_id: str, endpoint_id: str, fields: Mapping[str, str]
    ) -> dict[str, Any]:
        """The event (``event_id``) queued again for this endpoint, as the API's redeliver with
        its ``endpoint_id``: ``{"event_id", "type", "deliveries"}``."""
        self._endpoint_biller(user, biller_id, endpoint_id)
        event_id = (fields.get("event_id") or "").strip()
        if not EVENT_ID.fullmatch(event_id):
            raise InvalidRequest([FieldError("event_id", "イベントIDが正しくありません")])
        claim = form_claim(user, fields, f"event.redeliver {biller_id}/{endpoint_id}")
        stored = await self.api.redeliver(
            console_principal(user, biller_id),
            event_id,
            {"endpoint_id": endpoint_id},
            claim,
            audit=_redelivery_auditor(user, biller_id, event_id),
        )
        return dict(json.loads(stored.body))
