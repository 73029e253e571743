"""What a payment network contributes to the gateway, as the registry
(gateway.networks.registry) and the composition root (gateway.app.service) see it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from twisted.application.service import IService

from gateway.config import Config
from gateway.ingest import BillFinder, Ingest
from gateway.model import Biller, BillTerms, Channel
from gateway.store import Store
from gateway.store.bills import Identifiers
from gateway.views import PaymentDescription


@dataclass(frozen=True)
class Wiring:
    """What the composition root hands a network it starts."""

    config: Config
    store: Store
    ingest: Ingest
    reactor: Any


@dataclass(frozen=True)
class Started:
    """A started network: its services (links, inboxes, jobs), in start order, and what it adds
    to /readyz beside the store (None: nothing)."""

    services: Sequence[IService]
    readiness: Callable[[], dict[str, Any]] | None = None


class Network(Protocol):
    """One payment network: its channel, its limits, how its payments read, how its incoming
    messages find their bills, and its services and readiness. Registered once in
    gateway.networks.registry; the registry is keyed by ``name``, and one registry holds at
    most one network per channel."""

    @property
    def name(self) -> str: ...

    @property
    def channel(self) -> Channel:
        """The channel its bills offer and its messages are recorded under."""
        ...

    @property
    def description(self) -> PaymentDescription:
        """How its payments read: the receipt's 支払方法 and 支払場所, and where the payment's
        JSON says it was made (gateway.views), from the ``store`` its messages record."""
        ...

    def enabled(self, config: Config) -> bool:
        """Whether the configuration turns this network on."""
        ...

    def limit(self, config: Config) -> int:
        """The highest amount it can carry (when enabled)."""
        ...

    def identify(
        self,
        config: Config,
        randbelow: Callable[[int], int],
        biller: Biller,
        serial: int,
        terms: BillTerms,
        today: date,
    ) -> Identifiers:
        """The identifiers it issues for a new bill that offers its channel (gateway.networks.
        issuer merges every network's)."""
        ...

    def finder(self, config: Config) -> BillFinder:
        """How an incoming canonical event of this network finds its bill (gateway.ingest)."""
        ...

    def start(self, wiring: Wiring) -> Started:
        """Its services and readiness, for the composition root (when enabled)."""
        ...
