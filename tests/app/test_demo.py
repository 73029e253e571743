"""``gateway-demo`` (the README's first command) runs to the end and its last step shows the
month it collected in closed on the demo's clock: the month's settlements, the 総合振込 file the
simulated bank paid, the center's bank statement imported, and the reconciliation at 0 open
items, the planted late remittance matched as late (gateway.app.demo, gateway.app.demo_month).

It starts the real daemon and every simulator, as the README's command does: about 1.5 minutes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.app.demo import main
from gateway.mappers.zengin.payouts import parse_payout_file

pytestmark = pytest.mark.e2e


def yen(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_demo_ends_with_the_month_settled_paid_out_and_reconciled_to_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "demo"
    assert main(["--dir", str(workdir)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("$ kill -TERM <twistd>  -> stopped cleanly")
    assert "== metrics" in out and "== settlement: the center pays its billers out" in out
    close = out[out.index("== the month closed, on the demo's clock: ") :]

    # The month's settlements: every biller's, each with its payout and payout date.
    settled = re.findall(
        r"  (demo-\w+) (\d{4}-\d\d-01)\.\.\S+: ¥([\d,]+) collected \((\d+) payment\(s\)\), "
        r"fees and tax ¥[\d,]+, payout ¥([\d,]+) on (\S+)",
        close,
    )
    assert sorted(s[0] for s in settled) == ["demo-gas", "demo-school", "demo-water"]
    assert all(int(s[3]) > 0 and yen(s[4]) > 0 for s in settled)
    payouts = {s[0]: yen(s[4]) for s in settled}
    (payout_date,) = {s[5] for s in settled}

    # The payout file, one transfer per settlement, and the bank's answer: all paid.
    (file_name, records, total) = re.findall(
        r"  (PAYOUT21_1234567890_\d{8}_01\.txt): (\d+) transfer\(s\), ¥([\d,]+), 総合振込", close
    )[0]
    assert (int(records), yen(total)) == (3, sum(payouts.values()))
    assert f"bank: 3 paid (¥{total}), 0 returned" in close
    assert f"3 settlement(s) paid_out on {payout_date}" in close
    taken = workdir / "bank" / "payouts" / "received" / file_name
    parsed = parse_payout_file(taken.read_bytes())
    assert sorted(t.amount for t in parsed.transfers) == sorted(payouts.values())

    # The center's bank statement imported: every remittance matched, the late one as late.
    (statement,) = re.findall(r"\$ gateway-admin recon import (NYUSHUKKIN_\d{8}_\d{8}\.txt)", close)
    assert (workdir / "bank" / "statements" / statement).exists()
    assert re.search(r"remittances 1 late, \d+ matched; 0 open item\(s\)", close)
    assert re.search(r"cvs +kessai .*: late \(came \d{4}-\d\d-\d\d\)", close)
    assert re.search(r"item rci_[0-9a-f]{24} \(late, resolved\): late: came on ", close)
    assert ": difference" not in close and ": missing" not in close
    assert "$ gateway-admin recon open  -> 0 open item(s): the month reconciles to zero" in close
