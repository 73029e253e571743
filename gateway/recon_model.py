"""The networks' money reconciled (docs/settlement.md, "Reconciliation"): the values and the pure
rules that match the deposits of the center's bank statement to the remittances the ledger
expects.

Kernel values: the statement mapper (gateway.mappers.bank_statement) makes :class:`Deposit`
values, the store reads the ledger into :class:`Expected` remittances and keeps the items, and
:func:`reconcile` decides. Pure: plain values on dates and int yen, no clock, no I/O.

**Expected remittances.** Each network pays the center what it collected, per agency and
transfer date, less the fees its contract lets it keep:

* convenience stores: the confirmed payments of each CVS agency, by the 振込予定日 its 確報
  records carry;
* Pay-easy: the 消込 of each business day that its 閉局 confirmed (not cancelled), per
  収納機関番号, on the ``payeasy_days``-th bank business day after that day;
* account transfer: the debited results (振替結果コード 0) of each 委託者コード and debit date,
  on the ``transfer_days``-th bank business day after the debit date.

An agency's fees (:class:`Remitter`: per item, per remittance, and the consumption tax on them,
rounded down) are deducted from what it collected.

**Matching.** A deposit whose 振込依頼人名 is a configured remitter's belongs to that network and
agency: the deposits of one remitter on one day are added up and compared with its remittance
expected that day. A deposit of a name nobody configured is matched to the one remittance of its
day, still without a deposit, of exactly its amount. What is left becomes an item:

* ``difference``: a remittance that arrived with another amount, or from a configured remitter on
  a day nothing was expected (the amount is received − expected);
* ``missing``: a remittance expected on a day an imported statement covers, that did not arrive;
* ``unexpected``: a deposit that matches no remittance and no configured remitter.

**Late remittances.** A remittance that arrives a few bank business days after its transfer date
(a 閉局 remitted a day late, a holiday the agency counted differently) would show as ``missing``
on its day and as a surplus on the day it came. When the caller gives ``late_until`` (the last
day a remittance of a day may still arrive: ``[reconciliation] late_days`` bank business days
later), a missing remittance takes, from the days after it up to then and earliest first, the
deposits of its own remitter that are more than that day expected and of exactly its amount (all
of a day nothing was expected, or the one deposit whose removal leaves the day matched), or else
an unexpected deposit of exactly its amount. It is then ``late``: matched to the yen, with one
item of kind ``late`` that is resolved as it is made (nothing is owed; finance sees when it
came), and the day it came no longer shows a difference.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from gateway.model import Channel


class ItemKind(StrEnum):
    DIFFERENCE = "difference"  # a remittance arrived with another amount
    MISSING = "missing"  # a remittance expected on a covered day did not arrive
    UNEXPECTED = "unexpected"  # a deposit nobody expected
    LATE = "late"  # a remittance that came within [reconciliation] late_days (resolved as made)


NOTE_MAX = 300  # characters of the note finance resolves an item with


class ItemStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"  # by the operator (with a note), or by the money matching later


class RemittanceState(StrEnum):
    MATCHED = "matched"  # the deposits add up to the remittance, to the yen
    DIFFERENCE = "difference"
    MISSING = "missing"
    WAITING = "waiting"  # no imported statement covers its day yet
    LATE = "late"  # the deposits add up to the remittance, to the yen, but came on a later day


@dataclass(frozen=True)
class Remitter:
    """A network agency as it appears on the center's bank statement, with the fees it keeps
    (``[[reconciliation.remitters]]``)."""

    network: Channel
    agency: str  # cvs: the [[cvs.agencies]] id; payeasy: 収納機関番号; transfer: 委託者コード
    name: str  # 振込依頼人名 as the statement shows it
    fee_per_item: int = 0
    fee_per_remittance: int = 0
    fee_tax_rate: int = 10  # percent, rounded down per remittance

    def fees(self, count: int) -> int:
        """What the agency keeps of a remittance of ``count`` payments, tax included."""
        base = count * self.fee_per_item + self.fee_per_remittance
        return base + base * self.fee_tax_rate // 100


@dataclass(frozen=True)
class Collected:
    """What the ledger holds for one network, agency and transfer date: payments and yen."""

    network: Channel
    agency: str
    transfer_date: date
    count: int
    gross: int


@dataclass(frozen=True)
class Expected:
    """A remittance the center is owed: what was collected less the agency's fees."""

    network: Channel
    agency: str
    transfer_date: date
    count: int
    gross: int
    fees: int

    @property
    def amount(self) -> int:
        return self.gross - self.fees

    @property
    def key(self) -> tuple[str, str, date]:
        return (self.network.value, self.agency, self.transfer_date)


