"""simulators.zengin: the bank of 口座振替 takes each request file of the outbox once, answers it
with a result file the gateway's mapper accepts, in the inbox, atomically, and keeps a record
that agrees with the files it wrote (spec/zengin.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer, task

from gateway.mappers.zengin.mapper import Debit, ZenginFile, build_file, parse_file
from gateway.protocols.inbox import FileResult, InboxWatcher
from simulators.zengin import (
    LedgerEntry,
    SimulatedBank,
    Totals,
    parse_mix,
    parse_overrides,
    serve,
)

ROOT = Path(__file__).parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "zengin"
REQUEST = (FIXTURES / "request_91.txt").read_bytes()
RESULT = (FIXTURES / "result_91.txt").read_bytes()
CUSTOMERS = [f"{n:020d}" for n in (1, 2, 3)]
# the codes of the spec's result vector: debited, insufficient funds, no such account
VECTOR_CODES = dict(zip(CUSTOMERS, ("0", "1", "2"), strict=True))
TIMEOUT = 20.0


class Folders:
    def __init__(self, root: Path) -> None:
        self.outbox, self.inbox, self.work = root / "outbox", root / "inbox", root / "work"
        self.outbox.mkdir(parents=True)

    def put(self, name: str, data: bytes) -> Path:
        path = self.outbox / name
        path.write_bytes(data)
        return path

    def bank(self, **kw: Any) -> SimulatedBank:
        kw.setdefault("seed", 7)
        return SimulatedBank(self.outbox, self.inbox, self.work, **kw)

    def options(self) -> list[str]:
        return ["--outbox", str(self.outbox), "--inbox", str(self.inbox), "--work", str(self.work)]

    def inbox_names(self) -> list[str]:
        return sorted(p.name for p in self.inbox.iterdir()) if self.inbox.exists() else []


@pytest.fixture
def folders(tmp_path: Path) -> Folders:
    return Folders(tmp_path)


def without_result(debit: Debit) -> Debit:
    return replace(debit, result_code="0")


def request_of(n: int) -> bytes:
    """A request with ``n`` debits, cut from the vector's first one (顧客番号 1..n)."""
    vector = parse_file(REQUEST)
    debits = [
        replace(vector.debits[0], customer_number=f"{i:020d}", amount=1000 + i)
        for i in range(1, n + 1)
    ]
    return build_file(vector.header, debits)


def codes_of(result: Path) -> list[str]:
    return [d.result_code for d in parse_file(result.read_bytes()).debits]


def assert_agrees(result: ZenginFile, bank: SimulatedBank, file: str) -> None:
    """The result file's data records and trailer are what the bank recorded."""
    record = bank.record(file)
    assert [(e.customer_number, e.amount, e.result_code) for e in record] == [
        (d.customer_number, d.amount, d.result_code) for d in result.debits
    ]
    totals = bank.totals(file)
    trailer = result.trailer
    assert (trailer.count, trailer.total) == (totals.count, totals.total)
    assert (trailer.debited_count, trailer.debited_total) == (
        totals.debited_count,
        totals.debited_total,
    )
    assert (trailer.failed_count, trailer.failed_total) == (
        totals.failed_count,
        totals.failed_total,
    )


# --- answering a request ------------------------------------------------------------------------


def test_the_vector_request_gets_the_vector_result(folders: Folders) -> None:
    folders.put("request_91.txt", REQUEST)
    bank = folders.bank(overrides=VECTOR_CODES)

    results = bank.process_once()

    assert results == [folders.inbox / "RESULT_request_91.txt"]
    assert list(folders.outbox.iterdir()) == []
    assert (folders.work / "received" / "request_91.txt").read_bytes() == REQUEST
    assert folders.inbox_names() == ["RESULT_request_91.txt"]
    assert results[0].read_bytes() == RESULT  # the spec's own answer, byte for byte
    result = parse_file(results[0].read_bytes())
    assert result.is_result
    assert_agrees(result, bank, "request_91.txt")
    assert bank.totals() == Totals(1, 5_500, 2, 312_000)
    assert bank.record()[0] == LedgerEntry(
        file="request_91.txt",
        record=2,
        biller_code="0000012345",
        debit_mmdd="0527",
        customer_number=CUSTOMERS[0],
        amount=5_500,
        result_code="0",
        bank_code="0005",
        branch_code="135",
        account_type="1",
        account="****321",
    )


