"""The center's desk (docs/console.md).

- ``GET /console/search?q=``: bills of every biller an identifier names (the support desk's
  search), each linked to its page (``/console/bills/{biller_id}/{bill_no}``);
- ``GET /console/audit?user=&biller=&action=&from=&to=&cursor=``: the audit log, newest first.

Both read only (``GET``): nothing to audit, no CSRF token.
"""

from __future__ import annotations

from urllib.parse import urlencode

from gateway.billing.console_access import Permission, may
from gateway.billing.console_center import ConsoleCenter, parse_audit_query
from gateway.billing.console_users import Session
from gateway.errors import InvalidRequest
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.console.kit import Kit, field_errors

AUDIT_LABELS = {
    "user": "操作者",
    "biller": "収納企業ID",
    "action": "操作",
    "from": "日付（から）",
    "to": "日付（まで）",
    "cursor": "ページ",
}
AUDIT_FIELDS = ("user", "biller", "action", "from", "to")


def center_routes(kit: Kit, center: ConsoleCenter) -> list[Route]:
    async def search(call: Call, session: Session) -> Response:
        q = call.query("q") or ""
        found = None
        errors: list[dict[str, str]] = []
        status = 200
        if q.strip():
            try:
                found = await center.search(session.user, q)
            except InvalidRequest as e:
                status, errors = 400, field_errors(e, {"q": "検索"})
        return kit.screen(
            status,
            "search.html",
            session,
            "横断検索",
            "/search",
            q=q[:200],
            found=found,
            errors=errors,
            may_bills=may(session.user.role, Permission.BILLS),
        )

    async def audit(call: Call, session: Session) -> Response:
        raw = {name: call.query(name) or "" for name in (*AUDIT_FIELDS, "cursor")}
        shown = {name: raw[name][:64] for name in AUDIT_FIELDS}
        try:
            asked = parse_audit_query(raw)
        except InvalidRequest as e:
            return kit.screen(
                400,
                "audit.html",
                session,
                "操作履歴",
                "/audit",
                form=shown,
                errors=field_errors(e, AUDIT_LABELS),
                found=None,
                next_query="",
            )
        found = await center.audit(session.user, asked)
        following = {k: v for k, v in shown.items() if v}
        if found["next_cursor"]:
            following["cursor"] = found["next_cursor"]
        return kit.screen(
            200,
            "audit.html",
            session,
            "操作履歴",
            "/audit",
            form=shown,
            errors=[],
            found=found,
            next_query=urlencode(following),
        )

    g = kit.guarded
    return kit.routes(
        [
            (b"GET", "/search", g(search, Permission.SUPPORT_SEARCH)),
            (b"GET", "/audit", g(audit, Permission.AUDIT)),
        ]
    )