def expected_remittances(
    collected: Iterable[Collected], remitters: Sequence[Remitter]
) -> list[Expected]:
    """Each collection less the fees of its agency's remitter (none: no fee)."""
    by_agency = {(r.network, r.agency): r for r in remitters}
    out = []
    for c in collected:
        remitter = by_agency.get((c.network, c.agency))
        fees = remitter.fees(c.count) if remitter is not None else 0
        out.append(Expected(c.network, c.agency, c.transfer_date, c.count, c.gross, fees))
    return sorted(out, key=lambda e: (e.transfer_date, e.network.value, e.agency))


@dataclass(frozen=True)
class Deposit:
    """One 入金 of the center's account, as its statement gave it.

    ``rank``: how many deposits of the same day, amount and remitter came before it in the
    statement; with them it is the deposit's identity, so an overlapping statement (or the same
    day as a CSV export and as a Zengin file) adds nothing twice.
    """

    value_date: date  # 勘定日
    amount: int  # yen; negative for a 取消 of an earlier deposit (振込入金通知)
    remitter_name: str  # 振込依頼人名, as written
    line: int  # its line in the statement file
    rank: int = 0
    reference: str = ""  # 照会番号
    remitter_code: str = ""  # 振込依頼人コード
    deposit_id: int | None = None  # once stored

    @property
    def key(self) -> str:
        name = normalize_name(self.remitter_name)
        return f"{self.value_date:%Y%m%d}:{self.amount}:{name}:{self.rank}"


@dataclass(frozen=True)
class Statement:
    """A bank statement file as read: the account it is of (None for a CSV export, which does
    not say), the days it covers, its deposits, and how many withdrawals it had (not kept)."""

    format: str  # "zengin-03" 入出金取引明細, "zengin-01" 振込入金通知, "csv"
    account: str | None  # "BANK-BRANCH-TYPE-NUMBER"
    first_day: date
    last_day: date
    deposits: tuple[Deposit, ...]
    withdrawals: int = 0


def normalize_name(name: str) -> str:
    """A 振込依頼人名 compared without width, case, spaces or small kana: ``ｶ)ｺﾝﾋﾞﾆ`` and
    ``カ）コンビニ`` are the same remitter."""
    text = unicodedata.normalize("NFKC", name).upper()
    small = str.maketrans("ァィゥェォャュョッヮヵヶ", "アイウエオヤユヨツワカケ")
    text = text.translate(small)
    return "".join(ch for ch in text if not ch.isspace())


def ranked(deposits: Iterable[Deposit]) -> list[Deposit]:
    """The deposits with their ranks among the same day, amount and remitter, in file order."""
    seen: dict[tuple[date, int, str], int] = defaultdict(int)
    out = []
    for d in deposits:
        key = (d.value_date, d.amount, normalize_name(d.remitter_name))
        out.append(
            Deposit(
                d.value_date,
                d.amount,
                d.remitter_name,
                d.line,
                seen[key],
                d.reference,
                d.remitter_code,
                d.deposit_id,
            )
        )
        seen[key] += 1
    return out


# --- matching ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Remittance:
    """One expected remittance (or a configured remitter's deposits on a day nothing was
    expected: ``expected`` 0) and what arrived for it."""

    network: Channel
    agency: str
    transfer_date: date
    count: int
    gross: int
    fees: int
    expected: int
    received: int
    deposit_ids: tuple[int, ...]
    state: RemittanceState
    received_on: date | None = None  # a late one: the day its deposits came

    @property
    def difference(self) -> int:
        return self.received - self.expected


