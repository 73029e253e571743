"""The bank of 口座振替 (account transfer), simulated (spec/zengin.md, 種別コード 91).

The gateway writes request files into its outbox (under a temporary name, then renamed). The
bank takes each complete one by renaming it into its own work folder (``WORK/received/``), so a
file is taken exactly once, even across restarts. For every data record it decides a
振替結果コード: the code forced for the 顧客番号 in ``overrides``, or else one drawn from the
weighted ``mix`` by a :class:`random.Random` seeded with the seed, the file and the record, so the
same seed and file give the same codes in any order and after a restart. After ``delay`` seconds
it writes the result file (the same header and data records with their codes, the result
trailer) into the gateway's inbox as ``RESULT_<request name>``: ``.NAME.tmp`` first, fsync, then
a rename, so the gateway never sees half a file. A request that does not parse goes to
``WORK/rejected/`` with ``NAME.report.txt`` listing every error; nothing reaches the inbox.

The bank keeps its own record of every debit it decided in ``WORK/ledger.jsonl`` (accounts
masked to their last 3 digits; :meth:`SimulatedBank.record`, :meth:`SimulatedBank.totals`) for a
test to hold against what the gateway stored, and a copy of each result file it sent in
``WORK/sent/``. A received file without its copy in ``sent/`` is answered (again) after a
restart: the same codes, the same bytes, its ledger lines not counted twice. One bank per work
folder; the outbox and the work folder must be on one filesystem (a file is taken by renaming).

Synchronously (tests, the demo)::

    bank = SimulatedBank(outbox, inbox, work, mix={"0": 90, "1": 10}, seed=1)
    bank.process_once()  # take what is waiting, answer what is due: the result files

As a command, polling the outbox until stopped (or ``--once``, or ``--until-files N``), then
printing a one-line JSON summary::

    python -m simulators.zengin --outbox var/outbox/zengin --inbox var/inbox/zengin \\
        --work var/bank --mix 0=90,1=5,2=2,3=1,4=1,9=1 --seed 1 --delay 2 --interval 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time as wall
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from gateway.errors import FileErrors, RecordError
from gateway.mappers.zengin.mapper import DEBITED, Debit, build_file, parse_file
from gateway.mappers.zengin.records import NETWORK, RESULT_CODE_CHARS
from simulators._codes import CodeRules, free_name
from simulators._command import run_command

__all__ = [
    "DEFAULT_MIX",
    "RESULT_PREFIX",
    "LedgerEntry",
    "SimulatedBank",
    "Totals",
    "check_codes",
    "is_request_name",
    "main",
    "mask_account",
    "parse_mix",
    "parse_overrides",
    "serve",
    "write_atomically",
]

log = Logger()

#: 振替結果コード → weight: mostly debited, a few of each failure.
DEFAULT_MIX: Mapping[str, int] = {"0": 90, "1": 5, "2": 2, "3": 1, "4": 1, "9": 1}
RESULT_PREFIX = "RESULT_"
_SKIPPED_SUFFIXES = (".tmp", ".part", ".report.txt")
_CUSTOMER_LENGTH = 20  # 顧客番号: 20 characters


def is_request_name(name: str) -> bool:
    """Whether the bank takes a file of this name: not hidden, not a temporary or a report."""
    return not name.startswith(".") and not name.endswith(_SKIPPED_SUFFIXES)


def mask_account(number: str) -> str:
    """An account number as the bank records and logs it: ``****567``."""
    return "****" + number[-3:]


def _code_error(code: object) -> str | None:
    if not isinstance(code, str) or len(code) != 1 or code not in RESULT_CODE_CHARS:
        return f"{code!r} is not a 振替結果コード (one character, 0-9 or A-Z)"
    return None


CODES = CodeRules(_code_error, "顧客番号", "0=90,1=5", _CUSTOMER_LENGTH)
#: Raise :class:`ValueError` naming ``mix`` or ``overrides`` if either is unusable.
check_codes = CODES.check
parse_mix = CODES.parse_mix


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["00000000000000000001=1", ...]`` as ``{customer number: code}``."""
    overrides: dict[str, str] = {}
    for item in items:
        customer, sep, code = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r} is not CUSTOMER=CODE")
        overrides[customer.strip()] = code.strip()
    try:
        check_codes({DEBITED: 1}, overrides)
    except ValueError as e:
        raise ValueError(str(e).removeprefix("overrides: ")) from None
    return overrides


