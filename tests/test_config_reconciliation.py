"""``[reconciliation]`` (gateway.config.reconciliation): defaults without it, every value read,
and every bad key named by its dotted path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config.parse import parse_config
from gateway.errors import ConfigError
from gateway.model import Channel
from gateway.recon_model import Remitter
from tests.test_config import CVS, MINIMAL, cfg

CVS_REMITTER = {"network": "cvs", "agency": "default", "name": "ｶ)ｺﾝﾋﾞﾆｼﾕｳﾉｳ"}


def parse(raw: dict[str, Any]) -> Any:
    return parse_config(raw, Path("/etc/gateway"))


def test_without_the_section_remittances_are_expected_without_fees() -> None:
    recon = parse(MINIMAL).reconciliation
    assert recon.remitters == () and recon.account is None
    assert (recon.statement_years, recon.payeasy_days, recon.transfer_days) == ("wareki", 1, 0)
    assert recon.late_days == 3


def test_every_value_is_read() -> None:
    raw = cfg(
        cvs=CVS,
        reconciliation={
            "account": "0005-135-1-1234",
            "statement_years": "western",
            "payeasy_days": 2,
            "transfer_days": 1,
            "interval": 60,
            "lookback_days": 10,
            "late_days": 0,
            "remitters": [
                {**CVS_REMITTER, "fee_per_item": 30, "fee_per_remittance": 200},
                {
                    "network": "transfer",
                    "agency": "1234567890",
                    "name": "ｺｳｻﾞﾌﾘｶｴ",
                    "fee_tax_rate": 8,
                },
            ],
        },
    )
    recon = parse(raw).reconciliation
    assert recon.account == "0005-135-1-0001234"
    assert (recon.statement_years, recon.payeasy_days, recon.transfer_days) == ("western", 2, 1)
    assert (recon.interval, recon.lookback_days, recon.late_days) == (60.0, 10, 0)
    assert recon.remitters == (
        Remitter(Channel.CVS, "default", "ｶ)ｺﾝﾋﾞﾆｼﾕｳﾉｳ", 30, 200, 10),
        Remitter(Channel.TRANSFER, "1234567890", "ｺｳｻﾞﾌﾘｶｴ", 0, 0, 8),
    )


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ({"account": "0005-135-3-1"}, "reconciliation.account"),
        ({"statement_years": "heisei"}, "reconciliation.statement_years"),
        ({"payeasy_days": 21}, "reconciliation.payeasy_days"),
        ({"late_days": 11}, "reconciliation.late_days"),
        ({"late_days": -1}, "reconciliation.late_days"),
        ({"colour": "red"}, "reconciliation.colour"),
        (
            {"remitters": [{**CVS_REMITTER, "network": "cash"}]},
            "reconciliation.remitters[0].network",
        ),
        (
            {"remitters": [{**CVS_REMITTER, "network": "payeasy"}]},
            "reconciliation.remitters[0].agency",
        ),
        ({"remitters": [{**CVS_REMITTER, "agency": "gs"}]}, "reconciliation.remitters[0].agency"),
        ({"remitters": [{**CVS_REMITTER, "name": ""}]}, "reconciliation.remitters[0].name"),
        (
            {"remitters": [{**CVS_REMITTER, "fee_per_item": -1}]},
            "reconciliation.remitters[0].fee_per_item",
        ),
        ({"remitters": [{**CVS_REMITTER, "fee": 1}]}, "reconciliation.remitters[0].fee"),
        ({"remitters": [CVS_REMITTER, CVS_REMITTER]}, "reconciliation.remitters[1].agency"),
        (
            {
                "remitters": [
                    CVS_REMITTER,
                    {"network": "payeasy", "agency": "58191", "name": "ｶ) ｺﾝﾋﾞﾆｼｭｳﾉｳ"},
                ]
            },
            "reconciliation.remitters[1].name",
        ),
    ],
)
def test_a_bad_value_is_named(section: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(cfg(cvs=CVS, reconciliation=section))
    assert caught.value.path == path
