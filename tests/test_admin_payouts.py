"""``gateway-admin`` payouts (gateway/app/admin/payouts.py), in-process: the biller's payout
account, the payout file of a date, the bank's 振込不能 file applied by hand, the files listed;
and the one-line refusals."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway import calendar
from gateway.app.admin.commands import main as admin_main
from gateway.mappers.zengin.payouts import parse_payout_file
from simulators.zengin_payouts import PayoutBank
from tests.conftest import admin, config_text, jst_today
from tests.test_payouts_e2e import ACCOUNTS, PAYOUTS, last_month, paid_last_month


def fails(config: Path, *args: str) -> str:
    """Run a command that must fail: its one line on stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert admin_main(["-c", str(config), *args]) == 1
    return err.getvalue().strip()


def test_payout_commands_from_account_to_returns(tmp_path: Path, migrated_url: str) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(migrated_url, extra=PAYOUTS), encoding="utf-8")
    today = jst_today()
    first, _ = last_month(today)
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "effective_from": str(first),
                "cycle": "monthly",
                "payout_days": 1,
                "channels": {"cvs": {"per_payment": 60}},
            }
        )
    )
    for biller in ACCOUNTS:
        admin(config, "biller", "create", "--id", biller, "--name", biller, "--kana", "ｱｸﾒ")
        admin(config, "contract", "set", "--biller", biller, "--plan", str(plan))
    paid_last_month(config, migrated_url, first)
    made = admin(config, "settle")["created"]
    assert {m["biller_id"] for m in made} == {"acme", "beta"}

    # the account: checked, shown masked, versioned
    number, holder = ACCOUNTS["acme"]
    set_ = admin(config, "biller", "payout-account", "--id", "acme", "--account", number,
                 "--holder", "かぶしきがいしゃアクメ")  # fmt: skip
    assert set_["created"] and set_["account_number"] == "****321"
    assert set_["holder_kana"] == "ｶﾌﾞｼｷｶﾞｲｼﾔｱｸﾒ" and set_["branch_name"] == "ｼﾌﾞﾔ"
    later = str(today + timedelta(days=30))
    admin(config, "biller", "payout-account", "--id", "acme", "--account", number,
          "--holder", holder, "--from", later)  # fmt: skip
    shown = admin(config, "biller", "payout-accounts", "--id", "acme")["accounts"]
    assert [a["effective_from"] for a in shown] == [str(today), later]
    assert "7654321" not in json.dumps(shown)
    account = ("biller", "payout-account", "--id", "acme", "--account")
    unknown = fails(config, *account, "0005-999-1-1", "--holder", "ｱ")
    assert unknown == "gateway-admin: --account: 999 is not a branch of bank 0005 (三菱ＵＦＪ)"
    malformed = fails(config, *account, "0005135", "--holder", "東京")
    assert malformed.startswith("gateway-admin: --account: '0005135' is not BANK-BRANCH-TYPE")
    assert "--holder: '東' cannot be written" in malformed
    assert "--from: must be today" in fails(
        config, "biller", "payout-account", "--id", "acme", "--account", number, "--holder",
        holder, "--from", str(today - timedelta(days=1)),
    )  # fmt: skip

    # the file: acme's payout; beta has no account and waits
    day = calendar.add_business_days(today, 2)
    result: dict[str, Any] = admin(config, "payout", "request", "--date", str(day))
    assert result["skipped"] == {"beta": f"no payout account in force on {day}"}
    (written,) = result["written"]
    payout = parse_payout_file(Path(written["path"]).read_bytes())
    acme = next(m for m in made if m["biller_id"] == "acme")
    assert [t.amount for t in payout.transfers] == [acme["payout"]]
    assert admin(config, "payout", "request", "--date", str(day))["file"] is None
    past = fails(config, "payout", "request", "--date", str(today - timedelta(days=1)))
    assert past.startswith("gateway-admin: --date: ") and "in the past" in past

    # the bank returns it; the file applied by hand, once
    bank = PayoutBank(
        Path(written["path"]).parent, tmp_path / "returns", tmp_path / "bank", mix={"1": 1}
    )
    (returns,) = bank.process_once()
    applied = admin(config, "payout", "returned", str(returns))
    assert applied["returned"] == 1 and applied["settlements"] == [acme["settlement_id"]]
    assert admin(config, "payout", "returned", str(returns))["already_returned"] == 1
    refused = fails(config, "payout", "returned", str(bank.received / written["file"]))
    assert "refused, nothing applied" in refused and "return_code" in refused
    assert [f["file"] for f in admin(config, "payout", "files")["files"]] == [written["file"]]

    off = tmp_path / "off.toml"
    off.write_text(config_text(migrated_url), encoding="utf-8")
    assert fails(off, "payout", "request", "--date", str(day)) == (
        "gateway-admin: payout request: [payouts] is not in the configuration"
    )