@dataclass(frozen=True)
class WantedItem:
    """An item the money calls for now: ``key`` is its identity across runs."""

    kind: ItemKind
    key: str
    network: Channel | None
    agency: str | None
    transfer_date: date
    expected: int
    received: int
    deposit_id: int | None = None
    resolution: str | None = None  # an item resolved as it is made (``late``): why

    @property
    def amount(self) -> int:
        return self.received - self.expected


@dataclass(frozen=True)
class Reconciliation:
    remittances: tuple[Remittance, ...]
    unexpected: tuple[Deposit, ...]
    items: tuple[WantedItem, ...]

    @property
    def open_items(self) -> tuple[WantedItem, ...]:
        """The items finance must look at (a ``late`` one is resolved as it is made)."""
        return tuple(i for i in self.items if i.resolution is None)

    def of_days(self, first: date, last: date) -> Reconciliation:
        """What concerns the transfer dates [first, last] (deposits: by their day)."""
        return Reconciliation(
            tuple(r for r in self.remittances if first <= r.transfer_date <= last),
            tuple(d for d in self.unexpected if first <= d.value_date <= last),
            tuple(i for i in self.items if first <= i.transfer_date <= last),
        )


def covered(day: date, coverage: Sequence[tuple[date, date]]) -> bool:
    return any(first <= day <= last for first, last in coverage)


def reconcile(
    expected: Sequence[Expected],
    deposits: Sequence[Deposit],
    remitters: Sequence[Remitter],
    coverage: Sequence[tuple[date, date]],
    late_until: Callable[[date], date] | None = None,
) -> Reconciliation:
    """Match ``deposits`` (stored: with ids) to ``expected`` remittances (see the module
    docstring). ``coverage``: the days the imported statements cover; a remittance of another
    day is ``waiting``, not missing. ``late_until``: the last day a remittance of a transfer
    date may arrive late (None: a remittance is on its day or missing)."""
    names = {normalize_name(r.name): (r.network, r.agency) for r in remitters}
    named: dict[tuple[str, str, date], list[Deposit]] = defaultdict(list)
    anonymous: list[Deposit] = []
    for d in deposits:
        who = names.get(normalize_name(d.remitter_name))
        if who is None:
            anonymous.append(d)
        else:
            named[(who[0].value, who[1], d.value_date)].append(d)
    rows: dict[tuple[str, str, date], Remittance] = {}
    for e in expected:
        got = named.pop(e.key, [])
        rows[e.key] = _row(e, got, coverage)
    for (network, agency, day), got in named.items():  # a configured remitter, nothing expected
        zero = Expected(Channel(network), agency, day, 0, 0, 0)
        rows[(network, agency, day)] = _row(zero, got, coverage)
    unexpected: list[Deposit] = []
    for d in anonymous:
        candidates = [
            key
            for key, row in rows.items()
            if row.transfer_date == d.value_date
            and not row.deposit_ids
            and row.expected == d.amount
            and row.expected > 0
        ]
        if candidates:
            key = sorted(candidates)[0]
            rows[key] = _row(_expected_of(rows[key]), [d], coverage)
        else:
            unexpected.append(d)
    if late_until is not None:
        unexpected = _match_late(rows, unexpected, deposits, coverage, late_until)
    items: list[WantedItem] = []
    for row in sorted(rows.values(), key=lambda r: (r.transfer_date, r.network.value, r.agency)):
        if row.state is RemittanceState.LATE:
            items.append(
                WantedItem(
                    ItemKind.LATE,
                    f"remittance:{row.network.value}:{row.agency}:{row.transfer_date}",
                    row.network,
                    row.agency,
                    row.transfer_date,
                    row.expected,
                    row.received,
                    min(row.deposit_ids) if row.deposit_ids else None,
                    f"late: came on {row.received_on}, expected on {row.transfer_date}",
                )
            )
        elif row.state in (RemittanceState.DIFFERENCE, RemittanceState.MISSING):
            kind = ItemKind.MISSING if row.state is RemittanceState.MISSING else ItemKind.DIFFERENCE
            items.append(
                WantedItem(
                    kind,
                    f"remittance:{row.network.value}:{row.agency}:{row.transfer_date}",
                    row.network,
                    row.agency,
                    row.transfer_date,
                    row.expected,
                    row.received,
                )
            )
    for d in unexpected:
        assert d.deposit_id is not None, "reconcile stored deposits"
        items.append(
            WantedItem(
                ItemKind.UNEXPECTED,
                f"deposit:{d.deposit_id}",
                None,
                None,
                d.value_date,
                0,
                d.amount,
                d.deposit_id,
            )
        )
    return Reconciliation(
        tuple(sorted(rows.values(), key=lambda r: (r.transfer_date, r.network.value, r.agency))),
        tuple(unexpected),
        tuple(items),
    )


