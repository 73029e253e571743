"""simulators.zengin_payouts: the bank takes each payout file once, pays or returns each
transfer by seed, sends the returned ones back as a 振込不能 file the gateway's mapper reads,
and does not pay a file it has already had (same name, same bytes)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from gateway.mappers.zengin.payouts import (
    PayoutHeader,
    Transfer,
    build_payout_file,
    customer_code,
    parse_payout_file,
)
from simulators.zengin_payouts import PayoutBank, parse_mix

ROOT = Path(__file__).parents[2]
HEADER = PayoutHeader("1234567890", "ｾﾝﾀ-", "1207", "0001", "ﾐｽﾞﾎ", "001", "ﾄｳｷﾖｳ", "1", "1234567")
TRANSFERS = [
    Transfer(
        "0005",
        "ﾐﾂﾋﾞｼ",
        "135",
        "ｼﾌﾞﾔ",
        "1",
        f"7{n:06d}",
        f"ﾋﾞﾗ-{n}",
        1_000 * n,
        *customer_code(f"{n:05d}", date(2026, 11, 1)),
    )
    for n in range(1, 21)
]
PAYOUT = build_payout_file(HEADER, TRANSFERS)
NAME = "PAYOUT21_1234567890_20261207_01.txt"


def bank(tmp_path: Path, **kw: object) -> PayoutBank:
    return PayoutBank(
        tmp_path / "outbox",
        tmp_path / "inbox",
        tmp_path / "bank",
        today=date(2026, 12, 6),
        **kw,  # type: ignore[arg-type]
    )


def test_each_transfer_is_paid_or_returned_and_the_returns_file_says_which(
    tmp_path: Path,
) -> None:
    b = bank(tmp_path, mix={"0": 70, "1": 20, "3": 10}, seed=4)
    (tmp_path / "outbox" / NAME).write_bytes(PAYOUT)
    (returns,) = b.process_once()
    assert returns.name == "RETURN_" + NAME and returns.parent == tmp_path / "inbox"
    assert not (tmp_path / "outbox" / NAME).exists()
    back = parse_payout_file(returns.read_bytes())
    assert back.is_returns and back.header == HEADER
    entries = b.record()
    assert len(entries) == 20 and {e.transfer_date for e in entries} == {"2026-12-07"}
    returned = {e.customer_code: e for e in entries if not e.paid}
    assert {t.customer_code: t.return_code for t in back.transfers} == {
        code: e.result for code, e in returned.items()
    }
    assert sum(e.amount for e in b.paid()) + back.trailer.total == sum(t.amount for t in TRANSFERS)
    assert all(e.account.startswith("****") for e in entries)
    assert "7000001" not in b.ledger.read_text()
    # the same seed and file decide the same, in another bank
    other = bank(tmp_path / "again", mix={"0": 70, "1": 20, "3": 10}, seed=4)
    (tmp_path / "again" / "outbox" / NAME).write_bytes(PAYOUT)
    other.process_once()
    assert [e.result for e in other.record()] == [e.result for e in entries]


def test_a_file_sent_again_is_not_paid_again_and_an_override_forces_a_return(
    tmp_path: Path,
) -> None:
    forced = TRANSFERS[4].customer_code
    b = bank(tmp_path, mix={"0": 1}, overrides={forced: "2"})
    (tmp_path / "outbox" / NAME).write_bytes(PAYOUT)
    (returns,) = b.process_once()
    (back,) = parse_payout_file(returns.read_bytes()).transfers
    assert (back.customer_code, back.return_code) == (forced, "2")
    (tmp_path / "outbox" / NAME).write_bytes(PAYOUT)  # written again after a crash
    assert b.process_once() == []
    assert len(b.record()) == 20 and len(b.duplicated) == 1
    restarted = bank(tmp_path, mix={"0": 1})  # the ledger is read back
    assert len(restarted.record()) == 20
    (tmp_path / "outbox" / NAME).write_bytes(PAYOUT)
    restarted.process_once()
    assert len(restarted.record()) == 20 and len(restarted.duplicated) == 1
    changed = build_payout_file(HEADER, [replace(TRANSFERS[0], amount=5)])
    (tmp_path / "outbox" / NAME).write_bytes(changed)  # another file under a known name: paid
    restarted.process_once()
    assert [e.amount for e in restarted.record()][-1] == 5


def test_a_file_that_does_not_parse_is_refused_with_a_report(tmp_path: Path) -> None:
    b = bank(tmp_path)
    (tmp_path / "outbox" / NAME).write_bytes(PAYOUT[:-130])
    assert b.process_once() == []
    (refused,) = b.refused
    assert refused.with_name(refused.name + ".report.txt").exists()
    assert b.record() == []


def test_a_bad_mix_is_named() -> None:
    assert parse_mix("0=9,1=1") == {"0": 9, "1": 1}
    for bad in ("0=x", "0=1,0=2", "00=1", "0=0"):
        with pytest.raises(ValueError):
            parse_mix(bad)


def test_the_command_answers_what_is_waiting_and_prints_a_summary(tmp_path: Path) -> None:
    (tmp_path / "outbox").mkdir()
    (tmp_path / "outbox" / NAME).write_bytes(PAYOUT)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulators.zengin_payouts",
            "--outbox",
            str(tmp_path / "outbox"),
            "--inbox",
            str(tmp_path / "inbox"),
            "--work",
            str(tmp_path / "bank"),
            "--mix",
            "0=1",
            "--override",
            f"{TRANSFERS[0].customer_code}=1",
            "--once",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["paid"] == {"count": 19, "total": sum(t.amount for t in TRANSFERS) - 1_000}
    assert summary["returned"] == {"count": 1, "total": 1_000}
    assert summary["returns_files"] == ["RETURN_" + NAME]
