"""Time from the injected clock (an ``IReactorTime``): aware UTC instants, JST business dates."""

from __future__ import annotations

from datetime import UTC, date, datetime

from twisted.internet.interfaces import IReactorTime

from gateway.model import JST


def now(clock: IReactorTime) -> datetime:
    return datetime.fromtimestamp(clock.seconds(), UTC)


def today(clock: IReactorTime) -> date:
    """Today's business date in Japan."""
    return datetime.fromtimestamp(clock.seconds(), JST).date()