def _match_late(
    rows: dict[tuple[str, str, date], Remittance],
    unexpected: list[Deposit],
    deposits: Sequence[Deposit],
    coverage: Sequence[tuple[date, date]],
    late_until: Callable[[date], date],
) -> list[Deposit]:
    """Give each missing remittance, earliest first, the deposits that came late for it (see
    the module docstring); ``rows`` is changed in place, the deposits still unexpected are
    returned."""
    by_id = {d.deposit_id: d for d in deposits if d.deposit_id is not None}
    left = list(unexpected)
    order = sorted(rows, key=lambda k: (k[2], k[0], k[1]))
    for key in order:
        row = rows.get(key)  # None: a day whose deposits paid an earlier day
        if row is None or row.state is not RemittanceState.MISSING:
            continue
        until = late_until(row.transfer_date)
        taken: list[Deposit] = []
        for other_key in order:
            other = rows.get(other_key)
            if (
                other is None
                or other_key[:2] != key[:2]
                or not row.transfer_date < other.transfer_date <= until
                or other.state is not RemittanceState.DIFFERENCE
            ):
                continue
            got = [by_id[i] for i in other.deposit_ids]
            if other.expected == 0 and other.received == row.expected:
                taken = got
            else:
                taken = [
                    d
                    for d in got
                    if d.amount == row.expected and other.received - d.amount == other.expected
                ][:1]
            if taken:
                rest = [d for d in got if d not in taken]
                if rest or other.expected:
                    rows[other_key] = _row(_expected_of(other), rest, coverage)
                else:
                    del rows[other_key]
                break
        if not taken:
            taken = [
                d
                for d in left
                if row.transfer_date < d.value_date <= until and d.amount == row.expected
            ][:1]
            left = [d for d in left if d not in taken]
        if taken:
            came = _row(_expected_of(row), taken, coverage)
            rows[key] = replace(
                came, state=RemittanceState.LATE, received_on=max(d.value_date for d in taken)
            )
    return left


def _expected_of(row: Remittance) -> Expected:
    return Expected(row.network, row.agency, row.transfer_date, row.count, row.gross, row.fees)


def _row(e: Expected, got: Sequence[Deposit], coverage: Sequence[tuple[date, date]]) -> Remittance:
    received = sum(d.amount for d in got)
    if got:
        state = RemittanceState.MATCHED if received == e.amount else RemittanceState.DIFFERENCE
    elif e.amount == 0:
        state = RemittanceState.MATCHED  # nothing owed (every payment's fee ate it), nothing came
    elif covered(e.transfer_date, coverage):
        state = RemittanceState.MISSING
    else:
        state = RemittanceState.WAITING
    return Remittance(
        e.network,
        e.agency,
        e.transfer_date,
        e.count,
        e.gross,
        e.fees,
        e.amount,
        received,
        tuple(d.deposit_id for d in got if d.deposit_id is not None),
        state,
    )


# --- what is stored and shown -----------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A reconciliation item as stored: what finance must look at, with its amounts."""

    item_id: str
    kind: ItemKind
    network: Channel | None
    agency: str | None
    transfer_date: date
    expected: int
    received: int
    deposit_id: int | None
    status: ItemStatus
    opened_at: datetime
    resolved_at: datetime | None = None
    resolution: str | None = None  # "matched" (the money matched later) or the operator's note

    @property
    def amount(self) -> int:
        return self.received - self.expected


@dataclass(frozen=True)
class StoredStatement:
    statement_id: int
    file_name: str
    format: str
    account: str | None
    first_day: date
    last_day: date
    deposits: int
    new_deposits: int
    imported_at: datetime
