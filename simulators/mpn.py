"""The MPN center and the banks behind it, simulated (spec/mpn.md): bank customers look their
bills up (照会) and pay them (消込); some answers are lost on the way to the bank (再送確認 under
the original triple), some payments are cancelled (取消), some customers first mistype the
確認番号, some pay a bill twice from another bank.

Everything random comes from the :class:`MpnScenario`'s seed. :class:`MpnCenter` checks every
answer of the gateway against what the spec says it must be (:attr:`MpnCenter.mismatches`) and
keeps its own ledger (:meth:`MpnCenter.expected`) and the 閉局 figures drawn from it.

As a command (``python -m simulators.mpn --help``) it listens for the gateway, waits for its
開局, reads open bills with Pay-easy numbers from the merchant API, drives them and prints a
JSON summary.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.task import deferLater

from gateway.mappers.mpn.mapper import (
    Body,
    Cancel,
    Close,
    Inquiry,
    InquiryAnswer,
    Key,
    Message,
    PaymentChannel,
    PaymentNotice,
    ResendCheck,
)
from gateway.model import JST
from simulators._command import run_command
from simulators.mpn_link import MpnCenterFactory

__all__ = [
    "BANKS",
    "ExpectedPayment",
    "MpnCenter",
    "MpnExpected",
    "MpnScenario",
    "api_rows",
    "main",
]

BANKS = ("0001", "0005", "0009", "0010", "0017", "0033", "0036")
Triple = tuple[str, date, str]


@dataclass(frozen=True)
class MpnScenario:
    """What the banks' customers do; every decision follows ``seed`` and the bill."""

    seed: int = 0
    drop_probability: float = 0.1  # the 消込's answer never reaches the bank: 再送確認
    cancel_probability: float = 0.1  # the bank cancels the 消込 (取消)
    wrong_probability: float = 0.1  # a mistyped 確認番号 before the right one
    double_probability: float = 0.1  # paid again from another bank (after a 1002 照会)
    banks: tuple[str, ...] = BANKS

    def __post_init__(self) -> None:
        for name in ("drop", "cancel", "wrong", "double"):
            if not 0.0 <= getattr(self, f"{name}_probability") <= 1.0:
                raise ValueError(f"{name}_probability must be between 0 and 1")
        if not self.banks or any(len(b) != 4 or not b.isdigit() for b in self.banks):
            raise ValueError("banks must be 4-digit bank codes, at least one")

    def chance(self, what: str, key: str) -> float:
        """A reproducible number in [0, 1) for a decision about ``key``, from the seed alone."""
        return random.Random(f"{self.seed}/{what}/{key}").random()

    def decides(self, what: str, key: str) -> bool:
        return self.chance(what, key) < float(getattr(self, f"{what}_probability"))

    def bank(self, key: str, n: int = 0) -> str:
        """The ``n``-th bank of a bill: the second payment of a double is another bank."""
        first = int(self.chance("bank", key) * len(self.banks))
        return self.banks[(first + n) % len(self.banks)]

    def channel(self, key: str) -> PaymentChannel:
        return list(PaymentChannel)[int(self.chance("channel", key) * len(PaymentChannel))]


class ExpectedPayment(NamedTuple):
    bill_no: str
    status: str  # pending, voided
    amount: int
    paid_at: datetime
    bank: str  # "{bank code}-{channel}", as GET /v1/payments shows it


@dataclass(frozen=True)
class MpnExpected:
    """The center's ledger: each 消込 by triple, and the bills it paid twice (bill_no)."""

    payments: Mapping[Triple, ExpectedPayment]
    double_paid_bills: frozenset[str]

    def api_rows(self) -> list[tuple[str, str, str, int, str]]:
        """(bill_no, paid_at, bank, amount, status), sorted: what :func:`api_rows` reads."""
        return sorted(
            (p.bill_no, p.paid_at.isoformat(timespec="seconds"), p.bank, p.amount, p.status)
            for p in self.payments.values()
        )


_CHANNEL_DIGITS = {"atm": "1", "internet": "2", "mobile": "3"}


def _bank(payment: Mapping[str, Any]) -> str:
    """The API's bank object as the center writes it: bank code - channel digit."""
    return f"{payment['bank']['bank_code']}-{_CHANNEL_DIGITS[payment['bank']['channel']]}"


def api_rows(data: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str, int, str]]:
    """The Pay-easy payments of ``GET /v1/payments`` ``data``, shaped as
    :meth:`MpnExpected.api_rows`."""
    return sorted(
        (
            p["bill_no"],
            p["paid_at"],
            _bank(p),
            p["amount"],
            p["status"],
        )
        for p in data
        if p.get("channel") == "payeasy"
    )


