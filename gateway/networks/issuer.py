"""Every network identifier a bill gets at issue time, from the networks of the registry."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from gateway.config import Config
from gateway.errors import FieldError
from gateway.mappers.cvs import barcode
from gateway.model import Biller, BillTerms, Channel, PayEasyNumbers, Slip, Tax
from gateway.networks import cvs, mpn
from gateway.networks.registry import REGISTRY
from gateway.store.bills import Identifiers


@dataclass(frozen=True)
class Issuer:
    """Derives every network identifier of a bill from its biller and serial."""

    config: Config
    randbelow: Callable[[int], int] = field(default=secrets.randbelow)

    def channel_limits(self) -> dict[Channel, int]:
        """The highest amount each enabled channel can carry (its network's, in the registry)."""
        return REGISTRY.limits(self.config)

    def refusals(self, biller: Biller, terms: BillTerms) -> list[FieldError]:
        """The CVS agency's terms for this biller: its ceiling, and whether it takes a slip
        without a deadline (the other networks' limits are the same for every biller)."""
        if Channel.CVS not in terms.channels or self.config.cvs is None:
            return []
        try:
            agency = self.config.cvs.agency(biller.cvs_agency)
        except KeyError:
            return [FieldError("channels", f"cvs: agency {biller.cvs_agency} is not configured")]
        found = []
        if terms.amount > agency.ceiling:
            found.append(
                FieldError(
                    "amount", f"must not exceed {agency.ceiling} yen on agency {agency.id}'s slips"
                )
            )
        if terms.due_date is None and not agency.no_deadline:
            found.append(
                FieldError(
                    "due_date", f"is required: agency {agency.id} takes no slip without a deadline"
                )
            )
        return found

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
        """A CVS slip (a reissue's too): gateway.networks.cvs.slip."""
        assert self.config.cvs is not None, "the cvs channel is off"
        return cvs.slip(
            self.config.cvs.agency(biller.cvs_agency),
            biller,
            serial,
            reissue=reissue,
            amount=amount,
            due_date=due_date,
            tax=tax,
            today=today,
        )

    def payeasy_numbers(self, biller: Biller, serial: int) -> PayEasyNumbers:
        """A bill's Pay-easy numbers: gateway.networks.mpn.payeasy_numbers."""
        assert self.config.mpn is not None, "the payeasy channel is off"
        return mpn.payeasy_numbers(self.config.mpn, self.randbelow, biller, serial)

    def identify(self, biller: Biller, serial: int, terms: BillTerms, today: date) -> Identifiers:
        """Every identifier a new bill gets from its channels' networks (for CVS, the first
        slip; for Pay-easy, the numbers), in registry order."""
        slip = payeasy_numbers = bill_key = None
        for network in REGISTRY:
            if network.channel in terms.channels:
                issued = network.identify(self.config, self.randbelow, biller, serial, terms, today)
                slip = issued.slip or slip
                payeasy_numbers = issued.payeasy or payeasy_numbers
                bill_key = issued.cvs_bill_key or bill_key
        return Identifiers(slip, payeasy_numbers, bill_key)

    @staticmethod
    def human_readable(digits: str) -> str:
        barcode.parse(digits, ceiling=barcode.MAX_AMOUNT)  # refuses what is no barcode (memoized)
        return barcode.human_readable(digits)
