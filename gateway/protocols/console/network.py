"""The center's network screen (docs/console.md): ``GET /console/network`` — the links up or
down and since when, what is waiting, each network's files received and refused (with their
reports), the MPN 閉局 of the last two weeks next to the ledger (gateway.money.console_network).
Read only."""

from __future__ import annotations

from gateway.billing.console_access import Permission
from gateway.billing.console_users import Session
from gateway.money.console_network import ConsoleNetwork
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.console.kit import Kit


def network_routes(kit: Kit, network: ConsoleNetwork) -> list[Route]:
    async def screen(call: Call, session: Session) -> Response:
        state = await network.state(session.user)
        return kit.screen(200, "network.html", session, "ネットワーク", "/network", **state)

    return kit.routes([(b"GET", "/network", kit.guarded(screen, Permission.NETWORK))])
