"""The reconciliation of the networks' money, for finance (an admin key; a biller's key answers
403; docs/settlement.md, "Reconciliation"):

- ``GET /v1/admin/reconciliation?date=YYYY-MM-DD`` — a transfer date reconciled now: what each
  network and agency owed and sent, the deposits of the day and the day's items — and without
  ``date``, every open item;
- ``POST /v1/admin/reconciliation/items/{item_id}/resolve`` — ``{"note": "..."}``: finance
  resolves an open item saying what was done (audited as ``key:<admin key id>``); 404 for an
  unknown item, 409 for one already resolved, each naming ``item_id``.
"""

from __future__ import annotations

from gateway.billing.actors import key_actor
from gateway.errors import FieldError, NotFound
from gateway.money.reconciliation import ReconciliationApi
from gateway.protocols.api.access import admin_only
from gateway.protocols.api.http import Call, Problem, Response, Route
from gateway.protocols.api.settlement_routes import _date
from gateway.recon_model import NOTE_MAX
from gateway.validation import Fields


def recon_routes(api: ReconciliationApi) -> list[Route]:
    async def reconciliation(call: Call) -> Response:
        admin_only(call)
        raw = call.query("date")
        if raw is None:
            return Response.json(await api.open())
        return Response.json(await api.day(_date("date", raw)))

    async def resolve(call: Call) -> Response:
        actor = key_actor(admin_only(call))
        f = Fields(call.json_body())
        note = f.string("note", required=True, max_len=NOTE_MAX)
        f.finish()
        f.raise_if_invalid()
        assert note is not None
        item_id = call.params["item_id"]
        try:
            return Response.json(await api.resolve(item_id, note, actor))
        except NotFound as e:
            missing = FieldError("item_id", "no reconciliation item has this id")
            raise Problem(404, "Not found", str(e), [missing]) from None

    return [
        Route(b"GET", "/v1/admin/reconciliation", reconciliation, auth=True),
        Route(b"POST", "/v1/admin/reconciliation/items/{item_id}/resolve", resolve, auth=True),
    ]
