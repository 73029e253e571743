"""The console's refund cases (docs/console.md).

- ``GET /console/refund-cases?status=open|resolved|all&biller=&cursor=``: the queue, oldest
  first;
- ``POST /console/refund-cases/{case_id}/resolve`` (``resolution`` ``refunded`` or
  ``no_refund``, ``note``): the center's desk resolves a case (gateway.billing.console_cases,
  through the support desk's rules and audit line); 303 back to the queue, or the queue again
  with the refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from gateway.billing.console_access import Permission, may
from gateway.billing.console_cases import RESOLUTIONS, ConsoleCases, parse_query
from gateway.billing.console_users import Session
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.console.kit import Kit, field_errors
from gateway.protocols.console.web import FormError, form, redirect

LABELS = {"resolution": "対応", "note": "対応の内容", "status": "状態", "biller": "収納企業"}


def case_routes(kit: Kit, cases: ConsoleCases) -> list[Route]:
    root = kit.root

    async def queue(
        call: Call,
        session: Session,
        status: int = 200,
        errors: list[dict[str, str]] | None = None,
        failed: str = "",
        sent: Mapping[str, str] | None = None,
    ) -> Response:
        raw = {name: call.query(name) or "" for name in ("status", "biller", "cursor")}
        user = session.user
        more = {
            "form": {**raw, "status": raw["status"] or "open"},
            "center": user.biller_id is None,
            "may_resolve": may(user.role, Permission.RESOLVE_CASES),
            "may_bills": may(user.role, Permission.BILLS),
            "resolutions": RESOLUTIONS,
            "failed": failed,
            "sent": dict(sent or {}),
            "done": call.query("done") or "",
        }
        try:
            asked = parse_query(raw, user)
            found = await cases.page(user, asked)
        except InvalidRequest as e:
            return kit.screen(
                400,
                "refund_cases.html",
                session,
                "返金案件",
                "/refund-cases",
                errors=field_errors(e, LABELS),
                found=None,
                next_query="",
                **more,
            )
        following = {k: v for k, v in raw.items() if v and k != "cursor"}
        if found["next_cursor"]:
            following["cursor"] = found["next_cursor"]
        return kit.screen(
            status,
            "refund_cases.html",
            session,
            "返金案件",
            "/refund-cases",
            errors=errors or [],
            found=found,
            next_query=urlencode(following),
            **more,
        )

    async def listing(call: Call, session: Session) -> Response:
        return await queue(call, session)

    async def resolve(call: Call, session: Session) -> Response:
        case_id = call.params["case_id"]
        try:
            fields = form(call)
        except FormError as e:
            return kit.form_error(session, e)
        try:
            await cases.resolve(session.user, case_id, fields)
        except NotFound:
            return kit.not_found(session)
        except InvalidRequest as e:
            return await queue(call, session, 422, field_errors(e, LABELS), case_id, fields)
        except Conflict as e:
            message = f"この案件は対応済みです（{e.detail}）"
            errors = [{"field": "resolution", "label": "", "message": message}]
            return await queue(call, session, 409, errors, case_id, fields)
        back = {"status": fields.get("back_status") or "open", "done": case_id}
        return redirect(call, f"{root}/refund-cases?{urlencode(back)}")

    g = kit.guarded
    return kit.routes(
        [
            (b"GET", "/refund-cases", g(listing, Permission.REFUND_CASES)),
            (
                b"POST",
                "/refund-cases/{case_id}/resolve",
                g(resolve, Permission.RESOLVE_CASES, post=True),
            ),
        ]
    )