def _fsync_directory(folder: Path) -> None:
    if os.name == "posix":
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomically(folder: Path, name: str, data: bytes) -> Path:
    """Write ``folder/name`` whole or not at all: ``.name.tmp`` (which every watched folder of
    the gateway skips), fsync, then rename over ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    target, tmp = folder / name, folder / f".{name}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    _fsync_directory(folder)
    return target


@dataclass(frozen=True)
class LedgerEntry:
    """One debit the bank decided: a line of ``WORK/ledger.jsonl``."""

    file: str  # the request file's name in WORK/received/
    record: int  # its record number in the file (the header is record 1)
    biller_code: str  # 委託者コード
    debit_mmdd: str  # 引落日 MMDD
    customer_number: str  # 顧客番号
    amount: int  # 引落金額, yen
    result_code: str  # 振替結果コード
    bank_code: str  # 引落銀行番号
    branch_code: str  # 引落支店番号
    account_type: str  # 預金種目
    account: str  # 口座番号, masked: ****567

    @property
    def debited(self) -> bool:
        return self.result_code == DEBITED


@dataclass(frozen=True)
class Totals:
    """Counts and yen, named as a result trailer's (:class:`ZenginTrailer`) fields."""

    debited_count: int = 0
    debited_total: int = 0
    failed_count: int = 0
    failed_total: int = 0

    @property
    def count(self) -> int:
        return self.debited_count + self.failed_count

    @property
    def total(self) -> int:
        return self.debited_total + self.failed_total

    @classmethod
    def of(cls, entries: Iterable[LedgerEntry]) -> Totals:
        done: list[int] = []
        failed: list[int] = []
        for e in entries:
            (done if e.debited else failed).append(e.amount)
        return cls(len(done), sum(done), len(failed), sum(failed))


_ENTRY_FIELDS = frozenset(f.name for f in fields(LedgerEntry))


