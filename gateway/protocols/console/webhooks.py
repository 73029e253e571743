"""A biller's webhook endpoints in the console (docs/console.md).

- ``GET /console/webhooks?biller=``: the endpoints (URL, event types, enabled, created) and the
  new-endpoint form;
- ``POST /console/webhooks`` (``url``, ``event_all`` or ``event_<type>`` boxes, ``form_id``):
  through gateway.webhooks.console (the API's own rules); the page again with the signing
  secret, shown this once (never in a URL), or with the refusal (422, 409);
- ``GET /console/webhooks/{biller_id}/{endpoint_id}?event=&cursor=``: the endpoint and its
  delivery log (event, state, attempts, last status code, next attempt);
- ``POST …/disable``, ``POST …/enable``: 303 back to the endpoint's page;
- ``POST …/redeliver`` (``event_id``, ``form_id``): the event queued again for this endpoint;
  303 to the endpoint's log of that event.

Only a ``biller_admin`` (its own biller) and a center ``operator`` open these screens: another
role gets 403, another biller's endpoint 404. Every POST carries the CSRF token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from gateway.billing.console_access import Permission
from gateway.billing.console_users import Session
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.console.kit import Guarded, Kit, field_errors, new_form_id
from gateway.protocols.console.web import FormError, form, redirect
from gateway.webhooks.api import EVENT_TYPES
from gateway.webhooks.console import ConsoleWebhooks

LABELS = {
    "url": "URL",
    "events": "イベント",
    "biller": "収納企業",
    "event_id": "イベントID",
    "endpoint_id": "エンドポイント",
    "form_id": "フォーム",
    "cursor": "ページ",
    "event": "イベントID",
}

#: What the endpoint's page says after a change (``?done=``).
DONE = {
    "disabled": "このエンドポイントを無効にしました。配信待ちの配信は取り消されました。",
    "enabled": "このエンドポイントを有効にしました。これから発生するイベントを配信します。",
    "redelivered": "イベントを再送の配信待ちに入れました。",
}


def _conflict(e: Conflict) -> str:
    detail = e.detail
    if "Idempotency-Key" in detail:
        return "この画面の内容は送信済みです。画面を開き直してください。"
    if "at most" in detail:
        return "有効なエンドポイントは20件までです。使わないものを無効にしてください。"
    if "is disabled" in detail:
        return "無効なエンドポイントには再送できません。先に有効にしてください。"
    return detail


def webhook_routes(kit: Kit, webhooks: ConsoleWebhooks) -> list[Route]:
    root = kit.root

    def endpoint_path(biller_id: str, endpoint_id: str) -> str:
        return f"{root}/webhooks/{quote(biller_id)}/{quote(endpoint_id)}"

    async def listing(
        call: Call,
        session: Session,
        asked: str | None = None,
        status: int = 200,
        errors: list[dict[str, str]] | None = None,
        sent: Mapping[str, str] | None = None,
        created: dict[str, Any] | None = None,
    ) -> Response:
        try:
            found = await webhooks.page(session.user, asked or call.query("biller"))
        except NotFound:
            return kit.not_found(session)
        except InvalidRequest as e:
            message = "、".join(f.message for f in e.errors)
            return kit.error(400, session, "表示できませんでした", message)
        return kit.screen(
            status,
            "webhooks.html",
            session,
            "Webhook",
            "/webhooks",
            found=found,
            center=session.user.biller_id is None,
            event_types=EVENT_TYPES,
            errors=errors or [],
            sent=dict(sent or {}),
            created=created,
            form_id=new_form_id(),
        )

    async def get_list(call: Call, session: Session) -> Response:
        return await listing(call, session)

    async def post_create(call: Call, session: Session) -> Response:
        try:
            fields = form(call)
        except FormError as e:
            return kit.form_error(session, e)
        asked = fields.get("biller")
        try:
            created = await webhooks.create(session.user, fields)
        except NotFound:
            return kit.not_found(session)
        except InvalidRequest as e:
            return await listing(call, session, asked, 422, field_errors(e, LABELS), fields)
        except Conflict as e:
            errors = [{"field": "", "label": "", "message": _conflict(e)}]
            return await listing(call, session, asked, 409, errors, fields)
        return await listing(call, session, created["biller_id"], created=created)

    async def endpoint_page(
        call: Call,
        session: Session,
        status: int = 200,
        errors: list[dict[str, str]] | None = None,
    ) -> Response:
        biller_id, endpoint_id = call.params["biller_id"], call.params["endpoint_id"]
        event = call.query("event") or None
        try:
            found = await webhooks.endpoint(
                session.user, biller_id, endpoint_id, call.query("cursor") or None, event
            )
        except NotFound:
            return kit.not_found(session)
        except InvalidRequest as e:
            message = "、".join(f.message for f in e.errors)
            return kit.error(400, session, "表示できませんでした", message)
        following = {"event": event} if event else {}
        if found["next_cursor"]:
            following["cursor"] = found["next_cursor"]
        done = DONE.get(call.query("done") or "", "") if status == 200 else ""
        return kit.screen(
            status,
            "webhook.html",
            session,
            "Webhook 配信履歴",
            "/webhooks",
            found=found,
            biller_id=biller_id,
            base=endpoint_path(biller_id, endpoint_id),
            center=session.user.biller_id is None,
            event=event or "",
            next_query=urlencode(following),
            done=done,
            errors=errors or [],
            form_ids=[new_form_id() for _ in found["deliveries"]],
        )

    async def get_endpoint(call: Call, session: Session) -> Response:
        return await endpoint_page(call, session)

    def switch(which: str) -> Guarded:
        async def run(call: Call, session: Session) -> Response:
            biller_id, endpoint_id = call.params["biller_id"], call.params["endpoint_id"]
            try:
                if which == "disable":
                    await webhooks.disable(session.user, biller_id, endpoint_id)
                else:
                    await webhooks.enable(session.user, biller_id, endpoint_id)
            except NotFound:
                return kit.not_found(session)
            except Conflict as e:
                errors = [{"field": "", "label": "", "message": _conflict(e)}]
                return await endpoint_page(call, session, 409, errors)
            done = "disabled" if which == "disable" else "enabled"
            return redirect(call, f"{endpoint_path(biller_id, endpoint_id)}?done={done}")

        return run

    async def post_redeliver(call: Call, session: Session) -> Response:
        biller_id, endpoint_id = call.params["biller_id"], call.params["endpoint_id"]
        try:
            fields = form(call)
        except FormError as e:
            return kit.form_error(session, e)
        try:
            done = await webhooks.redeliver(session.user, biller_id, endpoint_id, fields)
        except NotFound:
            return kit.not_found(session)
        except InvalidRequest as e:
            return await endpoint_page(call, session, 422, field_errors(e, LABELS))
        except Conflict as e:
            errors = [{"field": "", "label": "", "message": _conflict(e)}]
            return await endpoint_page(call, session, 409, errors)
        query = urlencode({"event": done["event_id"], "done": "redelivered"})
        return redirect(call, f"{endpoint_path(biller_id, endpoint_id)}?{query}")

    g = kit.guarded
    need = Permission.WEBHOOKS
    one = "/webhooks/{biller_id}/{endpoint_id}"
    return kit.routes(
        [
            (b"GET", "/webhooks", g(get_list, need, forbidden=True)),
            (b"POST", "/webhooks", g(post_create, need, post=True, forbidden=True)),
            (b"GET", one, g(get_endpoint, need, forbidden=True)),
            (b"POST", one + "/disable", g(switch("disable"), need, post=True, forbidden=True)),
            (b"POST", one + "/enable", g(switch("enable"), need, post=True, forbidden=True)),
            (b"POST", one + "/redeliver", g(post_redeliver, need, post=True, forbidden=True)),
        ]
    )
