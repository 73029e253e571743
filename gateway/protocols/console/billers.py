"""The center's billers (docs/console.md).

- ``GET /console/billers?cursor=``: every biller (code, name, channels, state), and for an
  ``operator`` the new-biller form, which posts to ``POST /console/billers``;
- ``GET /console/billers/{biller_id}``: a biller's page — its codes, channels, state, 委託者
  data and fee plans, with the forms the user's role may send:
- ``POST …/channels`` (``channel_<c>`` ticked), ``POST …/suspend`` and ``…/resume``
  (``reason``), ``POST …/consignor`` (``operator``); ``POST …/fee-plans`` (``finance``,
  ``operator``).

Each change goes through gateway.billing.console_billers and gateway.money.console_fee_plans
(the operator API's own functions, audited as the console user); then 303 back to the page with
what was done, or the page again with the refusal (422, 409).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from gateway.billing.console_access import Permission, may
from gateway.billing.console_billers import FIELD_LABELS, ConsoleBillers
from gateway.billing.console_users import Session
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.money.console_fee_plans import CYCLES, ROUNDINGS, ConsoleFeePlans, plan_fields
from gateway.money.console_fee_plans import FIELD_LABELS as PLAN_LABELS
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.console.kit import Guarded, Kit, field_errors
from gateway.protocols.console.web import FormError, form, redirect

#: What the biller's page says after a change (``?done=``).
DONE = {
    "created": "収納企業を登録しました。",
    "channels": "支払方法を変更しました。",
    "suspended": (
        "収納企業を停止しました。APIキーと新しい請求は受け付けません（入金は記録されます）。"
    ),
    "resumed": "収納企業の停止を解除しました。",
    "consignor": "委託者情報を保存しました。",
    "fee_plan": "手数料プランを保存しました。",
}

Change = Callable[[Session, str, Mapping[str, str]], Awaitable[object]]


def biller_routes(kit: Kit, billers: ConsoleBillers, plans: ConsoleFeePlans) -> list[Route]:
    root = kit.root

    def biller_path(biller_id: str) -> str:
        return f"{root}/billers/{quote(biller_id)}"

    async def listing(
        call: Call,
        session: Session,
        status: int = 200,
        errors: list[dict[str, str]] | None = None,
        sent: Mapping[str, str] | None = None,
    ) -> Response:
        try:
            found = await billers.page(session.user, call.query("cursor") or None)
        except InvalidRequest:
            return kit.error(400, session, "表示できませんでした", "続きの指定が正しくありません。")
        options = billers.form_options()
        values: dict[str, Any] = dict(sent or {})
        if sent is None:
            values.update({f"channel_{c}": "1" for c in options["channels"]})
        following = {"cursor": found["next_cursor"]} if found["next_cursor"] else {}
        return kit.screen(
            status,
            "billers.html",
            session,
            "収納企業",
            "/billers",
            found=found,
            next_query=urlencode(following),
            may_create=may(session.user.role, Permission.EDIT_BILLERS),
            options=options,
            values=values,
            errors=errors or [],
        )

    async def get_list(call: Call, session: Session) -> Response:
        return await listing(call, session)

    async def create(call: Call, session: Session) -> Response:
        try:
            fields = form(call)
        except FormError as e:
            return kit.form_error(session, e)
        try:
            made = await billers.create(session.user, fields)
        except InvalidRequest as e:
            return await listing(call, session, 422, field_errors(e, FIELD_LABELS), fields)
        except Conflict as e:
            label = FIELD_LABELS.get(e.field or "", "")
            errors = [{"field": e.field or "", "label": label, "message": e.detail}]
            return await listing(call, session, 409, errors, fields)
        return redirect(call, f"{biller_path(made['biller_id'])}?done=created")

    async def biller_page(
        call: Call,
        session: Session,
        status: int = 200,
        errors: list[dict[str, str]] | None = None,
        failed: str = "",
        sent: Mapping[str, str] | None = None,
    ) -> Response:
        biller_id = call.params["biller_id"]
        try:
            found = await billers.biller(session.user, biller_id)
            versions = await plans.plans(session.user, biller_id)
        except NotFound:
            return kit.not_found(session)
        role = session.user.role
        return kit.screen(
            status,
            "biller.html",
            session,
            f"収納企業 {found['biller']['name']}",
            "/billers",
            biller=found["biller"],
            consignor=found["consignor"],
            plans=versions,
            plan_values=(
                dict(sent or {})
                if failed == "fee_plan"
                else plan_fields(versions[-1] if versions else None)
            ),
            options=billers.form_options(),
            may_edit=may(role, Permission.EDIT_BILLERS),
            may_plan=may(role, Permission.FEE_PLANS),
            cycles=CYCLES,
            roundings=ROUNDINGS,
            done=DONE.get(call.query("done") or "", "") if status == 200 else "",
            errors=errors or [],
            failed=failed,
            sent=dict(sent or {}),
        )

    async def get_biller(call: Call, session: Session) -> Response:
        return await biller_page(call, session)

    def change(which: str, act: Change, done: str, labels: dict[str, str]) -> Guarded:
        async def run(call: Call, session: Session) -> Response:
            biller_id = call.params["biller_id"]
            try:
                fields = form(call)
            except FormError as e:
                return kit.form_error(session, e)
            try:
                await act(session, biller_id, fields)
            except NotFound:
                return kit.not_found(session)
            except InvalidRequest as e:
                errors = field_errors(e, labels)
                return await biller_page(call, session, 422, errors, which, fields)
            except Conflict as e:
                label = labels.get(e.field or "", "")
                errors = [{"field": e.field or "", "label": label, "message": e.detail}]
                return await biller_page(call, session, 409, errors, which, fields)
            return redirect(call, f"{biller_path(biller_id)}?done={done}")

        return run

    async def channels(session: Session, biller_id: str, fields: Mapping[str, str]) -> object:
        return await billers.set_channels(session.user, biller_id, fields)

    async def suspend(session: Session, biller_id: str, fields: Mapping[str, str]) -> object:
        return await billers.suspend(session.user, biller_id, fields, True)

    async def resume(session: Session, biller_id: str, fields: Mapping[str, str]) -> object:
        return await billers.suspend(session.user, biller_id, fields, False)

    async def consignor(session: Session, biller_id: str, fields: Mapping[str, str]) -> object:
        return await billers.set_consignor(session.user, biller_id, fields)

    async def fee_plan(session: Session, biller_id: str, fields: Mapping[str, str]) -> object:
        return await plans.put(session.user, biller_id, fields)

    g = kit.guarded
    edit = Permission.EDIT_BILLERS
    base = "/billers/{biller_id}"
    return kit.routes(
        [
            (b"GET", "/billers", g(get_list, Permission.BILLERS)),
            (b"POST", "/billers", g(create, edit, post=True)),
            (b"GET", base, g(get_biller, Permission.BILLERS)),
            (
                b"POST",
                base + "/channels",
                g(change("channels", channels, "channels", FIELD_LABELS), edit, post=True),
            ),
            (
                b"POST",
                base + "/suspend",
                g(change("suspend", suspend, "suspended", FIELD_LABELS), edit, post=True),
            ),
            (
                b"POST",
                base + "/resume",
                g(change("suspend", resume, "resumed", FIELD_LABELS), edit, post=True),
            ),
            (
                b"POST",
                base + "/consignor",
                g(change("consignor", consignor, "consignor", FIELD_LABELS), edit, post=True),
            ),
            (
                b"POST",
                base + "/fee-plans",
                g(
                    change("fee_plan", fee_plan, "fee_plan", PLAN_LABELS),
                    Permission.FEE_PLANS,
                    post=True,
                ),
            ),
        ]
    )