class SimulatedBank:
    """The bank's side of 口座振替 files, driven synchronously (see the module docstring).

    ``clock`` gives the time for ``delay`` (a ``task.Clock`` in tests; the wall clock if None).
    """

    def __init__(
        self,
        outbox: Path,
        inbox: Path,
        work: Path,
        *,
        mix: Mapping[str, int] = DEFAULT_MIX,
        seed: int = 0,
        overrides: Mapping[str, str] | None = None,
        delay: float = 0.0,
        clock: IReactorTime | None = None,
    ) -> None:
        overrides = dict(overrides or {})
        check_codes(mix, overrides)
        if delay < 0:
            raise ValueError("delay: must not be negative")
        self.outbox, self.inbox, self.work = Path(outbox), Path(inbox), Path(work)
        if self.outbox.resolve() == self.inbox.resolve():
            raise ValueError("inbox: must not be the outbox")
        self.received = self.work / "received"
        self.rejected = self.work / "rejected"
        self.sent = self.work / "sent"
        self.ledger = self.work / "ledger.jsonl"
        for folder in (self.outbox, self.inbox, self.received, self.rejected, self.sent):
            folder.mkdir(parents=True, exist_ok=True)
        if os.stat(self.outbox).st_dev != os.stat(self.received).st_dev:
            raise ValueError("work: must be on the outbox's filesystem (files are taken by rename)")
        self._codes = sorted(mix)  # canonical order: the same mix draws the same codes
        self._weights = [mix[c] for c in self._codes]
        self.mix, self.seed, self.overrides, self.delay = dict(mix), seed, overrides, delay
        self.clock = clock
        self._entries = self._load_ledger()
        # what this instance did, for the command's summary
        self.taken: list[Path] = []
        self.answered: list[Path] = []  # result files written into the inbox
        self.refused: list[Path] = []  # request files moved to rejected/
        # when each pending file was received: files left from before a restart count from now
        self._received_at = {p.name: self.now() for p in self.pending()}

    # --- time ---------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.seconds() if self.clock is not None else wall.time()

    # --- taking requests ----------------------------------------------------------------------

    def waiting(self) -> list[Path]:
        """The complete request files in the outbox, by name."""
        return sorted(p for p in self.outbox.iterdir() if p.is_file() and is_request_name(p.name))

    def take(self) -> list[Path]:
        """Move every waiting request file into ``received/`` (by rename, so exactly once; a
        name already received gets ``.1``, ``.2``...); their paths there."""
        taken = []
        for path in self.waiting():
            target = free_name(self.received, path.name)
            try:
                os.replace(path, target)
            except FileNotFoundError:  # taken by someone else meanwhile
                continue
            self._received_at[target.name] = self.now()
            log.info("bank: took {name} as {target}", name=path.name, target=target.name)
            taken.append(target)
        _fsync_directory(self.received)
        self.taken += taken
        return taken

    def pending(self) -> list[Path]:
        """Received request files not answered yet (no copy of their result in ``sent/``)."""
        return sorted(
            p
            for p in self.received.iterdir()
            if p.is_file()
            and is_request_name(p.name)
            and not (self.sent / self.result_name(p.name)).exists()
        )

    def due_at(self, path: Path) -> float:
        """When the received file ``path`` is to be answered (its receipt + ``delay``)."""
        return self._received_at.setdefault(path.name, self.now()) + self.delay

    # --- answering ----------------------------------------------------------------------------

    @staticmethod
    def result_name(request_name: str) -> str:
        return RESULT_PREFIX + request_name

    def decide(self, file: str, record: int, debit: Debit) -> str:
        """The 振替結果コード of the data record ``record`` of ``file``: the override of its
        顧客番号, or a draw from the mix, reproducible from the seed, file and record."""
        forced = self.overrides.get(debit.customer_number)
        if forced is not None:
            return forced
        rng = random.Random(f"{self.seed}/{file}/{record}")
        return rng.choices(self._codes, self._weights)[0]

    def answer(self, path: Path) -> Path:
        """Answer the received request file ``path`` now: the result file in the inbox (its
        path), the ledger lines, the copy in ``sent/``. A file that does not parse moves to
        ``rejected/`` with its report, and :class:`FileErrors` is raised."""
        path = Path(path)
        name = path.name
        try:
            request = parse_file(path.read_bytes(), source=name)
            if request.is_result:
                reason = "the bank takes requests; this trailer has 振替済/振替不能 figures"
                value = str(request.trailer.debited_count)
                error = RecordError(
                    NETWORK, len(request.debits) + 2, "debited_count", value, reason
                )
                raise FileErrors(name, [error])
        except FileErrors as e:
            self._reject(path, e)
            raise
        debits = [
            replace(d, result_code=self.decide(name, no, d))
            for no, d in enumerate(request.debits, 2)
        ]
        data = build_file(request.header, debits, results=True)
        entries = [
            LedgerEntry(
                file=name,
                record=no,
                biller_code=request.header.biller_code,
                debit_mmdd=request.header.debit_mmdd,
                customer_number=d.customer_number,
                amount=d.amount,
                result_code=d.result_code,
                bank_code=d.bank_code,
                branch_code=d.branch_code,
                account_type=d.account_type,
                account=mask_account(d.account_number),
            )
            for no, d in enumerate(debits, 2)
        ]
        self._append_ledger(entries)
        result = write_atomically(self.inbox, self.result_name(name), data)
        write_atomically(self.sent, self.result_name(name), data)  # answered: not again
        self._received_at.pop(name, None)
        self.answered.append(result)
        totals = Totals.of(entries)
        log.info(
            "bank: answered {name} with {result}: {debited_count} debited ({debited_total} yen),"
            " {failed_count} failed ({failed_total} yen)",
            name=name,
            result=result.name,
            **asdict(totals),
        )
        return result

    def answer_due(self) -> list[Path]:
        """Answer every pending file whose delay has passed; the result files written."""
        results = []
        now = self.now()
        for path in self.pending():
            if self.due_at(path) <= now:
                try:
                    results.append(self.answer(path))
                except FileErrors:
                    continue  # in rejected/ with its report
        return results

    def process_once(self) -> list[Path]:
        """:meth:`take` what is waiting, then :meth:`answer_due`; the result files written."""
        self.take()
        return self.answer_due()

    def _reject(self, path: Path, errors: FileErrors) -> None:
        target = free_name(self.rejected, path.name)
        lines = [f"{path.name}: refused, {len(errors.errors)} error(s); nothing was debited"]
        lines += [
            str(replace(e, value=mask_account(e.value)) if e.field == "account_number" else e)
            for e in errors.errors
        ]
        write_atomically(self.rejected, target.name + ".report.txt", "\n".join(lines).encode())
        os.replace(path, target)
        self._received_at.pop(path.name, None)
        self.refused.append(target)
        where = ", ".join(f"record {e.record} field {e.field}" for e in errors.errors)
        log.warn("bank: refused {name}: {where}", name=path.name, where=where)

    # --- the bank's own record ----------------------------------------------------------------

    def _load_ledger(self) -> dict[tuple[str, int], LedgerEntry]:
        entries: dict[tuple[str, int], LedgerEntry] = {}
        if not self.ledger.exists():
            return entries
        raw = self.ledger.read_bytes()
        if raw and not raw.endswith(b"\n"):  # cut short by a crash: that file is answered again
            raw = raw[: raw.rfind(b"\n") + 1]
            with open(self.ledger, "r+b") as f:
                f.truncate(len(raw))
        for no, line in enumerate(raw.decode("utf-8").splitlines(), 1):
            try:
                values = json.loads(line)
                if not isinstance(values, dict) or set(values) != _ENTRY_FIELDS:
                    raise ValueError("not the fields of a ledger entry")
                entry = LedgerEntry(**values)
            except ValueError as e:
                raise ValueError(f"{self.ledger}:{no}: {e}") from None
            entries[(entry.file, entry.record)] = entry  # an answer repeated: counted once
        return entries

    def _append_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        lines = "".join(
            json.dumps(asdict(e), ensure_ascii=False, sort_keys=True) + "\n" for e in entries
        )
        with open(self.ledger, "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
        for e in entries:
            self._entries[(e.file, e.record)] = e

    def record(self, file: str | None = None) -> list[LedgerEntry]:
        """Every debit decided (of the request file ``file`` if given), in the order decided."""
        return [e for e in self._entries.values() if file is None or e.file == file]

    def totals(self, file: str | None = None) -> Totals:
        """Debited and failed counts and yen of :meth:`record`."""
        return Totals.of(self.record(file))

    def rejected_files(self) -> list[Path]:
        """Every request file ever refused, in ``rejected/``."""
        return sorted(p for p in self.rejected.iterdir() if p.is_file() and is_request_name(p.name))


# --- the command ------------------------------------------------------------------------------


class _Nap:
    """Sleep on the reactor, cut short by :meth:`wake`."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._call: IDelayedCall | None = None
        self._d: Deferred[None] | None = None

    def __call__(self, seconds: float) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._d = d
        self._call = self.clock.callLater(max(seconds, 0.0), d.callback, None)
        return d

    def wake(self) -> None:
        if self._call is not None and self._call.active() and self._d is not None:
            self._call.cancel()
            self._d.callback(None)


def summary(bank: SimulatedBank, timed_out: bool = False) -> dict[str, Any]:
    """What ``bank`` did since it was made, as the command prints it."""
    names = {r.name.removeprefix(RESULT_PREFIX) for r in bank.answered}
    entries = [e for e in bank.record() if e.file in names]
    totals = Totals.of(entries)
    return {
        "taken": len(bank.taken),
        "answered": len(bank.answered),
        "rejected": len(bank.refused),
        "results": [p.name for p in bank.answered],
        "refused": [p.name for p in bank.refused],
        "debits": len(entries),
        "codes": dict(sorted(Counter(e.result_code for e in entries).items())),
        **asdict(totals),
        "seed": bank.seed,
        "ledger": str(bank.ledger),
        "timed_out": timed_out,
    }


async def serve(
    reactor: Any,
    bank: SimulatedBank,
    *,
    interval: float = 1.0,
    once: bool = False,
    until_files: int | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Poll the outbox every ``interval`` seconds until the reactor shuts down, ``until_files``
    files were answered or refused, or ``timeout`` seconds passed; ``once``: take what is
    waiting, answer it when due and stop. Returns :func:`summary`."""
    nap, stopping, timed_out = _Nap(reactor), False, False
    started = reactor.seconds()

    def on_shutdown() -> None:
        nonlocal stopping
        stopping = True
        nap.wake()

    trigger = reactor.addSystemEventTrigger("before", "shutdown", on_shutdown)
    try:
        if once:
            bank.take()
        while not stopping:
            if once:
                bank.answer_due()
                if not bank.pending():
                    break
                wait = min(bank.due_at(p) for p in bank.pending()) - bank.now()
            else:
                bank.process_once()
                if until_files and len(bank.answered) + len(bank.refused) >= until_files:
                    break
                wait = interval
            if timeout is not None:
                left = started + timeout - reactor.seconds()
                if left <= 0:
                    timed_out = True
                    break
                wait = min(wait, left)
            await nap(wait)
    finally:
        reactor.removeSystemEventTrigger(trigger)
    return summary(bank, timed_out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulators.zengin",
        description="The bank of 口座振替: take the gateway's request files (種別コード 91) from "
        "its outbox, decide a 振替結果コード for every debit, write the result files into its "
        "inbox, print a JSON summary.",
    )
    p.add_argument("--outbox", required=True, help="the gateway's Zengin outbox (requests)")
    p.add_argument("--inbox", required=True, help="the gateway's Zengin inbox (results)")
    p.add_argument("--work", required=True, help="the bank's folder: received/, ledger.jsonl")
    default_mix = ",".join(f"{c}={w}" for c, w in DEFAULT_MIX.items())
    p.add_argument(
        "--mix", default=default_mix, help=f"CODE=WEIGHT,... result codes (default {default_mix})"
    )
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="CUSTOMER=CODE",
        help="force the result code of a 顧客番号 (repeatable)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--delay", type=float, default=0.0, help="seconds before answering a file")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between two polls")
    p.add_argument("--once", action="store_true", help="answer what is waiting, then exit")
    p.add_argument("--until-files", type=int, help="exit after answering or refusing N files")
    p.add_argument("--timeout", type=float, help="give up after this many seconds (exit 1)")
    return p


