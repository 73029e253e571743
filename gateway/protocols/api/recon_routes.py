"""The reconciliation of the networks' money, for finance (an admin key; a biller's key answers
403): ``GET /v1/admin/reconciliation?date=YYYY-MM-DD`` — a transfer date reconciled now: what
each network and agency owed and sent, the deposits of the day and the day's items — and
without ``date``, every open item (docs/settlement.md, "Reconciliation")."""

from __future__ import annotations

from gateway.money.reconciliation import ReconciliationApi
from gateway.protocols.api.access import admin_only
from gateway.protocols.api.http import Call, Response, Route
from gateway.protocols.api.settlement_routes import _date


def recon_routes(api: ReconciliationApi) -> list[Route]:
    async def reconciliation(call: Call) -> Response:
        admin_only(call)
        raw = call.query("date")
        if raw is None:
            return Response.json(await api.open())
        return Response.json(await api.day(_date("date", raw)))

    return [Route(b"GET", "/v1/admin/reconciliation", reconciliation, auth=True)]
