"""The console's dashboard (docs/console.md): today and this month, per channel, in one store
interaction.

- **Figures** per channel and in total: payments received (速報受付: the first report of each
  payment — a 速報, a Pay-easy 消込, a transfer result, or a 確報 that came first), confirmed
  (確報, 閉局, transfer result), voided (取消), and double payments (a refund case opened for
  the later of two live payments), each a count and a sum of yen, for today (JST) and this
  month (JST, from its first day).
- **The chart**: live payments per day of this month (to today) and channel, by the day they
  were made (:mod:`gateway.render.console.chart` draws it).
- **Who**: every role; a biller's user sees its own biller's figures, a center user every
  biller's together or one biller's.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway.billing.console_access import ConsoleUser, acting_biller
from gateway.clock import today as clock_today
from gateway.errors import FieldError, InvalidRequest, NotFound
from gateway.fee_model import jst_midnight
from gateway.model import Channel
from gateway.store import Store
from gateway.store.billers import list_billers
from gateway.store.console_dashboard import Totals, channel_totals, daily_collections
from gateway.validation import BILLER_ID

FIGURES = ("received", "confirmed", "voided", "double")
CHANNELS = tuple(c.value for c in Channel)


def table(totals: Totals) -> dict[str, dict[str, tuple[int, int]]]:
    """Every channel and ``total``, every figure (zero where none)."""
    rows = {ch: {f: totals.get(ch, {}).get(f, (0, 0)) for f in FIGURES} for ch in CHANNELS}
    rows["total"] = {
        f: (sum(rows[ch][f][0] for ch in CHANNELS), sum(rows[ch][f][1] for ch in CHANNELS))
        for f in FIGURES
    }
    return rows


def month_days(today: date) -> list[date]:
    first = today.replace(day=1)
    return [first + timedelta(days=n) for n in range((today - first).days + 1)]


class ConsoleDashboard:
    def __init__(self, store: Store, clock: IReactorTime) -> None:
        self.store = store
        self.clock = clock

    async def figures(self, user: ConsoleUser, asked: str | None) -> dict[str, Any]:
        biller_id = acting_biller(user, asked)
        if biller_id is not None and not re.fullmatch(BILLER_ID, biller_id):
            raise InvalidRequest([FieldError("biller", "収納企業IDが正しくありません")])
        today = clock_today(self.clock)
        first = today.replace(day=1)
        tomorrow = today + timedelta(days=1)
        next_month = (first + timedelta(days=32)).replace(day=1)

        def txn(conn: Connection) -> dict[str, Any]:
            billers = {b.biller_id: b.name for b in list_billers(conn)}
            if biller_id is not None and biller_id not in billers:
                raise NotFound(f"biller {biller_id}")
            day = channel_totals(conn, biller_id, jst_midnight(today), jst_midnight(tomorrow))
            month = channel_totals(conn, biller_id, jst_midnight(first), jst_midnight(next_month))
            daily = daily_collections(conn, biller_id, first, today)
            return {
                "biller_id": biller_id,
                "billers": billers,
                "today": today,
                "month_start": first,
                "day": table(day),
                "month": table(month),
                "daily": {(d, ch): (n, amount) for d, ch, n, amount in daily},
                "days": month_days(today),
            }

        return await self.store.run_interaction("console.dashboard", txn)