class UsageError(Exception):
    """A command-line value that cannot be used; ``option`` names it."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(f"{option}: {message}")


def make_bank(args: argparse.Namespace) -> SimulatedBank:
    """The bank the command's options describe; :class:`UsageError` names a bad option."""
    try:
        mix = parse_mix(args.mix)
    except ValueError as e:
        raise UsageError("--mix", str(e)) from None
    try:
        overrides = parse_overrides(args.override)
    except ValueError as e:
        raise UsageError("--override", str(e)) from None
    for option, value in (("--delay", args.delay), ("--timeout", args.timeout)):
        if value is not None and value < 0:
            raise UsageError(option, f"{value} is negative")
    if args.interval <= 0:
        raise UsageError("--interval", f"{args.interval} is not a number of seconds > 0")
    if args.until_files is not None and args.until_files < 1:
        raise UsageError("--until-files", f"{args.until_files} is not a count >= 1")
    for option in ("outbox", "inbox", "work"):
        folder = Path(getattr(args, option))
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"--{option}", f"{folder} is not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--{option}", f"cannot make {folder}: {e.strerror}") from None
    try:
        return SimulatedBank(
            Path(args.outbox),
            Path(args.inbox),
            Path(args.work),
            mix=mix,
            seed=args.seed,
            overrides=overrides,
            delay=args.delay,
        )
    except ValueError as e:  # "inbox: ..." or "work: ...": the option it is about
        option, _, message = str(e).partition(": ")
        raise UsageError(f"--{option}", message) from None
    except OSError as e:
        raise UsageError("--work", f"cannot use {args.work}: {e.strerror}") from None


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        bank = make_bank(args)
    except UsageError as e:
        print(f"simulators.zengin: {e}", file=sys.stderr)
        raise SystemExit(1) from None

    def run(reactor: Any) -> Deferred[dict[str, Any]]:
        bank.clock = reactor
        return Deferred.fromCoroutine(
            serve(
                reactor,
                bank,
                interval=args.interval,
                once=args.once,
                until_files=args.until_files,
                timeout=args.timeout,
            )
        )

    run_command("simulators.zengin", run, lambda s: bool(s["timed_out"]))


if __name__ == "__main__":
    main()
