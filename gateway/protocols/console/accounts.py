"""A biller's console users in the console (docs/console.md).

- ``GET /console/users?biller=``: the biller's users (login, role, created, last login, state),
  each with its disable form, and the new-user form;
- ``POST /console/users`` (``login``, ``role`` ``biller_staff`` or ``biller_admin``,
  ``form_id``): a new user, with its one-time password shown on the answer once (never in a
  URL); the same form again says it was sent;
- ``POST /console/users/disable`` (``login``, ``confirm``): the user disabled and its sessions
  ended at once; 303 back.

Only a ``biller_admin`` (its own biller) and a center ``operator`` open these screens: another
role gets 403, another biller's user 404. The rules are gateway.billing.console_accounts's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from gateway.billing.console_access import MANAGED_ROLES, ROLE_LABELS, Permission, is_login
from gateway.billing.console_accounts import ConsoleAccounts
from gateway.billing.console_users import Session
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.console.kit import Kit, field_errors, new_form_id
from gateway.protocols.console.web import FormError, form, redirect

LABELS = {
    "login": "ログインID",
    "role": "役割",
    "biller": "収納企業",
    "confirm": "確認",
    "form_id": "フォーム",
}
ROLE_NAMES = {r.value: ROLE_LABELS[r] for r in MANAGED_ROLES}


def _conflict(e: Conflict) -> str:
    if "Idempotency-Key" in e.detail:
        return "この画面の内容は送信済みです。画面を開き直してください。"
    return "このログインIDは使われています（無効にしたユーザーのログインIDも使えません）。"


def account_routes(kit: Kit, accounts: ConsoleAccounts) -> list[Route]:
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
            found = await accounts.page(session.user, asked or call.query("biller"))
        except NotFound:
            return kit.not_found(session)
        except InvalidRequest as e:
            message = "、".join(f.message for f in e.errors)
            return kit.error(400, session, "表示できませんでした", message)
        done = ""
        disabled = call.query("disabled") or ""
        if status == 200 and created is None and is_login(disabled):
            done = f"ユーザー {disabled} を無効にしました。ログイン中の画面もすぐ使えなくなります。"
        return kit.screen(
            status,
            "users.html",
            session,
            "ユーザー",
            "/users",
            found=found,
            center=session.user.biller_id is None,
            roles=list(ROLE_NAMES),
            role_names=ROLE_NAMES,
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
            created = await accounts.create(session.user, fields)
        except NotFound:
            return kit.not_found(session)
        except InvalidRequest as e:
            return await listing(call, session, asked, 422, field_errors(e, LABELS), fields)
        except Conflict as e:
            errors = [{"field": "login", "label": "ログインID", "message": _conflict(e)}]
            return await listing(call, session, asked, 409, errors, fields)
        return await listing(call, session, created["biller_id"], created=created)

    async def post_disable(call: Call, session: Session) -> Response:
        try:
            fields = form(call)
        except FormError as e:
            return kit.form_error(session, e)
        asked = fields.get("biller")
        try:
            done = await accounts.disable(session.user, fields)
        except NotFound:
            return kit.not_found(session)
        except InvalidRequest as e:
            return await listing(call, session, asked, 422, field_errors(e, LABELS))
        back = {"disabled": done["login"]}
        if session.user.biller_id is None:
            back["biller"] = done["biller_id"]
        return redirect(call, f"{root}/users?{urlencode(back)}")

    g = kit.guarded
    need = Permission.USERS
    return kit.routes(
        [
            (b"GET", "/users", g(get_list, need, forbidden=True)),
            (b"POST", "/users", g(post_create, need, post=True, forbidden=True)),
            (b"POST", "/users/disable", g(post_disable, need, post=True, forbidden=True)),
        ]
    )