def test_the_result_repeats_the_request_with_codes_from_the_mix(folders: Folders) -> None:
    folders.put("req-001.txt", request_of(40))
    bank = folders.bank(mix={"0": 1, "1": 1, "3": 1})

    [path] = bank.process_once()

    request, result = parse_file(request_of(40)), parse_file(path.read_bytes())
    assert result.is_result and result.header == request.header
    assert [without_result(d) for d in result.debits] == list(request.debits)
    assert set(codes_of(path)) == {"0", "1", "3"}
    assert_agrees(result, bank, "req-001.txt")
    # every byte of a data record but its result code is the request's
    sent = path.read_bytes().split(b"\r\n")
    asked = request_of(40).split(b"\r\n")
    assert sent[0] == asked[0]
    for mine, theirs in zip(sent[1:41], asked[1:41], strict=True):
        assert mine[:111] + mine[112:] == theirs[:111] + theirs[112:]


def test_overrides_win_over_the_mix(folders: Folders) -> None:
    folders.put("req.txt", REQUEST)
    bank = folders.bank(mix={"1": 1}, overrides={CUSTOMERS[1]: "0", CUSTOMERS[2]: "E"})

    [path] = bank.process_once()

    assert codes_of(path) == ["1", "0", "E"]
    assert bank.totals() == Totals(1, 12_000, 2, 305_500)


def test_a_mix_of_only_code_1_fails_every_debit(folders: Folders) -> None:
    folders.put("req.txt", request_of(25))
    bank = folders.bank(mix={"1": 1})

    [path] = bank.process_once()

    result = parse_file(path.read_bytes())
    assert codes_of(path) == ["1"] * 25
    total = sum(1000 + i for i in range(1, 26))
    assert (result.trailer.debited_count, result.trailer.debited_total) == (0, 0)
    assert (result.trailer.failed_count, result.trailer.failed_total) == (25, total)
    assert bank.totals() == Totals(0, 0, 25, total)
    assert_agrees(result, bank, "req.txt")


def test_agency_codes_can_be_in_the_mix(folders: Folders) -> None:
    folders.put("req.txt", request_of(30))
    bank = folders.bank(mix={"E": 1, "N": 1})

    [path] = bank.process_once()

    assert set(codes_of(path)) == {"E", "N"}
    assert_agrees(parse_file(path.read_bytes()), bank, "req.txt")


def test_the_mix_weights_are_followed(folders: Folders) -> None:
    folders.put("req.txt", request_of(400))
    bank = folders.bank(mix={"0": 3, "1": 1, "2": 0})

    [path] = bank.process_once()

    seen = Counter(codes_of(path))
    assert set(seen) == {"0", "1"}  # weight 0: never
    assert 260 <= seen["0"] <= 340  # about 3/4 of 400


# --- reproducible -------------------------------------------------------------------------------


def run_bank(root: Path, data: bytes, **kw: Any) -> list[str]:
    folders = Folders(root)
    folders.put("req.txt", data)
    [path] = folders.bank(**kw).process_once()
    return codes_of(path)


def test_the_same_seed_gives_the_same_codes(tmp_path: Path) -> None:
    data = request_of(60)
    mix = {"0": 2, "1": 1, "2": 1}
    first = run_bank(tmp_path / "a", data, mix=mix, seed=3)

    assert run_bank(tmp_path / "b", data, mix=mix, seed=3) == first
    assert run_bank(tmp_path / "c", data, mix=dict(reversed(mix.items())), seed=3) == first
    assert run_bank(tmp_path / "d", data, mix=mix, seed=4) != first


# --- taken once, remembered -------------------------------------------------------------------


def test_a_file_is_taken_once_even_across_restarts(folders: Folders) -> None:
    folders.put("request_91.txt", REQUEST)
    bank = folders.bank(overrides=VECTOR_CODES)
    [result] = bank.process_once()
    before = bank.record()

    assert bank.process_once() == []
    assert bank.take() == []

    again = folders.bank(overrides=VECTOR_CODES)
    assert again.take() == [] and again.process_once() == []
    assert again.record() == before and len(before) == 3
    assert again.totals() == Totals(1, 5_500, 2, 312_000)
    assert folders.inbox_names() == [result.name]


