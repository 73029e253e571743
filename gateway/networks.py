"""The one place where payment networks are registered.

For now each network contributes what a bill needs from it at issue time: the CVS slip (a
GS1-128 barcode from the cvs mapper) and the Pay-easy numbers. Links, file intake and
simulators register here as they are added.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from gateway import payeasy
from gateway.config import Config
from gateway.mappers.cvs import barcode
from gateway.model import Biller, Channel, PayEasyNumbers, Slip, Tax
from gateway.stamp import stamp_required


@dataclass(frozen=True)
class Issuer:
    """Derives every network identifier of a bill from its biller and serial."""

    config: Config
    randbelow: Callable[[int], int] = field(default=secrets.randbelow)

    def channel_limits(self) -> dict[Channel, int]:
        """The highest amount each enabled channel can carry."""
        limits: dict[Channel, int] = {}
        if self.config.cvs is not None:
            limits[Channel.CVS] = self.config.cvs.ceiling
        if self.config.mpn is not None:
            limits[Channel.PAYEASY] = self.config.mpn.max_amount
        if self.config.zengin is not None:
            limits[Channel.TRANSFER] = self.config.zengin.max_amount
        return limits

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
        cvs = self.config.cvs
        assert cvs is not None, "the cvs channel is off"
        stamp = stamp_required(
            amount=amount,
            taxable=tax.taxable,
            tax_amount=tax.tax_amount,
            thresholds=cvs.stamp_thresholds,
            on=today,
        )
        code = barcode.build(
            company_code=cvs.company_code,
            free_field=barcode.free_field_for(biller.code, serial),
            reissue=reissue,
            due=due_date,
            stamp=stamp,
            amount=amount,
            ceiling=cvs.ceiling,
        )
        return Slip(reissue, code.digits, amount, due_date, stamp)

    def payeasy_numbers(self, biller: Biller, serial: int) -> PayEasyNumbers:
        mpn = self.config.mpn
        assert mpn is not None, "the payeasy channel is off"
        return PayEasyNumbers(
            institution_code=biller.payeasy_institution_code or mpn.institution_code,
            customer_number=payeasy.customer_number(biller.code, serial),
            confirmation_number=payeasy.confirmation_number(
                self.randbelow, mpn.confirmation_digits
            ),
        )

    @staticmethod
    def human_readable(digits: str) -> str:
        return barcode.parse(digits, ceiling=barcode.MAX_AMOUNT).human_readable()
