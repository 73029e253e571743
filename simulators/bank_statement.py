"""The center's own bank, simulated: the statement of the center's collection account (全銀
入出金取引明細, 種別コード 03, gateway.mappers.bank_statement) with the money the simulated
networks remitted to it (docs/settlement.md, "Reconciliation").

Each network's simulator knows what it collected; these functions turn that into the deposits
its agency makes, on the day it makes them, less the fees it keeps (:class:`Fees`):

* :func:`cvs_remittances` — the CVS agency (:class:`simulators.cvs.Agency`): its confirmed
  payments, per 確報 振込予定日 (:func:`summary_remittances`: the same from the JSON summaries
  of ``python -m simulators.cvs``);
* :func:`mpn_remittances` — the MPN center (:class:`simulators.mpn.MpnCenter`): each business
  day's 消込 not cancelled, ``days`` bank business days after the day;
* :func:`transfer_remittances` — the bank of 口座振替 (:class:`simulators.zengin.SimulatedBank`):
  the debited amounts of each result file it sent, ``days`` bank days after the debit date.

:func:`delayed` makes one of them come a few bank business days late (an agency that remitted a
day late), and :func:`statement_file` writes them, with any extra deposit a test plants, as one
statement file (CRLF records; dates in 令和 by default), whole or not at all, into a folder.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from gateway.calendar import add_business_days
from gateway.mappers.bank_statement import WAREKI, build_zengin
from gateway.mappers.zengin.mapper import DEBITED, infer_debit_date, parse_file
from simulators.zengin import write_atomically

__all__ = [
    "CENTER_ACCOUNT",
    "Fees",
    "Remittance",
    "cvs_remittances",
    "delayed",
    "mpn_remittances",
    "statement_file",
    "summary_remittances",
    "transfer_remittances",
]

#: The simulated center's collection account: bank, name, branch, name, 預金種目, number.
CENTER_ACCOUNT = ("0005", "ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ", "135", "ﾏﾙﾉｳﾁ", "1", "7654321")


@dataclass(frozen=True)
class Fees:
    """What an agency keeps of a remittance: per item, per remittance, and the tax on them
    (rounded down), as ``[[reconciliation.remitters]]`` says."""

    per_item: int = 0
    per_remittance: int = 0
    tax_rate: int = 10

    def of(self, count: int) -> int:
        base = count * self.per_item + self.per_remittance
        return base + base * self.tax_rate // 100


@dataclass(frozen=True)
class Remittance:
    """One deposit into the center's account: its day, yen and 振込依頼人名."""

    day: date
    amount: int
    name: str


def _remit(by_day: dict[date, list[int]], name: str, fees: Fees) -> list[Remittance]:
    return [
        Remittance(day, sum(amounts) - fees.of(len(amounts)), name)
        for day, amounts in sorted(by_day.items())
        if amounts
    ]


def cvs_remittances(agency: Any, name: str, fees: Fees = Fees()) -> list[Remittance]:
    """What the simulated CVS agency remits: its confirmed payments, per transfer date."""
    by_day: dict[date, list[int]] = defaultdict(list)
    for payment in agency.payments.values():
        if payment.fate.value == "confirmed" and payment.transfer_date is not None:
            by_day[payment.transfer_date].append(payment.amount)
    return _remit(by_day, name, fees)


def summary_remittances(
    remitted: Iterable[Mapping[str, Mapping[str, int]]], name: str, fees: Fees = Fees()
) -> list[Remittance]:
    """What a CVS agency remits, from the ``remitted`` of its ``python -m simulators.cvs``
    summaries (per 振込予定日: ``count`` and ``gross``; several runs added up per day), less
    its fees once per day's remittance."""
    by_day: dict[date, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for summary in remitted:
        for day, got in summary.items():
            count, gross = by_day[date.fromisoformat(day)]
            by_day[date.fromisoformat(day)] = (count + got["count"], gross + got["gross"])
    return [
        Remittance(day, gross - fees.of(count), name)
        for day, (count, gross) in sorted(by_day.items())
        if count
    ]


def mpn_remittances(
    center: Any, name: str, *, days: int = 1, fees: Fees = Fees()
) -> list[Remittance]:
    """What the simulated MPN center remits: each business day's 消込 not cancelled, ``days``
    bank business days later."""
    by_day: dict[date, list[int]] = defaultdict(list)
    for triple, paid in center.paid.items():
        if paid.status != "voided":
            by_day[add_business_days(triple[1], days)].append(paid.payment.amount)
    return _remit(by_day, name, fees)


def transfer_remittances(
    results: Iterable[Path], name: str, *, on: date, days: int = 0, fees: Fees = Fees()
) -> list[Remittance]:
    """What the bank of 口座振替 credits: the debited amounts of each result file (the bank's
    ``sent/`` copies), ``days`` bank days after the debit date (MMDD read near ``on``)."""
    by_day: dict[date, list[int]] = defaultdict(list)
    for path in results:
        result = parse_file(Path(path).read_bytes(), source=Path(path).name)
        debit = infer_debit_date(result.header.debit_mmdd, on)
        for d in result.debits:
            if d.result_code == DEBITED:
                by_day[add_business_days(debit, days)].append(d.amount)
    return _remit(by_day, name, fees)


def delayed(
    remittances: Sequence[Remittance], name: str, day: date, *, days: int = 1
) -> list[Remittance]:
    """The same deposits, but ``name``'s of ``day`` comes ``days`` bank business days later."""
    late = [r for r in remittances if (r.name, r.day) == (name, day)]
    if not late:
        raise ValueError(f"no remittance of {name} on {day}")
    return [
        Remittance(add_business_days(r.day, days), r.amount, r.name) if r in late else r
        for r in remittances
    ]


def statement_file(
    folder: Path,
    name: str,
    remittances: Sequence[Remittance],
    *,
    first_day: date,
    last_day: date,
    created: date | None = None,
    account: tuple[str, str, str, str, str, str] = CENTER_ACCOUNT,
    account_name: str = "ｼﾕｳﾉｳｾﾝﾀ-",
    withdrawals: Sequence[Remittance] = (),
    years: str = WAREKI,
) -> Path:
    """Write the 入出金取引明細 of [first_day, last_day] with these deposits (and withdrawals)
    into ``folder/name`` atomically; its path."""
    data = build_zengin(
        account=account,
        account_name=account_name,
        first_day=first_day,
        last_day=last_day,
        created=created or last_day,
        deposits=[(r.day, r.amount, r.name) for r in remittances],
        withdrawals=[(r.day, r.amount, r.name) for r in withdrawals],
        years=years,
    )
    return write_atomically(Path(folder), name, data)