def test_a_name_sent_again_is_a_new_file(folders: Folders) -> None:
    bank = folders.bank(mix={"0": 1})
    folders.put("req.txt", REQUEST)
    bank.process_once()
    folders.put("req.txt", REQUEST)

    [second] = bank.process_once()

    assert second.name == "RESULT_req.txt.1"
    assert sorted(p.name for p in (folders.work / "received").iterdir()) == [
        "req.txt",
        "req.txt.1",
    ]
    assert [e.file for e in bank.record()] == ["req.txt"] * 3 + ["req.txt.1"] * 3
    assert bank.totals() == Totals(6, 2 * 317_500, 0, 0)


def test_a_file_taken_but_not_answered_is_answered_after_a_restart(folders: Folders) -> None:
    folders.put("req.txt", REQUEST)
    clock = task.Clock()
    folders.bank(delay=5.0, clock=clock).take()  # then the simulator stops

    restarted = folders.bank(delay=5.0, clock=clock)
    assert restarted.process_once() == []  # its delay counts from the restart
    clock.advance(5.0)
    [path] = restarted.process_once()

    assert_agrees(parse_file(path.read_bytes()), restarted, "req.txt")


def test_an_answer_repeated_after_a_crash_has_the_same_bytes_and_counts_once(
    folders: Folders,
) -> None:
    folders.put("req.txt", REQUEST)
    [path] = folders.bank().process_once()
    first = path.read_bytes()
    # a crash after the inbox write, before the bank noted the file as answered
    (folders.work / "sent" / path.name).unlink()
    path.unlink()  # the gateway took it meanwhile

    restarted = folders.bank()
    [again] = restarted.process_once()

    assert again.read_bytes() == first
    assert len(restarted.record()) == 3
    assert len((folders.work / "ledger.jsonl").read_text().splitlines()) == 6
    assert len(folders.bank().record()) == 3


def test_a_ledger_line_cut_by_a_crash_is_dropped(folders: Folders) -> None:
    folders.put("req.txt", REQUEST)
    folders.bank().process_once()
    ledger = folders.work / "ledger.jsonl"
    whole = ledger.read_bytes()
    ledger.write_bytes(whole + b'{"file": "x.txt", "rec')

    assert len(folders.bank().record()) == 3
    assert ledger.read_bytes() == whole


def test_the_ledger_masks_accounts(folders: Folders) -> None:
    folders.put("req.txt", REQUEST)
    folders.bank().process_once()

    text = (folders.work / "ledger.jsonl").read_text(encoding="utf-8")
    for number in ("7654321", "1111111", "0123456"):
        assert number not in text
        assert f'"****{number[-3:]}"' in text
    assert [json.loads(line)["customer_number"] for line in text.splitlines()] == CUSTOMERS


# --- delay --------------------------------------------------------------------------------------


def test_the_answer_waits_for_the_delay(folders: Folders) -> None:
    folders.put("req.txt", REQUEST)
    clock = task.Clock()
    bank = folders.bank(delay=2.0, clock=clock)

    assert bank.process_once() == []
    assert list(folders.outbox.iterdir()) == []  # taken at once
    assert folders.inbox_names() == []
    clock.advance(1.9)
    assert bank.process_once() == []
    clock.advance(0.1)
    assert bank.process_once() == [folders.inbox / "RESULT_req.txt"]


# --- what is not a request ----------------------------------------------------------------------


def test_a_broken_request_is_rejected_with_a_report(folders: Folders) -> None:
    folders.put("bad.txt", (FIXTURES / "invalid_trailer_sum.txt").read_bytes())
    folders.put("short.txt", (FIXTURES / "invalid_short_record.txt").read_bytes())
    bank = folders.bank()

    assert bank.process_once() == []

    assert folders.inbox_names() == []
    assert list((folders.work / "received").iterdir()) == []
    rejected = folders.work / "rejected"
    assert sorted(p.name for p in rejected.iterdir()) == [
        "bad.txt",
        "bad.txt.report.txt",
        "short.txt",
        "short.txt.report.txt",
    ]
    report = (rejected / "bad.txt.report.txt").read_text(encoding="utf-8")
    assert "record 5, field total" in report and "317600" in report
    short = (rejected / "short.txt.report.txt").read_text(encoding="utf-8")
    assert "record 2, field record" in short and "record 3, field count" in short
    assert bank.record() == [] and bank.totals() == Totals()
    assert bank.rejected_files() == [rejected / "bad.txt", rejected / "short.txt"]
    assert folders.bank().process_once() == []  # not taken again


