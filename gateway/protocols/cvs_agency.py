"""The agency CSV pull (spec/cvs.md §6): POST a form on a schedule, hand the CSV over.

Each poll asks for ``FROM_DATE``..``TO_DATE`` where FROM is the end of the last complete window
minus ``margin_days`` (the agency's rows may arrive late; re-reading is harmless because the
ledger deduplicates), and TO is today. A failure (network, HTTP status, the agency's error
block, a file the handler refuses) keeps the window and backs off exponentially up to
``max_backoff``; a success resets the delay to ``interval``. The password never reaches a log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import treq
from prometheus_client import Counter, Gauge
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from gateway.model import JST
from gateway.protocols.inbox import FileResult

if TYPE_CHECKING:
    # The reactor as treq's functions take it (TCP, the clock, name resolution): treq names the
    # type of their ``reactor`` parameter only in a private module.
    from treq._types import _ITreqReactor

log = Logger()

POLLS = Counter(
    "gateway_cvs_agency_polls_total",
    "Agency CSV polls, by agency and result (ok, http_error, network_error, refused).",
    ["agency", "result"],
)
BACKOFF = Gauge(
    "gateway_cvs_agency_backoff_seconds", "Delay before the next agency poll.", ["agency"]
)

Handler = Callable[[bytes, str], Deferred[FileResult]]


@dataclass(frozen=True)
class AgencySettings:
    url: str
    user_id: str
    password: str
    interval: float = 300.0
    lookback_days: int = 7
    margin_days: int = 2
    max_backoff: float = 3600.0
    timeout: float = 30.0
    agency: str = "default"  # the [[cvs.agencies]] id: the metrics' and log lines' label


class AgencyPoller(Service):
    def __init__(self, settings: AgencySettings, handler: Handler, reactor: _ITreqReactor) -> None:
        self.settings = settings
        self.handler = handler
        self.reactor = reactor
        self.delay = settings.interval
        self.last_complete: date | None = None
        self._call: IDelayedCall | None = None
        self._polling: Deferred[bool] | None = None
        # Every series from the start, so that an alert on increase() sees the first failure.
        for result in ("ok", "http_error", "network_error", "refused"):
            POLLS.labels(settings.agency, result)

    def today(self) -> date:
        return datetime.fromtimestamp(self.reactor.seconds(), JST).date()

    def window(self) -> tuple[date, date]:
        today = self.today()
        if self.last_complete is None:
            start = today - timedelta(days=self.settings.lookback_days)
        else:
            start = self.last_complete - timedelta(days=self.settings.margin_days)
        return start, today

    def startService(self) -> None:
        super().startService()
        self._schedule(0)

    def stopService(self) -> Deferred[bool] | None:
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        return self._polling  # let a poll in flight finish (its rows are committed or not)

    def _schedule(self, delay: float) -> None:
        BACKOFF.labels(self.settings.agency).set(delay)
        if self.running:
            self._call = self.reactor.callLater(delay, self._poll)

    def _poll(self) -> None:
        self._polling = Deferred.fromCoroutine(self.poll_once())

        def done(ok: bool) -> bool:
            self._polling = None
            if ok:
                self.delay = self.settings.interval
            else:
                self.delay = min(
                    max(self.delay, self.settings.interval) * 2, self.settings.max_backoff
                )
            self._schedule(self.delay)
            return ok

        self._polling.addCallback(done)

    async def poll_once(self) -> bool:
        start, end = self.window()
        form = {
            "USER_ID": self.settings.user_id,
            "PW": self.settings.password,
            "FROM_DATE": start.strftime("%Y%m%d"),
            "TO_DATE": end.strftime("%Y%m%d"),
        }
        try:
            response = await treq.post(
                self.settings.url, data=form, reactor=self.reactor, timeout=self.settings.timeout
            )
            body = await response.content()
        except Exception as e:
            POLLS.labels(self.settings.agency, "network_error").inc()
            log.warn(
                "agency {agency} poll {start}..{end}: {error}",
                agency=self.settings.agency,
                start=start,
                end=end,
                error=type(e).__name__,
            )
            return False
        if response.code != 200:
            POLLS.labels(self.settings.agency, "http_error").inc()
            log.warn(
                "agency {agency} poll {start}..{end}: HTTP {code}",
                agency=self.settings.agency,
                start=start,
                end=end,
                code=response.code,
            )
            return False
        source = f"poll:{start:%Y%m%d}-{end:%Y%m%d}"
        try:
            result = await self.handler(body, source)
        except Exception as e:
            POLLS.labels(self.settings.agency, "network_error").inc()
            log.error(
                "agency {agency} poll {source}: not applied: {error}",
                agency=self.settings.agency,
                source=source,
                error=e,
            )
            return False
        if not result.accepted:
            POLLS.labels(self.settings.agency, "refused").inc()
            log.warn(
                "agency {agency} poll {source}: {report}",
                agency=self.settings.agency,
                source=source,
                report=result.report,
            )
            return False
        POLLS.labels(self.settings.agency, "ok").inc()
        self.last_complete = end
        log.info(
            "agency {agency} poll {source}: {report}",
            agency=self.settings.agency,
            source=source,
            report=result.report,
        )
        return True
