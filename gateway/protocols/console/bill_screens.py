"""A bill's page and what a user does to bills from the console (docs/console.md).

- ``GET /console/bills/{biller_id}/{bill_no}``: the bill, its payment page's link, its timeline
  (``…/timeline``, polled by htmx) and, for a role that may, the reissue and cancel forms;
- ``POST …/reissue`` (``amount``, ``due_date``, either empty: unchanged) and ``POST …/cancel``:
  through gateway.billing.console_actions (the merchant API's bill service); then 303 back to
  the bill's page with what was done, or the page again with the refusal (422, 409);
- ``GET /console/bills/new`` and ``POST /console/bills/new``: the new-bill form (a center
  operator chooses the biller); 303 to the new bill's page.

Every form carries the CSRF token and a one-time ``form_id``: sent twice, it acts once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from gateway.billing.console_access import Permission, may, may_for
from gateway.billing.console_actions import FIELD_LABELS, ConsoleBillActions, conflict_message
from gateway.billing.console_bills import ConsoleBills
from gateway.billing.console_users import Session
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.console.kit import Guarded, Kit, field_errors, new_form_id
from gateway.protocols.console.web import FormError, form, html, page, redirect

TIMELINE_REFRESH_SECONDS = 5  # how often a bill's page asks for its timeline again

#: What the bill's page says after a change (``?done=``).
DONE = {
    "reissued": "請求を再発行しました。新しいバーコードとお支払いページをお知らせください。",
    "cancelled": "請求を取り消しました。",
    "created": "請求を登録しました。",
    "existing": "同じ内容の請求が登録済みです。",
}

_NEW_FIELDS = (
    "biller",
    "bill_no",
    "amount",
    "due_date",
    "customer_no",
    "name",
    "kana",
    "email",
    "phone",
    "taxable",
    "tax_amount",
    "description",
    "channel_cvs",
    "channel_payeasy",
    "channel_transfer",
)


def bill_path(root: str, biller_id: str, bill_no: str) -> str:
    return f"{root}/bills/{quote(biller_id)}/{quote(bill_no)}"


def bill_routes(kit: Kit, bills: ConsoleBills, actions: ConsoleBillActions) -> list[Route]:
    root = kit.root

    async def bill_page(
        call: Call,
        session: Session,
        status: int = 200,
        errors: list[dict[str, str]] | None = None,
        sent: Mapping[str, str] | None = None,
        which: str = "",
    ) -> Response:
        biller_id, bill_no = call.params["biller_id"], call.params["bill_no"]
        try:
            story = await bills.bill(session.user, biller_id, bill_no)
        except NotFound:
            return kit.not_found(session)
        user = session.user
        done = DONE.get(call.query("done") or "", "") if status == 200 else ""
        return kit.screen(
            status,
            "bill.html",
            session,
            f"請求 {story['bill']['bill_no']}",
            "/bills",
            story=story,
            refresh_seconds=TIMELINE_REFRESH_SECONDS,
            done=done,
            errors=errors or [],
            failed=which,
            sent=dict(sent or {}),
            may_reissue=may_for(user, Permission.REISSUE, biller_id),
            may_cancel=may_for(user, Permission.CANCEL, biller_id),
            reissue_form_id=new_form_id(),
            cancel_form_id=new_form_id(),
        )

    async def get_bill(call: Call, session: Session) -> Response:
        return await bill_page(call, session)

    async def timeline(call: Call, session: Session) -> Response:
        try:
            story = await bills.bill(session.user, call.params["biller_id"], call.params["bill_no"])
        except NotFound:
            return html(404, "")
        return page(200, "_timeline.html", story=story, root=root)

    def change(which: str) -> Guarded:
        async def run(call: Call, session: Session) -> Response:
            biller_id, bill_no = call.params["biller_id"], call.params["bill_no"]
            try:
                fields = form(call)
            except FormError as e:
                return kit.form_error(session, e)
            try:
                if which == "reissue":
                    await actions.reissue(session.user, biller_id, bill_no, fields)
                else:
                    await actions.cancel(session.user, biller_id, bill_no, fields)
            except NotFound:
                return kit.not_found(session)
            except InvalidRequest as e:
                errors = field_errors(e, FIELD_LABELS)
                return await bill_page(call, session, 422, errors, fields, which)
            except Conflict as e:
                errors = [{"field": "", "label": "", "message": conflict_message(e)}]
                return await bill_page(call, session, 409, errors, fields, which)
            done = "reissued" if which == "reissue" else "cancelled"
            return redirect(call, f"{bill_path(root, biller_id, bill_no)}?done={done}")

        return run

    async def new_form(
        session: Session,
        status: int = 200,
        errors: list[dict[str, str]] | None = None,
        sent: Mapping[str, str] | None = None,
    ) -> Response:
        options = await actions.form_options(session.user)
        values: dict[str, Any] = {name: "" for name in _NEW_FIELDS}
        if sent is None:
            values.update({f"channel_{c}": "1" for c in options["channels"]})
        else:
            values.update({k: v for k, v in sent.items() if k in values})
        return kit.screen(
            status,
            "bill_new.html",
            session,
            "請求の登録",
            "/bills/new",
            options=options,
            values=values,
            errors=errors or [],
            form_id=new_form_id(),
        )

    async def get_new(call: Call, session: Session) -> Response:
        return await new_form(session)

    async def post_new(call: Call, session: Session) -> Response:
        try:
            fields = form(call)
        except FormError as e:
            return kit.form_error(session, e)
        try:
            biller_id, bill, created = await actions.create(session.user, fields)
        except InvalidRequest as e:
            return await new_form(session, 422, field_errors(e, FIELD_LABELS), fields)
        except Conflict as e:
            errors = [{"field": "bill_no", "label": "請求番号", "message": conflict_message(e)}]
            return await new_form(session, 409, errors, fields)
        done = "created" if created else "existing"
        where = bill_path(root, biller_id, bill["bill_no"])
        if not may(session.user.role, Permission.BILLS):
            where = root + "/bills/new"
        return redirect(call, f"{where}?done={done}")

    g = kit.guarded
    return kit.routes(
        [
            (b"GET", "/bills/new", g(get_new, Permission.NEW_BILL)),
            (b"POST", "/bills/new", g(post_new, Permission.NEW_BILL, post=True)),
            (b"GET", "/bills/{biller_id}/{bill_no}", g(get_bill, Permission.BILLS)),
            (b"GET", "/bills/{biller_id}/{bill_no}/timeline", g(timeline, Permission.BILLS)),
            (
                b"POST",
                "/bills/{biller_id}/{bill_no}/reissue",
                g(change("reissue"), Permission.REISSUE, post=True),
            ),
            (
                b"POST",
                "/bills/{biller_id}/{bill_no}/cancel",
                g(change("cancel"), Permission.CANCEL, post=True),
            ),
        ]
    )