def test_a_report_masks_a_bad_account_number(folders: Folders) -> None:
    records = REQUEST.split(b"\r\n")
    records[1] = records[1][:43] + b"76543X1" + records[1][50:]  # 口座番号: pos 44, 7 digits
    folders.put("bad.txt", b"\r\n".join(records))

    assert folders.bank().process_once() == []

    report = (folders.work / "rejected" / "bad.txt.report.txt").read_text(encoding="utf-8")
    assert "record 2, field account_number" in report
    assert "76543X1" not in report and "****3X1" in report


def test_a_result_file_is_not_a_request(folders: Folders) -> None:
    folders.put("result.txt", RESULT)
    bank = folders.bank()

    assert bank.process_once() == []

    report = folders.work / "rejected" / "result.txt.report.txt"
    assert "field debited_count" in report.read_text(encoding="utf-8")
    assert folders.inbox_names() == []


def test_temporary_and_hidden_files_are_left_alone(folders: Folders) -> None:
    names = [".req.txt", ".req.txt.tmp", "req.txt.tmp", "req.txt.part", "req.txt.report.txt"]
    for name in names:
        folders.put(name, REQUEST)
    (folders.outbox / "sub").mkdir()
    (folders.outbox / "sub" / "req.txt").write_bytes(REQUEST)
    bank = folders.bank()

    assert bank.waiting() == []
    assert bank.process_once() == []

    assert sorted(p.name for p in folders.outbox.iterdir()) == sorted([*names, "sub"])
    assert (folders.outbox / "sub" / "req.txt").exists()
    assert folders.inbox_names() == []


