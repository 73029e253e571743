"""The console's dashboard (docs/console.md): ``GET /console/dashboard?biller=`` — today's and
this month's payments received, confirmed and voided and the double payments per channel, and
the chart of this month's daily collections per channel (server-side SVG)."""

from __future__ import annotations

from gateway.billing.console_access import Permission
from gateway.billing.console_dashboard import CHANNELS, ConsoleDashboard
from gateway.billing.console_users import Session
from gateway.errors import InvalidRequest, NotFound
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.console.kit import Kit
from gateway.render.console import LABELS
from gateway.render.console.chart import daily_chart


def dashboard_routes(kit: Kit, dashboard: ConsoleDashboard) -> list[Route]:
    async def show(call: Call, session: Session) -> Response:
        try:
            found = await dashboard.figures(session.user, call.query("biller") or None)
        except NotFound:
            return kit.not_found(session)
        except InvalidRequest as e:
            message = "、".join(f.message for f in e.errors)
            return kit.error(400, session, "表示できませんでした", message)
        names = {ch: LABELS["channel"][ch] for ch in CHANNELS}
        chart = daily_chart(found["days"], found["daily"], names)
        return kit.screen(
            200,
            "dashboard.html",
            session,
            "ダッシュボード",
            "/dashboard",
            found=found,
            chart=chart,
            channels=CHANNELS,
            center=session.user.biller_id is None,
        )

    return kit.routes([(b"GET", "/dashboard", kit.guarded(show, Permission.DASHBOARD))])
