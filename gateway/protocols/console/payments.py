"""The console's payments list and its CSV export (docs/console.md).

- ``GET /console/payments?q=&channel=&status=&paid_from=&paid_to=&biller=&before=``: the
  payments, newest first, 50 a page;
- ``GET /console/payments.csv?…&encoding=utf-8|shift_jis``: every payment the same filters
  match, as a CSV file (gateway.billing.console_payments: a biller's user exports its own
  biller's payments only, and every export is in the audit log).
"""

from __future__ import annotations

from urllib.parse import urlencode

from gateway.billing.console_access import Permission, may
from gateway.billing.console_payments import PAGE, ConsolePayments, parse_filters
from gateway.billing.console_users import Session
from gateway.errors import InvalidRequest
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.console.bulk import csv_file
from gateway.protocols.console.kit import Kit

NAMES = ("q", "channel", "status", "paid_from", "paid_to", "biller")


def payment_routes(kit: Kit, payments: ConsolePayments) -> list[Route]:
    def asked(call: Call) -> dict[str, str]:
        return {name: call.query(name) or "" for name in (*NAMES, "before")}

    async def listing(call: Call, session: Session) -> Response:
        query = asked(call)
        shown = {name: query[name] for name in NAMES}
        center = session.user.biller_id is None
        chosen = {k: v for k, v in shown.items() if v}
        more = {
            "form": shown,
            "center": center,
            "may_bills": may(session.user.role, Permission.BILLS),
            "export_query": urlencode(chosen),
            "page_size": PAGE,
        }
        try:
            filters = parse_filters(query, session.user)
        except InvalidRequest as e:
            return kit.screen(
                400,
                "payments.html",
                session,
                "入金一覧",
                "/payments",
                errors=list(e.errors),
                found=None,
                next_query="",
                **more,
            )
        found = await payments.page(session.user, filters)
        following = dict(chosen)
        if found["next_before"] is not None:
            following["before"] = found["next_before"]
        return kit.screen(
            200,
            "payments.html",
            session,
            "入金一覧",
            "/payments",
            errors=[],
            found=found,
            next_query=urlencode(following),
            **more,
        )

    async def export(call: Call, session: Session) -> Response:
        try:
            filters = parse_filters(asked(call), session.user)
            encoding = call.query("encoding") or "utf-8"
            data = await payments.export(session.user, filters, encoding)
        except InvalidRequest as e:
            message = "、".join(f.message for f in e.errors)
            return kit.error(400, session, "出力できませんでした", message)
        charset = "utf-8" if encoding == "utf-8" else "Shift_JIS"
        return csv_file("payments.csv", data, charset)

    g = kit.guarded
    return kit.routes(
        [
            (b"GET", "/payments", g(listing, Permission.PAYMENTS)),
            (b"GET", "/payments.csv", g(export, Permission.PAYMENTS)),
        ]
    )
