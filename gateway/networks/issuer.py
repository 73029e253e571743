"""Every network identifier a bill gets at issue time: the CVS slip and the Pay-easy numbers."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from gateway.config import Config
from gateway.mappers.cvs import barcode
from gateway.mappers.cvs.stamp import stamp_required
from gateway.mappers.mpn import numbers as payeasy
from gateway.model import Biller, BillTerms, Channel, PayEasyNumbers, Slip, Tax
from gateway.store.bills import Identifiers


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
            customer_number=payeasy.customer_number(biller.code, serial, mpn.number_key),
            confirmation_number=payeasy.confirmation_number(
                self.randbelow, mpn.confirmation_digits
            ),
        )

    def identify(self, biller: Biller, serial: int, terms: BillTerms, today: date) -> Identifiers:
        """Every identifier a new bill gets from its channels: the CVS slip (first issue) and
        the Pay-easy numbers."""
        slip = payeasy_numbers = None
        if Channel.CVS in terms.channels:
            slip = self.slip(
                biller,
                serial,
                reissue=0,
                amount=terms.amount,
                due_date=terms.due_date,
                tax=terms.tax,
                today=today,
            )
        if Channel.PAYEASY in terms.channels:
            payeasy_numbers = self.payeasy_numbers(biller, serial)
        bill_key = None if slip is None else barcode.bill_key_of(slip.barcode)
        return Identifiers(slip, payeasy_numbers, bill_key)

    @staticmethod
    def human_readable(digits: str) -> str:
        return barcode.parse(digits, ceiling=barcode.MAX_AMOUNT).human_readable()