def bill_key(bill: Mapping[str, Any]) -> Key:
    pe = bill["payeasy"]
    return Key(pe["institution_code"], pe["customer_number"], pe["confirmation_number"])


def wrong_number(right: str) -> str:
    """Another 確認番号 of the same length (one digit changed)."""
    return right[:-1] + str((int(right[-1]) + 1) % 10)


@dataclass
class _Paid:
    triple: Triple
    bill_no: str
    payment: PaymentNotice
    status: str = "pending"


@dataclass
class MpnCenter:
    """Drives bills through a :class:`MpnCenterFactory` (``factory.clock`` is the clock)."""

    factory: MpnCenterFactory
    scenario: MpnScenario = field(default_factory=MpnScenario)
    mismatches: list[str] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)  # "1100:0000" -> count
    paid: dict[Triple, _Paid] = field(default_factory=dict)
    double_paid: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.factory.close_figures = self.close_figures

    # -- the ledger ----------------------------------------------------------------------------

    def expected(self) -> MpnExpected:
        return MpnExpected(
            {
                t: ExpectedPayment(
                    p.bill_no,
                    p.status,
                    p.payment.amount,
                    p.payment.paid_at,
                    f"{p.payment.bank_code}-{p.payment.channel.value}",
                )
                for t, p in self.paid.items()
            },
            frozenset(self.double_paid),
        )

    def figures(self, day: date) -> tuple[int, int, int, int]:
        """(消込 count, sum, 取消 count, sum) of a business day, from the center's ledger."""
        day_paid = [p for t, p in self.paid.items() if t[1] == day]
        voided = [p for p in day_paid if p.status == "voided"]
        return (
            len(day_paid),
            sum(p.payment.amount for p in day_paid),
            len(voided),
            sum(p.payment.amount for p in voided),
        )

    def close_figures(self, ours: Close) -> Close:
        return Close(ours.business_date, *self.figures(ours.business_date))

    # -- driving -------------------------------------------------------------------------------

    def run(self, bills: Sequence[Mapping[str, Any]], rate: float = 0.0) -> Deferred[None]:
        """Start one bill every ``1 / rate`` seconds of the clock (0: all at once); fires when
        every bill is done. Failures (a timeout, the link down) are recorded as mismatches."""
        runs: list[Deferred[None]] = []
        for n, bill in enumerate(bills):
            delay = n / rate if rate > 0 else 0.0
            runs.append(Deferred.fromCoroutine(self._later(delay, bill)))
        done = gatherResults(runs, consumeErrors=True)
        return done.addCallback(lambda _: None)

    async def _later(self, delay: float, bill: Mapping[str, Any]) -> None:
        await deferLater(self.factory.clock, delay)
        await self._bill(bill)

    async def _ask(
        self, what: str, type_: str, body: Body, want: str, triple: Triple | None = None
    ) -> Message | None:
        try:
            answer = await self.factory.request(type_, body, triple=triple)
        except Exception as e:
            self.mismatches.append(f"{what}: {type_} failed: {type(e).__name__}: {e}")
            return None
        code = answer.header.response_code
        tag = f"{type_}:{code}"
        self.answers[tag] = self.answers.get(tag, 0) + 1
        if code != want:
            self.mismatches.append(f"{what}: {type_} answered {code}, expected {want}")
        return answer

    def _paid_at(self) -> datetime:
        return datetime.fromtimestamp(int(self.factory.clock.seconds()), JST)

    async def _pay(self, bill: Mapping[str, Any], amount: int, n: int) -> _Paid | None:
        key, bill_no = bill_key(bill), str(bill["bill_no"])
        name = key.customer_number
        payment = PaymentNotice(
            key,
            amount,
            self._paid_at(),
            self.scenario.bank(name, n),
            self.scenario.channel(f"{name}/{n}"),
        )
        answer = await self._ask(bill_no, "1200", payment, "0000")
        if answer is None or answer.header.response_code != "0000":
            return None
        paid = _Paid(answer.header.triple, bill_no, payment)
        self.paid[paid.triple] = paid
        return paid

    async def _bill(self, bill: Mapping[str, Any]) -> None:
        s, key, bill_no = self.scenario, bill_key(bill), str(bill["bill_no"])
        name = key.customer_number
        if s.decides("wrong", name):
            wrong = Key(key.institution_code, name, wrong_number(key.confirmation_number))
            await self._ask(bill_no, "1100", Inquiry(wrong), "1001")
        answer = await self._ask(bill_no, "1100", Inquiry(key), "0000")
        amount = int(bill["amount"])
        if answer is not None and isinstance(answer.body, InquiryAnswer):
            got = answer.body
            if answer.header.response_code == "0000" and (
                got.amount != amount or str(got.due_date) != str(bill.get("due_date"))
            ):
                self.mismatches.append(f"{bill_no}: 照会 gave {got.amount} due {got.due_date}")
            amount = got.amount or amount
        paid = await self._pay(bill, amount, 0)
        if paid is None:
            return
        if s.decides("drop", name):  # the bank never saw the 0000: ask again, same triple
            await self._ask(bill_no, "1400", ResendCheck(paid.payment), "0000", paid.triple)
        await self._ask(bill_no, "1100", Inquiry(key), "1002")
        if s.decides("cancel", name):
            cancel = Cancel(*paid.triple, key, paid.payment.amount)
            done = await self._ask(bill_no, "1300", cancel, "0000")
            if done is not None and done.header.response_code == "0000":
                paid.status = "voided"
                await self._ask(bill_no, "1100", Inquiry(key), "0000")  # reopened
        elif (
            s.decides("double", name)  # paid at another bank all the same
            and await self._pay(bill, paid.payment.amount, 1) is not None
        ):
            self.double_paid.add(bill_no)


