"""The console's settlements and their statements (docs/console.md).

- ``GET /console/settlements?biller=&cursor=``: a biller's settlements, newest first (a center
  user chooses the biller);
- ``GET /console/settlements/{settlement_id}/statement.pdf``, ``…/statement.csv`` and
  ``…/payments.csv`` (``?encoding=utf-8|shift_jis``; a center user's ``?biller=``): the files of
  ``GET /v1/settlements/{id}/…``, as downloads (gateway.money.console_settlements, audited).
"""

from __future__ import annotations

from urllib.parse import urlencode

from gateway.billing.console_access import Permission
from gateway.billing.console_users import Session
from gateway.errors import InvalidRequest, NotFound
from gateway.money.console_settlements import ConsoleSettlements
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.console.kit import Guarded, Kit
from gateway.render.console import PAGE_HEADERS


def settlement_routes(kit: Kit, settlements: ConsoleSettlements) -> list[Route]:
    async def listing(call: Call, session: Session) -> Response:
        asked = call.query("biller") or None
        try:
            found = await settlements.page(session.user, asked, call.query("cursor") or None)
        except NotFound:
            return kit.not_found(session)
        except InvalidRequest as e:
            message = "、".join(f.message for f in e.errors)
            return kit.error(400, session, "表示できませんでした", message)
        center = session.user.biller_id is None
        own = {"biller": found["biller_id"]} if center and found["biller_id"] else {}
        following = dict(own)
        if found["next_cursor"]:
            following["cursor"] = found["next_cursor"]
        return kit.screen(
            200,
            "settlements.html",
            session,
            "精算",
            "/settlements",
            found=found,
            center=center,
            file_query=urlencode(own),
            next_query=urlencode(following),
        )

    def download(kind: str) -> Guarded:
        async def run(call: Call, session: Session) -> Response:
            try:
                name, ctype, data = await settlements.download(
                    session.user,
                    call.query("biller") or None,
                    call.params["settlement_id"],
                    kind,
                    call.query("encoding"),
                )
            except NotFound:
                return kit.not_found(session)
            except InvalidRequest as e:
                message = "、".join(f.message for f in e.errors)
                return kit.error(400, session, "出力できませんでした", message)
            disposition = f'attachment; filename="{name}"'
            return Response(200, data, ctype, {**PAGE_HEADERS, "Content-Disposition": disposition})

        return run

    g = kit.guarded
    need = Permission.SETTLEMENTS
    base = "/settlements/{settlement_id}"
    return kit.routes(
        [
            (b"GET", "/settlements", g(listing, need)),
            (b"GET", base + "/statement.pdf", g(download("pdf"), need)),
            (b"GET", base + "/statement.csv", g(download("csv"), need)),
            (b"GET", base + "/payments.csv", g(download("payments"), need)),
        ]
    )
