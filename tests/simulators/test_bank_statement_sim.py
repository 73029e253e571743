"""The center's bank, simulated (simulators.bank_statement): the statement it writes reads back
as the deposits it was given, and the fees an agency keeps are the ones the gateway deducts."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from gateway.mappers.bank_statement import parse_statement
from gateway.model import Channel
from gateway.recon_model import Remitter
from simulators.bank_statement import Fees, Remittance, statement_file


def test_the_statement_reads_back_as_the_remittances_written(tmp_path: Path) -> None:
    remitted = [
        Remittance(date(2026, 12, 3), 29_714, "ｶ)ｺﾝﾋﾞﾆｼﾕｳﾉｳ"),
        Remittance(date(2026, 12, 7), 6_030, "ﾏﾙﾁﾍﾟｲﾒﾝﾄ"),
    ]
    path = statement_file(
        tmp_path,
        "S.txt",
        remitted,
        first_day=date(2026, 12, 1),
        last_day=date(2026, 12, 7),
        withdrawals=[Remittance(date(2026, 12, 4), 880, "ﾌﾘｺﾐﾃｽｳﾘﾖｳ")],
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S.txt"]  # no temporary file left
    statement = parse_statement(path.read_bytes())
    assert statement.account == "0005-135-1-7654321" and statement.withdrawals == 1
    assert [(d.value_date, d.amount, d.remitter_name) for d in statement.deposits] == [
        (r.day, r.amount, r.name) for r in remitted
    ]


def test_an_agency_keeps_what_the_gateway_deducts() -> None:
    for count in (0, 1, 7, 250):
        fees = Fees(per_item=30, per_remittance=200, tax_rate=10)
        remitter = Remitter(Channel.CVS, "default", "ｶ)ｺﾝﾋﾞﾆ", 30, 200, 10)
        assert fees.of(count) == remitter.fees(count)
