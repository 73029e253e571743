"""The center's bank, simulated, for 総合振込 (payout transfers, 種別コード 21).

The gateway writes one payout file per transfer date into its payout outbox (``[payouts]
outbox``; a temporary name first, then a rename). The bank takes each complete file by renaming
it into ``WORK/payouts/received/``, so a file is taken once. For every data record it decides,
by seed, whether the transfer is paid (``0``) or returned with a 振込不能事由 (``1`` 口座なし,
``2`` 解約済, ``3`` 名義相違 …): the code forced for the record's 顧客コード (1 + 2) in
``overrides``, or else one drawn from the weighted ``mix`` by a :class:`random.Random` seeded
with the seed, the file name and the record number, so the same seed and file decide the same.
Returned transfers go back to the gateway as one 振込不能 file, ``RETURN_<payout file name>``
in the gateway's payout inbox (``[payouts] inbox``), written ``.NAME.tmp`` first and renamed.

The same file twice. A payout file whose name the bank has received before with the same bytes
is the same file sent again (a gateway that crashed between writing a file and recording it
writes it again): it goes to ``WORK/payouts/duplicates/`` and nothing is paid twice, as a real
bank's duplicate check does. A file of a known name with other bytes is a new file (paid).

The bank's own record. Every transfer decided is a line of ``WORK/payouts/ledger.jsonl``
(:class:`PayoutEntry`; the account masked to its last 3 digits): the file, record, transfer
date, 顧客コード, amount and result. :meth:`PayoutBank.record` reads them back; a test holds it
against the gateway's settlements, and the bank's statement (the 入出金取引明細 of the center's
account, a separate module) takes the paid transfers from it as debits: nothing here writes a
statement. One bank per work folder; the outbox and the work folder share a filesystem.

Synchronously (tests, the demo)::

    bank = PayoutBank(outbox, inbox, work, mix={"0": 95, "1": 5}, seed=1)
    bank.process_once()  # take the new payout files, pay or return, write the returns files

As a command (polling until stopped, ``--once`` or ``--until-files N``; a JSON summary)::

    python -m simulators.zengin_payouts --outbox var/outbox/payouts \\
        --inbox var/inbox/payouts --work var/bank --mix 0=95,1=3,3=2 --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time as wall
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import date
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from gateway.errors import FileErrors, RecordError
from gateway.mappers.zengin.payouts import (
    NETWORK,
    RETURN_CODE_CHARS,
    PayoutFile,
    build_payout_file,
    parse_payout_file,
)
from gateway.model import JST
from simulators._codes import CodeRules, free_name
from simulators._command import run_command
from simulators.zengin import is_request_name, mask_account, write_atomically

__all__ = [
    "DEFAULT_MIX",
    "PAID",
    "RETURN_PREFIX",
    "PayoutBank",
    "PayoutEntry",
    "main",
    "parse_mix",
]

log = Logger()

PAID = "0"  # the result of a transfer credited to the payee
DEFAULT_MIX: Mapping[str, int] = {"0": 97, "1": 1, "2": 1, "3": 1}
RETURN_PREFIX = "RETURN_"
_CODE_LENGTH = 20  # 顧客コード1 + 2


def _code_error(code: object) -> str | None:
    if not isinstance(code, str) or len(code) != 1 or code not in RETURN_CODE_CHARS:
        return f"{code!r} is not 0 (paid) or a 振込不能事由 (one character, 1-9 or A-Z)"
    return None


CODES = CodeRules(_code_error, "顧客コード", "0=95,1=5", _CODE_LENGTH)
check_codes = CODES.check
parse_mix = CODES.parse_mix


@dataclass(frozen=True)
class PayoutEntry:
    """One transfer the bank decided: a line of ``WORK/payouts/ledger.jsonl``."""

    file: str  # the payout file's name in WORK/payouts/received/
    record: int  # its record number (the header is record 1)
    requester_code: str  # 振込依頼人コード: the center
    transfer_date: str  # 取組日, ISO (the year from the day the bank took the file)
    customer_code: str  # 顧客コード1 + 2: the settlement, for the gateway
    amount: int  # 振込金額, yen
    result: str  # "0" paid, else the 振込不能事由
    bank_code: str  # 被仕向銀行
    branch_code: str
    account_type: str
    account: str  # 口座番号, masked: ****567

    @property
    def paid(self) -> bool:
        return self.result == PAID


_ENTRY_FIELDS = frozenset(f.name for f in fields(PayoutEntry))


class PayoutBank:
    """The bank's side of 総合振込 files, driven synchronously (see the module docstring)."""

    def __init__(
        self,
        outbox: Path,
        inbox: Path,
        work: Path,
        *,
        mix: Mapping[str, int] = DEFAULT_MIX,
        seed: int = 0,
        overrides: Mapping[str, str] | None = None,
        today: date | None = None,
    ) -> None:
        overrides = dict(overrides or {})
        check_codes(mix, overrides)
        self.outbox, self.inbox = Path(outbox), Path(inbox)
        self.work = Path(work) / "payouts"
        if self.outbox.resolve() == self.inbox.resolve():
            raise ValueError("inbox: must not be the outbox")
        self.received = self.work / "received"
        self.duplicates = self.work / "duplicates"
        self.rejected = self.work / "rejected"
        self.ledger = self.work / "ledger.jsonl"
        for folder in (self.outbox, self.inbox, self.received, self.duplicates, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)
        self._codes = sorted(mix)
        self._weights = [mix[c] for c in self._codes]
        self.seed, self.overrides = seed, overrides
        self._today = today
        self._entries = self._load_ledger()
        self.taken: list[Path] = []
        self.duplicated: list[Path] = []
        self.returns: list[Path] = []  # 振込不能 files written into the inbox
        self.refused: list[Path] = []

    def today(self) -> date:
        return self._today or wall_today()

    # --- taking files --------------------------------------------------------------------------

    def waiting(self) -> list[Path]:
        return sorted(p for p in self.outbox.iterdir() if p.is_file() and is_request_name(p.name))

    def take(self) -> list[Path]:
        """Move every waiting payout file into ``received/`` (a file the bank has had before,
        same name and bytes, into ``duplicates/`` instead); the paths of the new ones."""
        taken = []
        for path in self.waiting():
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            known = self.received / path.name
            if known.exists() and known.read_bytes() == data:
                target = free_name(self.duplicates, path.name)
                os.replace(path, target)
                self.duplicated.append(target)
                log.info("bank: {name} again, same bytes: not paid twice", name=path.name)
                continue
            target = free_name(self.received, path.name)
            try:
                os.replace(path, target)
            except FileNotFoundError:
                continue
            taken.append(target)
        self.taken += taken
        return taken

    # --- deciding ------------------------------------------------------------------------------

    def decide(self, file: str, record: int, customer_code: str) -> str:
        """``0`` (paid) or the 振込不能事由 of record ``record`` of ``file``."""
        forced = self.overrides.get(customer_code) or self.overrides.get(customer_code.strip())
        if forced is not None:
            return forced
        rng = random.Random(f"{self.seed}/{file}/{record}")
        return rng.choices(self._codes, self._weights)[0]

    def answer(self, path: Path) -> Path | None:
        """Pay or return every transfer of the received file ``path``: its ledger lines, and the
        returns file in the inbox (its path; None when everything was paid). A file that does
        not parse moves to ``rejected/`` with its report and :class:`FileErrors` is raised."""
        name = path.name
        try:
            payout = parse_payout_file(path.read_bytes(), source=name)
            if payout.is_returns:
                reason = "the bank takes payout files; this one carries 振込不能事由"
                raise FileErrors(name, [RecordError(NETWORK, 2, "return_code", "", reason)])
        except FileErrors as e:
            target = free_name(self.rejected, name)
            report = "\n".join([f"{name}: refused; nothing was paid", *map(str, e.errors)])
            write_atomically(self.rejected, target.name + ".report.txt", report.encode())
            os.replace(path, target)
            self.refused.append(target)
            raise
        transfer_date = payout.header.transfer_date(self.today())
        results = [
            self.decide(name, no, t.customer_code) for no, t in enumerate(payout.transfers, 2)
        ]
        entries = [
            PayoutEntry(
                file=name,
                record=no,
                requester_code=payout.header.requester_code,
                transfer_date=transfer_date.isoformat(),
                customer_code=t.customer_code,
                amount=t.amount,
                result=result,
                bank_code=t.bank_code,
                branch_code=t.branch_code,
                account_type=t.account_type,
                account=mask_account(t.account_number),
            )
            for no, (t, result) in enumerate(zip(payout.transfers, results, strict=True), 2)
        ]
        self._append_ledger(entries)
        returned = self.returns_file(payout, results)
        if returned is None:
            return None
        target = write_atomically(self.inbox, RETURN_PREFIX + name, returned)
        self.returns.append(target)
        return target

    @staticmethod
    def returns_file(payout: PayoutFile, results: Sequence[str]) -> bytes | None:
        """The 振込不能 file of ``payout``: its header, the returned transfers with their
        事由, the trailer of those; None when every transfer was paid."""
        back = [
            replace(t, return_code=r)
            for t, r in zip(payout.transfers, results, strict=True)
            if r != PAID
        ]
        return build_payout_file(payout.header, back) if back else None

    def process_once(self) -> list[Path]:
        """Take the new payout files and answer them; the returns files written."""
        out = []
        for path in self.take():
            try:
                found = self.answer(path)
            except FileErrors:
                continue
            if found is not None:
                out.append(found)
        return out

    # --- the bank's own record ----------------------------------------------------------------

    def _load_ledger(self) -> dict[tuple[str, int], PayoutEntry]:
        entries: dict[tuple[str, int], PayoutEntry] = {}
        if not self.ledger.exists():
            return entries
        for no, line in enumerate(self.ledger.read_text(encoding="utf-8").splitlines(), 1):
            values = json.loads(line)
            if not isinstance(values, dict) or set(values) != _ENTRY_FIELDS:
                raise ValueError(f"{self.ledger}:{no}: not the fields of a ledger entry")
            entry = PayoutEntry(**values)
            entries[(entry.file, entry.record)] = entry
        return entries

    def _append_ledger(self, entries: Iterable[PayoutEntry]) -> None:
        entries = list(entries)
        with open(self.ledger, "a", encoding="utf-8") as f:
            for e in entries:
                f.write(json.dumps(asdict(e), ensure_ascii=False, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for e in entries:
            self._entries[(e.file, e.record)] = e

    def record(self, file: str | None = None) -> list[PayoutEntry]:
        """Every transfer decided (of ``file`` if given), in the order decided."""
        return [e for e in self._entries.values() if file is None or e.file == file]

    def paid(self) -> list[PayoutEntry]:
        return [e for e in self.record() if e.paid]

    def returned(self) -> list[PayoutEntry]:
        return [e for e in self.record() if not e.paid]


def wall_today() -> date:
    from datetime import datetime

    return datetime.fromtimestamp(wall.time(), JST).date()


# --- the command ------------------------------------------------------------------------------


def summary(bank: PayoutBank) -> dict[str, Any]:
    entries = bank.record()
    return {
        "taken": len(bank.taken),
        "duplicates": len(bank.duplicated),
        "rejected": len(bank.refused),
        "returns_files": [p.name for p in bank.returns],
        "paid": {"count": len(bank.paid()), "total": sum(e.amount for e in bank.paid())},
        "returned": {
            "count": len(bank.returned()),
            "total": sum(e.amount for e in bank.returned()),
        },
        "transfers": len(entries),
        "seed": bank.seed,
        "ledger": str(bank.ledger),
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulators.zengin_payouts",
        description="The center's bank: take the gateway's payout files (総合振込, 種別コード 21)"
        ", pay or return each transfer by seed, write the 振込不能 files into its inbox.",
    )
    p.add_argument("--outbox", required=True, help="the gateway's payout outbox")
    p.add_argument("--inbox", required=True, help="the gateway's payout inbox (returns)")
    p.add_argument("--work", required=True, help="the bank's folder (payouts/ under it)")
    default_mix = ",".join(f"{c}={w}" for c, w in DEFAULT_MIX.items())
    p.add_argument("--mix", default=default_mix, help=f"CODE=WEIGHT,... (default {default_mix})")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="CODE20=RESULT",
        help="force the result of a 顧客コード (20 characters; repeatable)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between two polls")
    p.add_argument("--once", action="store_true", help="answer what is waiting, then exit")
    p.add_argument("--until-files", type=int, help="exit after taking N files")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        overrides = dict(item.partition("=")[::2] for item in args.override)
        bank = PayoutBank(
            Path(args.outbox),
            Path(args.inbox),
            Path(args.work),
            mix=parse_mix(args.mix),
            seed=args.seed,
            overrides=overrides,
        )
    except ValueError as e:
        print(f"simulators.zengin_payouts: {e}", file=sys.stderr)
        raise SystemExit(1) from None

    async def run(reactor: Any) -> dict[str, Any]:
        from twisted.internet.task import deferLater

        while True:
            bank.process_once()
            done = args.until_files and len(bank.taken) + len(bank.duplicated) >= args.until_files
            if args.once or done:
                return summary(bank)
            await deferLater(reactor, args.interval, lambda: None)

    def start(reactor: Any) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(run(reactor))

    run_command("simulators.zengin_payouts", start)


if __name__ == "__main__":
    main()