def test_the_result_is_never_visible_unfinished(
    folders: Folders, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the rename that publishes it, the result is complete under a name the gateway's
    watcher skips, and its final name is free; afterwards no temporary file is left."""
    folders.put("req.txt", REQUEST)
    bank = folders.bank()
    watcher = InboxWatcher(
        "zengin", folders.inbox, lambda n, d: defer.succeed(FileResult(True, "")), task.Clock()
    )
    real_replace = os.replace
    published: list[str] = []

    def spy(src: Any, dst: Any) -> None:
        src, dst = Path(src), Path(dst)
        if dst.parent == folders.inbox:
            assert src.parent == folders.inbox
            assert src.name.startswith(".") and src.name.endswith(".tmp")
            assert not dst.exists()
            assert src not in watcher.candidates() and watcher.candidates() == []
            assert parse_file(src.read_bytes()).is_result
            published.append(dst.name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    [path] = bank.process_once()

    assert published == ["RESULT_req.txt"]
    assert folders.inbox_names() == ["RESULT_req.txt"]
    assert watcher.candidates() == [path]


# --- options ------------------------------------------------------------------------------------


def test_parse_mix() -> None:
    assert parse_mix("0=90,1=5,2=2,3=1,4=1,9=1,E=1,N=0") == {
        "0": 90,
        "1": 5,
        "2": 2,
        "3": 1,
        "4": 1,
        "9": 1,
        "E": 1,
        "N": 0,
    }
    assert parse_mix(" 0 = 3 , 1=1 ") == {"0": 3, "1": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0=x", "'0=x' is not CODE=WEIGHT"),
        ("0=90,1", "'1' is not CODE=WEIGHT"),
        ("0=-1", "'0=-1' is not CODE=WEIGHT"),
        ("", "'' is not CODE=WEIGHT"),
        ("0=1,0=2", "code '0' is given twice"),
        ("10=1", "'10' is not a 振替結果コード"),
        ("e=1", "'e' is not a 振替結果コード"),
        ("0=0,1=0", "the weights add up to 0"),
    ],
)
def test_parse_mix_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mix(text)


def test_parse_overrides() -> None:
    assert parse_overrides([f"{CUSTOMERS[0]}=1", "A-1=E"]) == {CUSTOMERS[0]: "1", "A-1": "E"}
    with pytest.raises(ValueError, match="is not CUSTOMER=CODE"):
        parse_overrides(["0001"])
    with pytest.raises(ValueError, match="'11' is not a 振替結果コード"):
        parse_overrides(["0001=11"])
    with pytest.raises(ValueError, match="is not a 顧客番号"):
        parse_overrides(["=1"])


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"mix": {}}, "mix: the weights add up to 0"),
        ({"mix": {"0": -1}}, "mix: the weight of '0' is -1"),
        ({"mix": {"0": 1.5}}, "mix: the weight of '0' is 1.5"),
        ({"mix": {"X1": 1}}, "mix: 'X1' is not a 振替結果コード"),
        ({"overrides": {"0001": "x"}}, "overrides: 0001: 'x' is not a 振替結果コード"),
        ({"overrides": {"1" * 21: "1"}}, "overrides: '1{21}' is not a 顧客番号"),
        ({"delay": -1.0}, "delay: must not be negative"),
    ],
)
def test_the_bank_refuses_bad_settings(folders: Folders, kw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        folders.bank(**kw)


def test_the_inbox_is_not_the_outbox(folders: Folders) -> None:
    with pytest.raises(ValueError, match="inbox: must not be the outbox"):
        SimulatedBank(folders.outbox, folders.outbox, folders.work, mix={"0": 1}, seed=1)


# --- serve: the command's loop, on a fake reactor ----------------------------------------------


class FakeReactor(task.Clock):
    """task.Clock with the system event triggers serve() registers."""

    def __init__(self) -> None:
        super().__init__()
        self.triggers: dict[int, Callable[[], object]] = {}

    def addSystemEventTrigger(self, phase: str, event: str, fn: Callable[[], object]) -> int:
        assert (phase, event) == ("before", "shutdown")
        self.triggers[len(self.triggers) + 1] = fn
        return len(self.triggers)

    def removeSystemEventTrigger(self, trigger: int) -> None:
        del self.triggers[trigger]

    def shutdown(self) -> None:
        for fn in list(self.triggers.values()):
            fn()


def fired(d: defer.Deferred[dict[str, Any]]) -> dict[str, Any]:
    """What ``d`` fired with (it must have)."""
    out: list[dict[str, Any]] = []

    def keep(summary: dict[str, Any]) -> dict[str, Any]:
        out.append(summary)
        return summary

    d.addCallback(keep)
    assert out, "serve() has not finished"
    return out[0]


def test_serve_once_waits_for_the_delay_then_stops(folders: Folders) -> None:
    folders.put("req.txt", REQUEST)
    reactor = FakeReactor()
    bank = folders.bank(delay=2.0, clock=reactor, overrides=VECTOR_CODES)

    done = defer.Deferred.fromCoroutine(serve(reactor, bank, once=True))
    assert not done.called
    folders.put("later.txt", REQUEST)  # not waiting when it started: left for the next run
    reactor.advance(2.0)

    summary = fired(done)
    assert summary["results"] == ["RESULT_req.txt"]
    assert (summary["debited_count"], summary["failed_total"]) == (1, 312_000)
    assert summary["codes"] == {"0": 1, "1": 1, "2": 1}
    assert (folders.outbox / "later.txt").exists()
    assert reactor.triggers == {}


def test_serve_polls_until_enough_files(folders: Folders) -> None:
    reactor = FakeReactor()
    bank = folders.bank(clock=reactor)
    done = defer.Deferred.fromCoroutine(serve(reactor, bank, interval=1.0, until_files=2))

    folders.put("a.txt", REQUEST)
    reactor.advance(1.0)
    assert not done.called
    folders.put("b.txt", (FIXTURES / "invalid_trailer_sum.txt").read_bytes())
    reactor.advance(1.0)

    summary = fired(done)
    assert (summary["answered"], summary["rejected"], summary["debits"]) == (1, 1, 3)
    assert summary["refused"] == ["b.txt"] and not summary["timed_out"]


def test_serve_stops_at_shutdown_and_at_its_timeout(folders: Folders) -> None:
    reactor = FakeReactor()
    bank = folders.bank(clock=reactor)
    stopped = defer.Deferred.fromCoroutine(serve(reactor, bank, interval=5.0))
    reactor.advance(5.0)
    reactor.shutdown()
    assert (fired(stopped)["answered"], fired(stopped)["timed_out"]) == (0, False)

    timed = defer.Deferred.fromCoroutine(serve(reactor, bank, interval=5.0, timeout=7.0))
    reactor.advance(5.0)
    assert not timed.called
    reactor.advance(2.0)
    assert fired(timed)["timed_out"] is True
    assert reactor.triggers == {}


# --- the command --------------------------------------------------------------------------------


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "simulators.zengin", *map(str, args)]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=ROOT
    )


def test_the_command_once(folders: Folders) -> None:
    folders.put("request_91.txt", REQUEST)
    overrides = [f"--override={c}={code}" for c, code in VECTOR_CODES.items()]

    out = run(
        *folders.options(),
        *("--seed", "5", "--mix", "0=1", "--once", *overrides),
    )

    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["results"] == ["RESULT_request_91.txt"]
    assert (summary["taken"], summary["answered"], summary["rejected"]) == (1, 1, 0)
    assert (summary["debited_count"], summary["debited_total"]) == (1, 5_500)
    assert (summary["failed_count"], summary["failed_total"]) == (2, 312_000)
    assert summary["seed"] == 5 and not summary["timed_out"]
    assert (folders.inbox / "RESULT_request_91.txt").read_bytes() == RESULT
    assert folders.bank().totals() == Totals(1, 5_500, 2, 312_000)


def test_the_command_refuses_a_bad_mix(folders: Folders) -> None:
    out = run(*folders.options(), "--mix", "0=x,1=5", "--once")

    assert out.returncode == 1
    assert out.stdout == ""
    assert (
        out.stderr.strip() == "simulators.zengin: --mix: '0=x' is not CODE=WEIGHT (e.g. 0=90,1=5)"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--override", "0001=xy"], "--override: 0001: 'xy' is not a 振替結果コード"),
        (["--interval", "0"], "--interval: 0.0 is not a number of seconds > 0"),
        (["--until-files", "0"], "--until-files: 0 is not a count >= 1"),
        (["--delay", "-1"], "--delay: -1.0 is negative"),
    ],
)
def test_the_command_names_a_bad_option(folders: Folders, extra: list[str], message: str) -> None:
    out = run(*folders.options(), *extra)

    assert out.returncode == 1
    assert message in out.stderr


def test_the_command_names_a_file_given_as_a_folder(folders: Folders) -> None:
    afile = folders.work.parent / "afile"
    afile.write_text("x")

    out = run("--outbox", folders.outbox, "--inbox", folders.inbox, "--work", afile, "--once")

    assert out.returncode == 1
    assert "--work: " in out.stderr and "is not a folder" in out.stderr


def test_the_command_polls_until_n_files(folders: Folders) -> None:
    folders.put("a.txt", REQUEST)
    folders.put("b.txt", REQUEST)

    out = run(*folders.options(), "--interval", "0.05", "--until-files", "2", "--timeout", "15")

    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"] == ["RESULT_a.txt", "RESULT_b.txt"]


def test_the_command_times_out(folders: Folders) -> None:
    out = run(*folders.options(), "--interval", "0.05", "--until-files", "1", "--timeout", "0.3")

    assert out.returncode == 1
    assert json.loads(out.stdout)["timed_out"] is True


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_the_command_prints_its_summary_when_stopped(folders: Folders) -> None:
    proc = subprocess.Popen(
        command(*folders.options(), "--interval", "0.05"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        # written atomically: a reader sees the final name only when the file is whole
        tmp = folders.outbox / ".req.txt.tmp"
        tmp.write_bytes(REQUEST)
        tmp.rename(folders.outbox / "req.txt")
        deadline = time.monotonic() + TIMEOUT
        while not (folders.inbox / "RESULT_req.txt").exists():
            assert time.monotonic() < deadline, "no result file"
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["results"] == ["RESULT_req.txt"] and summary["debits"] == 3
    assert parse_file((folders.inbox / "RESULT_req.txt").read_bytes()).is_result


def test_the_command_has_help() -> None:
    out = run("--help")
    assert out.returncode == 0, out.stderr
    for option in ("--outbox", "--inbox", "--work", "--mix", "--override", "--seed", "--delay"):
        assert option in out.stdout
    for option in ("--interval", "--once", "--until-files", "--timeout"):
        assert option in out.stdout
