"""``[payouts]`` (gateway/config/payouts.py; docs/config.md): its defaults, and every bad value
refused naming its key before anything listens."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Any

import pytest

from gateway.config import parse_config
from gateway.config.payouts import PayoutsConfig
from gateway.errors import ConfigError
from gateway.money.payout_service import checked
from tests.test_config import BASE, MINIMAL

PAYOUTS: dict[str, Any] = {
    "consignor_code": "1234567890",
    "consignor_name": "きょうどうしゅうのうセンター",
    "account": "0001-001-1-123",
    "outbox": "var/outbox/payouts",
    "inbox": "/srv/inbox/payouts",
}


def payouts(**changes: Any) -> PayoutsConfig | None:
    return parse_config({**MINIMAL, "payouts": {**PAYOUTS, **changes}}, BASE).payouts


def test_payouts_are_off_without_the_section_and_have_the_documented_defaults() -> None:
    assert parse_config(MINIMAL, BASE).payouts is None
    assert payouts() == PayoutsConfig(
        consignor_code="1234567890",
        consignor_name="ｷﾖｳﾄﾞｳｼﾕｳﾉｳｾﾝﾀ-",  # converted to Zengin kana
        bank_code="0001",
        branch_code="001",
        account_type="1",
        account_number="0000123",
        outbox=BASE / "var" / "outbox" / "payouts",
        inbox=Path("/srv/inbox/payouts"),
        at=None,
        poll_interval=5.0,
        separator=b"\r\n",
        eof_mark=False,
        check_bank_master=True,
    )
    found = payouts(at="09:30", separator="none", eof_mark=True)
    assert found is not None and found.at == time(9, 30) and found.separator == b""


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"consignor_code": "12345"}, "payouts.consignor_code: '12345' is not 10 digits"),
        ({"consignor_name": "共同収納"}, "payouts.consignor_name: '共'"),
        ({"consignor_name": "ｱ" * 41}, "payouts.consignor_name: must be 1-40"),
        ({"account": "0001-001-3-1"}, "payouts.account: '0001-001-3-1' is not BANK-BRANCH"),
        ({"account": "1-001-1-1"}, "payouts.account"),
        ({"at": "9:00"}, "payouts.at: '9:00' is not a time HH:MM"),
        ({"separator": "lf"}, "payouts.separator"),
        ({"outbox": ""}, "payouts.outbox: must not be empty"),
        ({"bogus": 1}, "payouts.bogus: unknown key"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        payouts(**changes)
    assert str(refused.value).startswith(message), str(refused.value)


def test_a_required_key_is_named() -> None:
    for key in PAYOUTS:
        table = {k: v for k, v in PAYOUTS.items() if k != key}
        with pytest.raises(ConfigError, match=rf"payouts\.{key}: is required"):
            parse_config({**MINIMAL, "payouts": table}, BASE)


def test_the_daemon_refuses_an_own_account_the_bank_master_does_not_know() -> None:
    unknown = payouts(account="0001-999-1-1")
    assert unknown is not None
    with pytest.raises(ConfigError, match=r"payouts\.account: 999 is not a branch of bank 0001"):
        checked(unknown)
    lenient = payouts(account="0001-999-1-1", check_bank_master=False)
    assert lenient is not None and checked(lenient) is lenient
