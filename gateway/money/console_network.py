"""The center's network screen in the console (docs/console.md): what ``gateway-admin status``,
``/readyz`` and ``GET /v1/mpn/day-closes`` tell an operator, on one page.

- **Links**: each CVS agency's 速報 link (open while the agency holds a connection) and the MPN
  link (open once 開局 is answered), up or down and since when — the daemon's own readiness
  (gateway.app.service: the networks' ``readiness``), with the store's state;
- **What is waiting**: the support desk's backlogs (gateway.store.support.backlogs);
- **Files**: each network's watched folder, its files waiting and the last file taken, and the
  newest files refused with their reports (gateway.billing.inboxes);
- **MPN 閉局**: the last :data:`CLOSE_DAYS` business days' closes next to the ledger's counts
  (:meth:`gateway.money.settlement.SettlementApi.day_closes`).

Every center role (:data:`Permission.NETWORK`); nothing here changes anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool

from gateway.billing.console_access import ConsoleUser, Permission, may
from gateway.billing.inboxes import inbox_states, rejected_files
from gateway.clock import now as clock_now
from gateway.clock import today as clock_today
from gateway.config import Config
from gateway.errors import NotFound
from gateway.money.settlement import SettlementApi, day_close_json
from gateway.store import Store
from gateway.store.support import backlogs

CLOSE_DAYS = 14  # MPN closes shown: the last two weeks
REJECTED_SHOWN = 20

T = TypeVar("T")
Readiness = Callable[[], Awaitable[dict[str, Any]]]


def links_of(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """The links in /readyz's ``detail``: ``{"network", "name", "link", "since"}`` each."""
    found = [
        {"network": "cvs", "name": agency, **state}
        for agency, state in sorted(detail.get("cvs", {}).items())
    ]
    mpn = detail.get("mpn")
    if mpn is not None:
        found.append(
            {"network": "mpn", "name": "mpn", "link": mpn["link"], "since": mpn.get("since")}
        )
    return found


class ConsoleNetwork:
    def __init__(
        self,
        store: Store,
        clock: IReactorTime,
        config: Config,
        api: SettlementApi,
        readiness: Readiness | None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.api = api
        self.readiness = readiness

    def _in_thread(self, fn: Callable[[], T]) -> Deferred[T]:
        """``fn`` (it reads folders) on the reactor's thread pool; at once on a bare clock."""
        reactor: Any = self.clock
        if IReactorThreads.providedBy(reactor):
            return deferToThreadPool(reactor, reactor.getThreadPool(), fn)
        return succeed(fn())

    async def state(self, user: ConsoleUser) -> dict[str, Any]:
        if not may(user.role, Permission.NETWORK):
            raise NotFound("network")
        ready: dict[str, Any] = {"store": "unknown", "detail": {}}
        if self.readiness is not None:
            ready = await self.readiness()
        detail = ready.get("detail", {})
        waiting = await self.store.run_interaction(
            "console.backlogs", backlogs, clock_now(self.clock)
        )
        inboxes, rejected = await self._in_thread(
            lambda: (inbox_states(self.config), rejected_files(self.config, REJECTED_SHOWN))
        )
        today = clock_today(self.clock)
        closes = []
        if self.config.mpn is not None:
            rows = await self.api.day_closes(today - timedelta(days=CLOSE_DAYS - 1), today)
            closes = [day_close_json(r) for r in reversed(rows)]
        return {
            "store": ready.get("store"),
            "links": links_of(detail),
            "last_close": (detail.get("mpn") or {}).get("last_close"),
            "backlogs": waiting,
            "inboxes": inboxes,
            "rejected": rejected,
            "closes": closes,
            "mpn": self.config.mpn is not None,
        }
