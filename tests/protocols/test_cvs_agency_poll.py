"""The agency CSV poll: windows with a margin, the error block, back-off, rows into the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, succeed
from twisted.web import resource, server

from gateway.model import JST
from gateway.protocols.cvs_agency import AgencyPoller, AgencySettings
from gateway.protocols.inbox import FileResult

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cvs"


@dataclass
class FakeAgency(resource.Resource):
    """Answers each POST with the next body of ``script`` and records the forms it got."""

    script: list[tuple[int, bytes]]
    forms: list[dict[str, str]] = field(default_factory=list)
    isLeaf = True

    def __post_init__(self) -> None:
        resource.Resource.__init__(self)

    def render_POST(self, request: server.Request) -> bytes:
        self.forms.append({k.decode(): v[0].decode() for k, v in request.args.items()})
        code, body = self.script.pop(0) if self.script else (200, b"")
        request.setResponseCode(code)
        request.setHeader("Content-Type", "text/csv; charset=Shift_JIS")
        return body


@pytest.fixture
def agency() -> Iterator[tuple[FakeAgency, str, Any]]:
    from twisted.internet import reactor  # noqa: TID251

    fake = FakeAgency([])
    port = reactor.listenTCP(0, server.Site(fake), interface="127.0.0.1")
    yield fake, f"http://127.0.0.1:{port.getHost().port}/csv", reactor
    port.stopListening()


@pytest_twisted.ensureDeferred
async def test_windows_error_block_and_back_off(agency: tuple[FakeAgency, str, Any]) -> None:
    fake, url, reactor = agency
    good = (FIXTURES / "agency.csv").read_bytes()
    fake.script = [
        (200, good),
        (200, (FIXTURES / "agency_error.csv").read_bytes()),
        (503, b"busy"),
        (200, good),
    ]
    handled: list[tuple[bytes, str]] = []

    def handler(data: bytes, source: str) -> Deferred[FileResult]:
        handled.append((data, source))
        ok = not data.startswith(b"error:")
        return succeed(FileResult(ok, "applied" if ok else "the agency answered an error"))

    settings = AgencySettings(
        url, "USER", "s3cret", interval=60, lookback_days=7, margin_days=2, max_backoff=300
    )
    poller = AgencyPoller(settings, handler, reactor)
    today = datetime.fromtimestamp(reactor.seconds(), JST).date()

    assert await poller.poll_once() is True
    assert fake.forms[0] == {
        "USER_ID": "USER",
        "PW": "s3cret",
        "FROM_DATE": f"{today - timedelta(days=7):%Y%m%d}",
        "TO_DATE": f"{today:%Y%m%d}",
    }
    assert handled[0][0] == good and poller.last_complete == today

    assert await poller.poll_once() is False  # the error block
    assert fake.forms[1]["FROM_DATE"] == f"{today - timedelta(days=2):%Y%m%d}"
    assert await poller.poll_once() is False  # HTTP 503: not handed over at all
    assert len(handled) == 2
    assert await poller.poll_once() is True
    assert fake.forms[3]["FROM_DATE"] == f"{today - timedelta(days=2):%Y%m%d}"


def test_the_delay_doubles_on_failure_and_resets_on_success() -> None:
    from twisted.internet.task import Clock

    clock = Clock()
    results = iter([False, False, False, True])
    settings = AgencySettings("http://agency.invalid/", "U", "P", interval=10, max_backoff=25)
    poller = AgencyPoller(settings, lambda data, source: succeed(FileResult(True, "")), clock)

    async def scripted() -> bool:
        return next(results)

    poller.poll_once = scripted  # type: ignore[method-assign]
    poller.startService()
    delays = []
    for _ in range(4):
        clock.advance(clock.getDelayedCalls()[0].getTime() - clock.seconds())
        delays.append(poller.delay)
    poller.stopService()
    assert delays == [20, 25, 25, 10]
    assert not clock.getDelayedCalls()


def test_a_window_uses_business_dates() -> None:
    from twisted.internet.task import Clock

    clock = Clock()
    # 2026-12-01 23:30 JST is still 2026-12-01 in Japan although it is 14:30 UTC.
    clock.advance(datetime(2026, 12, 1, 23, 30, tzinfo=JST).timestamp())
    poller = AgencyPoller(
        AgencySettings("http://a.invalid/", "U", "P", lookback_days=1),
        lambda d, s: succeed(FileResult(True, "")),
        clock,
    )
    assert poller.window() == (date(2026, 11, 30), date(2026, 12, 1))
