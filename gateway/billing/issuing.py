"""What the bill use cases ask of the payment networks: the seam between billing and networks.

Billing imports no network. The composition root (gateway.app.service) hands the bill services
an object with these methods: :class:`gateway.networks.issuer.Issuer`, which asks each network
of the registry for what it issues.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Protocol

from gateway.errors import FieldError
from gateway.model import Biller, BillTerms, Channel, Slip, Tax
from gateway.store.bills import Identifiers


class BillIssuer(Protocol):
    def channel_limits(self) -> Mapping[Channel, int]:
        """The highest amount each enabled channel can carry (a channel not in it is off)."""
        ...

    def refusals(self, biller: Biller, terms: BillTerms) -> list[FieldError]:
        """Why the networks would not carry these terms for this biller under its contracts
        (e.g. its CVS agency's ceiling, or a bill without a deadline its agency does not take);
        empty when they would."""
        ...

    def identify(self, biller: Biller, serial: int, terms: BillTerms, today: date) -> Identifiers:
        """Every identifier a new bill gets from the networks of its channels."""
        ...

    def slip(
        self,
        biller: Biller,
        serial: int,
        *,
        reissue: int,
        amount: int,
        due_date: date | None,
        tax: Tax,
        today: date,
    ) -> Slip:
        """A CVS slip for a reissue of bill ``serial`` (the cvs channel is on)."""
        ...

    def human_readable(self, digits: str) -> str:
        """A CVS barcode's digits as printed under it."""
        ...
