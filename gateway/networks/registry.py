"""The one registry of payment networks: adding a network adds its module and one line here.

Importing this module installs :data:`REGISTRY`'s payment descriptions as the table
gateway.views reads when it is handed none (:func:`gateway.views.install_descriptions`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gateway.config import Config
from gateway.ingest import BillFinder
from gateway.model import Channel
from gateway.networks import cvs, mpn, zengin
from gateway.networks.base import Network
from gateway.views import Descriptions, install_descriptions


class Registry:
    """Networks by name, at most one per channel, in registration order."""

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self._networks: dict[str, Network] = {}
        for network in networks:
            self.register(network)

    def register(self, network: Network) -> None:
        if network.name in self._networks:
            raise ValueError(f"network {network.name!r} is registered already")
        taken = {n.channel: n.name for n in self._networks.values()}
        if network.channel in taken:
            raise ValueError(
                f"network {network.name!r}: channel {network.channel.value} is "
                f"{taken[network.channel]!r}'s"
            )
        self._networks[network.name] = network

    def __iter__(self) -> Iterator[Network]:
        return iter(list(self._networks.values()))

    def enabled(self, config: Config) -> list[Network]:
        return [n for n in self if n.enabled(config)]

    def finders(self, config: Config) -> list[BillFinder]:
        """How every registered network's messages find their bills (for gateway.ingest)."""
        return [n.finder(config) for n in self]

    def limits(self, config: Config) -> dict[Channel, int]:
        """The highest amount each enabled network's channel can carry."""
        return {n.channel: n.limit(config) for n in self.enabled(config)}

    def descriptions(self) -> Descriptions:
        """How each registered network's payments read, by its channel (enabled or not: a
        payment outlives its network's configuration)."""
        return {n.channel: n.description for n in self}


REGISTRY = Registry([cvs.CVS, mpn.MPN, zengin.ZENGIN])
install_descriptions(REGISTRY.descriptions())


def registry() -> Registry:
    """A copy of the registry, to register a network into without touching :data:`REGISTRY`."""
    return Registry(REGISTRY)
