"""The console's settlements and statements (docs/console.md), read through the merchant API's
own :class:`gateway.money.settlement.SettlementApi` for the biller they belong to.

- **Who**: :data:`Permission.SETTLEMENTS` — ``finance`` and ``operator`` for any biller they
  choose, a biller's ``biller_admin`` and ``biller_staff`` for their own only: another
  biller's settlement is :class:`NotFound`, as an unknown one, by URL as by list.
- **Across billers**: a center user who chose no biller sees every biller's settlements
  together, the latest payout date first, each with its biller (and its files, as that
  biller's).
- **Files**: the statement as PDF or CSV (UTF-8 with a BOM, or Shift_JIS) and the CSV of the
  payments it paid out, the same bytes as ``GET /v1/settlements/{id}/statement.pdf`` and its
  siblings. Each download is written to the audit log (``settlement.download``: who, which
  settlement, which file) before the file is handed over.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway.billing.actors import console_actor
from gateway.billing.console_access import ConsoleUser, Permission, acting_biller, may_for
from gateway.clock import now as clock_now
from gateway.errors import FieldError, InvalidRequest, NotFound
from gateway.model import Principal
from gateway.money.settlement import SettlementApi, settlement_json
from gateway.store import Store
from gateway.store.audit import record
from gateway.store.billers import list_billers
from gateway.store.settlements import list_all_settlements
from gateway.validation import BILLER_ID

PAGE = 24  # settlements a page (two years of a monthly cycle)
KINDS = ("pdf", "csv", "payments")


def _principal(user: ConsoleUser, biller_id: str) -> Principal:
    return Principal(key_id=f"console:{user.login}", biller_id=biller_id, is_admin=False)


class ConsoleSettlements:
    def __init__(self, store: Store, clock: IReactorTime, api: SettlementApi) -> None:
        self.store = store
        self.clock = clock
        self.api = api

    def _biller(self, user: ConsoleUser, asked: str | None) -> str | None:
        """The biller whose settlements are shown (None: a center user chose none yet)."""
        biller_id = acting_biller(user, asked)
        if biller_id is None:
            return None
        if not re.fullmatch(BILLER_ID, biller_id):
            raise InvalidRequest([FieldError("biller", "収納企業IDが正しくありません")])
        if not may_for(user, Permission.SETTLEMENTS, biller_id):
            raise NotFound(f"biller {biller_id}")
        return biller_id

    async def page(
        self, user: ConsoleUser, asked: str | None, cursor: str | None
    ) -> dict[str, Any]:
        """``{"biller_id", "billers", "data", "next_cursor", "across"}``: one biller's
        settlements, or, for a center user who chose none, every biller's (``across``, each
        with its ``biller_id``)."""
        biller_id = self._biller(user, asked)

        def names(conn: Connection) -> dict[str, str]:
            return {b.biller_id: b.name for b in list_billers(conn)}

        billers = await self.store.run_interaction("console.settlement_billers", names)
        if biller_id is None:
            found = await self.across(cursor)
            return {"biller_id": None, "billers": billers, "across": True, **found}
        if biller_id not in billers:
            raise NotFound(f"biller {biller_id}")
        found = await self.api.page(_principal(user, biller_id), cursor, PAGE)
        return {"biller_id": biller_id, "billers": billers, "across": False, **found}

    async def across(self, cursor: str | None) -> dict[str, Any]:
        """Every biller's settlements, the latest payout date first, :data:`PAGE` a page."""
        before = None
        if cursor is not None:
            day, _, settlement_id = cursor.partition(".")
            try:
                before = (date.fromisoformat(day), settlement_id)
            except ValueError:
                before = None
            if before is None or not re.fullmatch(r"stl_[0-9a-f]{24}", settlement_id):
                raise InvalidRequest([FieldError("cursor", "is not a page this console gave")])
        rows = await self.store.run_interaction(
            "console.settlements_across", list_all_settlements, before, PAGE + 1
        )
        page = rows[:PAGE]
        last = page[-1] if len(rows) > PAGE else None
        return {
            "data": [{**settlement_json(s, lines=False), "biller_id": s.biller_id} for s in page],
            "next_cursor": None if last is None else f"{last.payout_date}.{last.settlement_id}",
        }

    async def download(
        self,
        user: ConsoleUser,
        asked: str | None,
        settlement_id: str,
        kind: str,
        encoding: str | None,
    ) -> tuple[str, str, bytes]:
        """(file name, content type, bytes) of one of the settlement's files, audited."""
        biller_id = self._biller(user, asked)
        if biller_id is None or kind not in KINDS:
            raise NotFound(f"settlement {settlement_id}")
        name, ctype, data = await self.api.statement(
            _principal(user, biller_id), settlement_id, kind, encoding
        )
        await self.store.run_interaction(
            "console.settlement_download",
            record,
            console_actor(user.login),
            "settlement.download",
            f"settlement:{settlement_id}",
            clock_now(self.clock),
            biller_id=biller_id,
            after={"file": name, "kind": kind, "bytes": len(data)},
        )
        return name, ctype, data
