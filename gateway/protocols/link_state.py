"""Whether a network link is up, and since when: what /readyz and the console's network screen
(docs/console.md) show beside the ``gateway_*_link_*`` gauges. Kept by the link's factory on
the injected clock; "since" is the daemon's start until the link first changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twisted.internet.interfaces import IReactorTime


class LinkState:
    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.up = False
        self.since = clock.seconds()

    def set(self, up: bool) -> None:
        if up != self.up:
            self.up = up
            self.since = self.clock.seconds()

    def document(self) -> dict[str, Any]:
        """``{"link": "open" | "down", "since": ISO 8601 UTC}``."""
        return {
            "link": "open" if self.up else "down",
            "since": datetime.fromtimestamp(self.since, UTC).isoformat(),
        }