# --- the command ------------------------------------------------------------------------------


async def _open_bills(reactor: Any, api: str, key: str, limit: int) -> list[dict[str, Any]]:
    from simulators.cvs import _json

    bills: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(bills) < limit:
        url = f"{api}/v1/bills?status=open&limit=100" + (f"&cursor={cursor}" if cursor else "")
        page = await _json(reactor, "GET", url, key)
        bills += [b for b in page["data"] if b.get("payeasy")]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return bills[:limit]


async def run(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The command's work; returns its summary."""
    from gateway.infra.tls import TLSFiles
    from simulators.mpn_link import listen_mpn_center

    tls_dir = Path(args.tls_dir)
    tls = TLSFiles(tls_dir / "ca.pem", tls_dir / "mpn-center.pem", tls_dir / "mpn-center.key")
    factory = MpnCenterFactory(
        reactor,
        center_code=args.center_code,
        deadline=args.deadline,
        first_serial=args.first_serial,
    )
    center = MpnCenter(factory, MpnScenario(seed=args.seed))
    port = await listen_mpn_center(reactor, args.listen, tls, factory=factory)
    try:
        await factory.opened.addTimeout(args.timeout, reactor)
        bills = await _open_bills(reactor, args.api.rstrip("/"), args.key, args.bills)
        await center.run(bills, args.rate)
    finally:
        await maybeDeferred(port.stopListening)
    expected = center.expected()
    day = factory.gateway_business_date or factory.clock_date()
    return {
        "bills": len(bills),
        "payments": len(expected.payments),
        "voided": sum(p.status == "voided" for p in expected.payments.values()),
        "double_paid": sorted(expected.double_paid_bills),
        "answers": dict(sorted(center.answers.items())),
        "close_figures": list(center.figures(day)),
        "mismatches": center.mismatches,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulators.mpn",
        description="The MPN center: wait for the gateway's 開局, look up and pay open bills "
        "with Pay-easy numbers, check every answer, print a JSON summary.",
    )
    p.add_argument("--listen", required=True, help="e.g. tcp:7300:interface=127.0.0.1")
    p.add_argument("--tls-dir", required=True, help="ca.pem, mpn-center.pem, mpn-center.key")
    p.add_argument("--api", required=True, help="the merchant API, e.g. http://127.0.0.1:8080")
    p.add_argument("--key", required=True, help="a biller's API key")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bills", type=int, default=10, help="how many open bills to drive")
    p.add_argument("--rate", type=float, default=5.0, help="bills started per second (0: all)")
    p.add_argument("--center-code", default="0002", help="the center's 仕向センタコード")
    p.add_argument(
        "--first-serial",
        type=int,
        default=1,
        help="the first 仕向処理通番: a center never reuses one within a business day",
    )
    p.add_argument("--deadline", type=float, default=5.0, help="seconds to wait for an answer")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for 開局")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    run_command(
        "simulators.mpn",
        lambda reactor: run(reactor, args),
        lambda summary: bool(summary["mismatches"]),
    )


if __name__ == "__main__":
    main()
