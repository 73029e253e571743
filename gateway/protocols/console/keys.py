"""A biller's API keys in the console (docs/console.md).

- ``GET /console/api-keys?biller=``: the keys, newest first (name, prefix, created, last used,
  state; never the key), each with its revoke form, and the new-key form;
- ``POST /console/api-keys`` (``name``, ``form_id``): a new key, shown on the answer once with
  a warning (never in a URL, never again); the same form again says it was sent;
- ``POST /console/api-keys/revoke`` (``key_id``, ``confirm``): the key revoked now; 303 back.

Only a ``biller_admin`` (its own biller) and a center ``operator`` open these screens: another
role gets 403, another biller's key 404. The rules are gateway.billing.console_keys's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from gateway.billing.console_access import Permission
from gateway.billing.console_keys import KEY_ID, ConsoleKeys
from gateway.billing.console_users import Session
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.console.kit import Kit, field_errors, new_form_id
from gateway.protocols.console.web import FormError, form, redirect

LABELS = {"name": "名前", "biller": "収納企業", "confirm": "確認", "form_id": "フォーム"}


def key_routes(kit: Kit, keys: ConsoleKeys) -> list[Route]:
    root = kit.root

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
            found = await keys.page(session.user, asked or call.query("biller"))
        except NotFound:
            return kit.not_found(session)
        except InvalidRequest as e:
            message = "、".join(f.message for f in e.errors)
            return kit.error(400, session, "表示できませんでした", message)
        done = ""
        revoked = call.query("revoked") or ""
        if status == 200 and created is None and re.fullmatch(KEY_ID, revoked):
            done = f"キー {revoked} を無効にしました。"
        return kit.screen(
            status,
            "api_keys.html",
            session,
            "APIキー",
            "/api-keys",
            found=found,
            center=session.user.biller_id is None,
            errors=errors or [],
            sent=dict(sent or {}),
            created=created,
            done=done,
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
            created = await keys.create(session.user, fields)
        except NotFound:
            return kit.not_found(session)
        except InvalidRequest as e:
            return await listing(call, session, asked, 422, field_errors(e, LABELS), fields)
        except Conflict:
            message = "この画面の内容は送信済みです。画面を開き直してください。"
            errors = [{"field": "", "label": "", "message": message}]
            return await listing(call, session, asked, 409, errors, fields)
        return await listing(call, session, created["biller_id"], created=created)

    async def post_revoke(call: Call, session: Session) -> Response:
        try:
            fields = form(call)
        except FormError as e:
            return kit.form_error(session, e)
        asked = fields.get("biller")
        try:
            revoked = await keys.revoke(session.user, fields)
        except NotFound:
            return kit.not_found(session)
        except InvalidRequest as e:
            return await listing(call, session, asked, 422, field_errors(e, LABELS))
        back = {"revoked": revoked["key_id"]}
        if session.user.biller_id is None:
            back["biller"] = revoked["biller_id"]
        return redirect(call, f"{root}/api-keys?{urlencode(back)}")

    g = kit.guarded
    need = Permission.API_KEYS
    return kit.routes(
        [
            (b"GET", "/api-keys", g(get_list, need, forbidden=True)),
            (b"POST", "/api-keys", g(post_create, need, post=True, forbidden=True)),
            (b"POST", "/api-keys/revoke", g(post_revoke, need, post=True, forbidden=True)),
        ]
    )
