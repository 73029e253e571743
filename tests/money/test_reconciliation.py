"""Reconciliation against the real store (SQLite, or PostgreSQL with GATEWAY_TEST_DATABASE_URL):
the remittances the ledger expects per network, agency and transfer date, a statement imported
whole or not at all, deposits matched, and the items finance sees — opened, updated, closed when
the money matches later, resolved with a note through ``gateway-admin recon resolve`` or the
admin API (gateway.money.reconciliation, gateway.store.reconciliation, gateway.recon_model)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from itertools import count
from pathlib import Path

import pytest
import pytest_twisted
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from gateway.calendar import add_business_days
from gateway.config import Config, load_config
from gateway.errors import FileErrors
from gateway.mappers.bank_statement import build_zengin
from gateway.model import JST, Channel
from gateway.money.reconciliation import day_view, import_statement, reconcile_days
from gateway.recon_model import Deposit, Expected, ItemStatus, Remitter, reconcile
from gateway.store import create_db_engine
from gateway.store.billers import create_biller
from gateway.store.reconciliation import collected, list_items, resolve_item
from gateway.store.schema import bank_deposits, bank_statements, bills, payments
from simulators.bank_statement import Remittance, delayed, statement_file
from tests.conftest import Running, config_text
from tests.money.test_settlement_api import admin_key

NOW = datetime(2026, 12, 10, 9, 0, tzinfo=JST)
ACCOUNT = ("0005", "ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ", "135", "ﾏﾙﾉｳﾁ", "1", "7654321")
RECON = """
[reconciliation]
account = "0005-135-1-7654321"
payeasy_days = 1
transfer_days = 2

[[reconciliation.remitters]]
network = "cvs"
agency = "default"
name = "ｶ)ｺﾝﾋﾞﾆｼﾕｳﾉｳ"
fee_per_item = 30
fee_per_remittance = 200

[[reconciliation.remitters]]
network = "payeasy"
agency = "58191"
name = "ﾏﾙﾁﾍﾟｲﾒﾝﾄ"
"""
CVS, MPN = "ｶ)ｺﾝﾋﾞﾆｼﾕｳﾉｳ", "ﾏﾙﾁﾍﾟｲﾒﾝﾄ"


@dataclass
class Ledger:
    engine: Engine
    config: Config
    serial: count  # type: ignore[type-arg]

    def pay(
        self,
        channel: Channel,
        amount: int,
        *,
        key: str,
        status: str = "confirmed",
        transfer_date: date | None = None,
        paid_at: datetime = NOW,
        bill_id: int | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                payments.insert().values(
                    payment_id=f"pay_{next(self.serial):024x}",
                    bill_id=bill_id,
                    biller_id="acme",
                    channel=channel.value,
                    event_key=key,
                    amount=amount,
                    paid_at=paid_at,
                    status=status,
                    late=False,
                    transfer_date=transfer_date,
                    created_at=paid_at,
                    confirmed_at=paid_at if status == "confirmed" else None,
                )
            )

    def statement(
        self, deposits: list[tuple[date, int, str]], first: date, last: date, name: str = "S.txt"
    ) -> dict[str, object]:
        data = build_zengin(
            account=ACCOUNT,
            account_name="ｼﾕｳﾉｳｾﾝﾀ-",
            first_day=first,
            last_day=last,
            created=last,
            deposits=deposits,
        )
        return self.import_(data, name)

    def import_(self, data: bytes, name: str) -> dict[str, object]:
        with self.engine.begin() as conn:
            return import_statement(conn, self.config, data, name, NOW, "cli:test")

    def payeasy_bill(self, institution: str) -> int:
        """A bill of ``institution``'s numbers (Pay-easy 消込 are expected per 収納機関番号)."""
        n = next(self.serial)
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    bills.insert()
                    .values(
                        biller_id="acme",
                        bill_no=f"P-{n}",
                        amount=0,
                        channels="payeasy",
                        taxable=False,
                        tax_amount=0,
                        status="open",
                        version=1,
                        reissue=0,
                        double_paid=False,
                        late=False,
                        stamp=False,
                        payeasy_institution_code=institution,
                        page_token=f"t{n}",
                        fingerprint=f"f{n}",
                        created_at=NOW,
                        updated_at=NOW,
                    )
                    .returning(bills.c.id)
                ).scalar_one()
            )

    def items(self) -> list[tuple[str, str | None, date, int, int, str]]:
        with self.engine.connect() as conn:
            return [
                (
                    i.kind.value,
                    i.network.value if i.network else None,
                    i.transfer_date,
                    i.expected,
                    i.received,
                    i.status.value,
                )
                for i in list_items(conn)
            ]


@pytest.fixture
def gateway_extra() -> str:
    """The ``gateway`` fixture's daemon reconciles with the same section as the ledger."""
    return RECON


@pytest.fixture
def ledger(tmp_path: Path, migrated_url: str) -> Iterator[Ledger]:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(migrated_url, extra=RECON), encoding="utf-8")
    config = load_config(path)
    engine = create_db_engine(migrated_url, 2)
    with engine.begin() as conn:
        create_biller(
            conn,
            biller_id="acme",
            name="Acme",
            kana="ｱｸﾒ",
            channels=frozenset(Channel),
            payeasy_institution_code=None,
            now=NOW,
        )
    yield Ledger(engine, config, count(1))
    engine.dispose()


def cvs_key(n: int) -> str:
    return f"{n:044d}202612010900000010{n:07d}"


def test_the_ledger_collects_per_network_agency_and_transfer_date(ledger: Ledger) -> None:
    ledger.pay(Channel.CVS, 1000, key=cvs_key(1), transfer_date=date(2026, 12, 3))
    ledger.pay(Channel.CVS, 2000, key=cvs_key(2), transfer_date=date(2026, 12, 3))
    ledger.pay(Channel.CVS, 9000, key=cvs_key(3), status="pending")  # a 速報 alone: not yet
    # Pay-easy 消込 of business day Friday 12-04 (remitted Monday 12-07), one cancelled.
    ledger.pay(Channel.PAYEASY, 3000, key="000120261204" + "00000001")
    ledger.pay(Channel.PAYEASY, 500, key="000120261204" + "00000002", status="voided")
    # A debit of 12-03 credited two bank days later (12-07: the weekend skipped).
    ledger.pay(
        Channel.TRANSFER, 4000, key="1234567890:20261203:C1", transfer_date=date(2026, 12, 3)
    )
    with ledger.engine.connect() as conn:
        got = collected(
            conn,
            date(2026, 12, 1),
            date(2026, 12, 31),
            default_agency="default",
            payeasy_days=1,
            transfer_days=2,
        )
    assert [(c.network.value, c.agency, c.transfer_date, c.count, c.gross) for c in got] == [
        ("cvs", "default", date(2026, 12, 3), 2, 3000),
        ("payeasy", "", date(2026, 12, 7), 1, 3000),  # a payment of no bill: no 収納機関番号
        ("transfer", "1234567890", date(2026, 12, 7), 1, 4000),
    ]
    assert Remitter(Channel.CVS, "default", CVS, 30, 200).fees(2) == 260 + 26


def test_a_statement_is_matched_and_its_differences_become_items(ledger: Ledger) -> None:
    ledger.pay(Channel.CVS, 10_000, key=cvs_key(1), transfer_date=date(2026, 12, 3))
    ledger.pay(Channel.CVS, 20_000, key=cvs_key(2), transfer_date=date(2026, 12, 3))
    ledger.pay(Channel.CVS, 5_000, key=cvs_key(3), transfer_date=date(2026, 12, 4))
    ledger.pay(
        Channel.TRANSFER, 4_000, key="1234567890:20261201:C1", transfer_date=date(2026, 12, 1)
    )
    # The agency keeps 2 × 30 + 200 (+ 10 % tax) of 12-03: 30,000 − 286 = 29,714.
    summary = ledger.statement(
        [
            (date(2026, 12, 3), 29_714, CVS),  # matched
            (date(2026, 12, 3), 7_777, "ﾔﾏﾀﾞ ﾀﾛｳ"),  # nobody expected it
            (date(2026, 12, 4), 4_700, CVS),  # 5,000 − 253 = 4,747 expected: 47 short
            (date(2026, 12, 3), 4_000, "ｺｳｻﾞﾌﾘｶｴ"),  # no remitter named: matched by amount
        ],
        date(2026, 12, 1),
        date(2026, 12, 4),
    )
    assert summary["remittances"] == {"matched": 2, "difference": 1}
    assert sorted(ledger.items()) == [
        ("difference", "cvs", date(2026, 12, 4), 4_747, 4_700, "open"),
        ("unexpected", None, date(2026, 12, 3), 0, 7_777, "open"),
    ]
    with ledger.engine.begin() as conn:
        view = day_view(conn, ledger.config, date(2026, 12, 3), NOW)
    assert {(r["network"], r["state"], r["difference"]) for r in view["remittances"]} == {
        ("cvs", "matched", 0),
        ("transfer", "matched", 0),
    }
    matched = {d["amount"]: d["matched"] for d in view["deposits"]}
    assert matched == {
        29_714: {"network": "cvs", "agency": "default", "transfer_date": "2026-12-03"},
        7_777: None,
        4_000: {"network": "transfer", "agency": "1234567890", "transfer_date": "2026-12-03"},
    }
    assert view["matched"] is False  # the unexpected deposit

    # The same file again changes nothing; a CSV export of the same days adds no deposit.
    again = ledger.statement(
        [
            (date(2026, 12, 3), 29_714, CVS),
            (date(2026, 12, 3), 7_777, "ﾔﾏﾀﾞ ﾀﾛｳ"),
            (date(2026, 12, 4), 4_700, CVS),
            (date(2026, 12, 3), 4_000, "ｺｳｻﾞﾌﾘｶｴ"),
        ],
        date(2026, 12, 1),
        date(2026, 12, 4),
    )
    assert again["already_imported"] is True
    csv_export = (
        "勘定日,入金金額,出金金額,振込依頼人名\n"
        "2026/12/03,29714,,カ）コンビニシュウノウ\n"
        "2026/12/04,4700,,ｶ)ｺﾝﾋﾞﾆｼﾕｳﾉｳ\n"
    ).encode("cp932")
    csv_summary = ledger.import_(csv_export, "export.csv")
    assert (csv_summary["deposits"], csv_summary["new_deposits"]) == (2, 0)

    # A late 確報 of 12-04 raises what is owed; the difference item follows the money.
    ledger.pay(Channel.CVS, 1_000, key=cvs_key(4), transfer_date=date(2026, 12, 4))
    with ledger.engine.begin() as conn:
        reconcile_days(conn, ledger.config, date(2026, 12, 1), date(2026, 12, 10), NOW)
    assert ("difference", "cvs", date(2026, 12, 4), 5_714, 4_700, "open") in ledger.items()
    # The agency pays the rest on 12-04: the day matches, the item is closed as matched.
    ledger.statement([(date(2026, 12, 4), 1_014, CVS)], date(2026, 12, 4), date(2026, 12, 4), "2")
    assert ("difference", "cvs", date(2026, 12, 4), 5_714, 4_700, "resolved") in ledger.items()

    # Finance resolves the unexpected deposit with a note; a run does not reopen it.
    with ledger.engine.begin() as conn:
        (unexpected,) = list_items(conn, status=ItemStatus.OPEN)
        done = resolve_item(conn, unexpected.item_id, "customer paid by mistake; refunded", NOW)
        reconcile_days(conn, ledger.config, date(2026, 12, 1), date(2026, 12, 10), NOW)
        assert list_items(conn, status=ItemStatus.OPEN) == []
    assert done is not None and done.resolution == "customer paid by mistake; refunded"


def test_a_remittance_that_never_came_is_missing_once_a_statement_covers_its_day(
    ledger: Ledger,
) -> None:
    ledger.pay(Channel.CVS, 10_000, key=cvs_key(1), transfer_date=date(2026, 12, 8))
    with ledger.engine.begin() as conn:
        reconcile_days(conn, ledger.config, date(2026, 12, 1), date(2026, 12, 10), NOW)
    assert ledger.items() == []  # no statement covers 12-08 yet: waiting, not missing
    ledger.statement([], date(2026, 12, 7), date(2026, 12, 9))
    assert ledger.items() == [("missing", "cvs", date(2026, 12, 8), 9_747, 0, "open")]


def test_a_remittance_a_few_bank_days_late_is_one_late_item_and_the_month_reconciles(
    ledger: Ledger, tmp_path: Path
) -> None:
    # Pay-easy: the 消込 of Thursday 12-03 are owed on Friday 12-04 (payeasy_days 1), those of
    # Friday on Monday 12-07. CVS: the 確報 says 12-01 and 12-02.
    bill = ledger.payeasy_bill("58191")
    for serial, amount, day in [
        (1, 3_000, "20261203"),
        (2, 2_000, "20261203"),
        (3, 1_500, "20261204"),
    ]:
        ledger.pay(Channel.PAYEASY, amount, key=f"0001{day}{serial:08d}", bill_id=bill)
    ledger.pay(Channel.CVS, 10_000, key=cvs_key(1), transfer_date=date(2026, 12, 1))
    ledger.pay(Channel.CVS, 20_000, key=cvs_key(2), transfer_date=date(2026, 12, 2))
    on_time = [
        Remittance(date(2026, 12, 1), 9_747, CVS),  # 10,000 − (30 + 200) × 1.1
        Remittance(date(2026, 12, 2), 19_747, CVS),
        Remittance(date(2026, 12, 4), 5_000, MPN),
        Remittance(date(2026, 12, 7), 1_500, MPN),
    ]
    # The simulated bank: the MPN center remits Friday's money a bank day late (Monday, beside
    # Monday's own), the agency 12-01's three bank days late (Friday), and 12-02's four (12-08:
    # beyond [reconciliation] late_days = 3, the default).
    sent = delayed(on_time, MPN, date(2026, 12, 4), days=1)
    sent = delayed(sent, CVS, date(2026, 12, 1), days=3)
    sent = delayed(sent, CVS, date(2026, 12, 2), days=4)
    assert sorted((r.day, r.amount) for r in sent) == [
        (date(2026, 12, 4), 9_747),
        (date(2026, 12, 7), 1_500),
        (date(2026, 12, 7), 5_000),
        (date(2026, 12, 8), 19_747),
    ]
    folder = tmp_path / "bank"
    first = statement_file(
        folder, "S1.txt", [r for r in sent if r.day <= date(2026, 12, 4)],
        first_day=date(2026, 12, 1), last_day=date(2026, 12, 4),
    )  # fmt: skip
    summary = ledger.import_(first.read_bytes(), first.name)
    # 12-01's remittance came on 12-04: late, one item resolved as made; Friday's MPN money has
    # not come (yet): missing.
    assert summary["remittances"] == {"late": 1, "missing": 2}
    assert summary["open_items"] == 2
    assert sorted(ledger.items()) == [
        ("late", "cvs", date(2026, 12, 1), 9_747, 9_747, "resolved"),
        ("missing", "cvs", date(2026, 12, 2), 19_747, 0, "open"),
        ("missing", "payeasy", date(2026, 12, 4), 5_000, 0, "open"),
    ]
    with ledger.engine.connect() as conn:
        (missing,) = [i for i in list_items(conn) if i.network is Channel.PAYEASY]

    second = statement_file(
        folder, "S2.txt", [r for r in sent if r.day > date(2026, 12, 4)],
        first_day=date(2026, 12, 7), last_day=date(2026, 12, 9),
    )  # fmt: skip
    summary = ledger.import_(second.read_bytes(), second.name)
    assert summary["remittances"] == {"matched": 1, "difference": 1}  # 12-07, and 12-08's
    assert sorted(ledger.items()) == [
        ("difference", "cvs", date(2026, 12, 8), 0, 19_747, "open"),  # 4 bank days: too late
        ("late", "cvs", date(2026, 12, 1), 9_747, 9_747, "resolved"),
        ("late", "payeasy", date(2026, 12, 4), 5_000, 5_000, "resolved"),
        ("missing", "cvs", date(2026, 12, 2), 19_747, 0, "open"),
    ]
    with ledger.engine.begin() as conn:
        late = [i for i in list_items(conn) if i.network is Channel.PAYEASY]
        assert [(i.item_id, i.resolution) for i in late] == [
            (missing.item_id, "late: came on 2026-12-07, expected on 2026-12-04")
        ]
        friday = day_view(conn, ledger.config, date(2026, 12, 4), NOW)
        monday = day_view(conn, ledger.config, date(2026, 12, 7), NOW)
    (mpn,) = [r for r in friday["remittances"] if r["network"] == "payeasy"]
    assert (mpn["state"], mpn["expected"], mpn["received"], mpn["received_on"]) == (
        "late", 5_000, 5_000, "2026-12-07"
    )  # fmt: skip
    assert friday["matched"] is True
    assert [(r["state"], r["received"]) for r in monday["remittances"]] == [("matched", 1_500)]
    assert {d["amount"]: d["matched"]["transfer_date"] for d in monday["deposits"]} == {
        1_500: "2026-12-07",
        5_000: "2026-12-04",
    }
    assert monday["items"] == [] and monday["matched"] is True

    # Reconciled again, a day or the month, nothing moves; what is left open is the one
    # remittance beyond the window, on both its days (finance's to look at).
    with ledger.engine.begin() as conn:
        for day in (date(2026, 12, 4), date(2026, 12, 7), date(2026, 12, 8)):
            reconcile_days(conn, ledger.config, day, day, NOW)
        month = reconcile_days(conn, ledger.config, date(2026, 12, 1), date(2026, 12, 31), NOW)
        still = list_items(conn, status=ItemStatus.OPEN)
    assert len(ledger.items()) == 4
    assert sum(i.amount for i in month.open_items) == sum(i.amount for i in still) == 0
    assert sorted((i.kind.value, i.transfer_date) for i in still) == [
        ("difference", date(2026, 12, 8)),
        ("missing", date(2026, 12, 2)),
    ]


def test_an_unnamed_deposit_of_the_amount_pays_a_missing_remittance_late() -> None:
    owed = [Expected(Channel.PAYEASY, "58191", date(2026, 12, 4), 2, 5_000, 0)]
    came = [Deposit(date(2026, 12, 7), 5_000, "ﾀﾞﾚｶ", 1, deposit_id=1)]
    days = [(date(2026, 12, 1), date(2026, 12, 9))]
    on_time = reconcile(owed, came, [], days)
    assert [i.kind.value for i in on_time.items] == ["missing", "unexpected"]
    assert len(on_time.open_items) == 2

    def until(day: date) -> date:
        return add_business_days(day, 1)

    late = reconcile(owed, came, [], days, late_until=until)
    (row,) = late.remittances
    assert (row.state.value, row.received, row.received_on, row.deposit_ids) == (
        "late", 5_000, date(2026, 12, 7), (1,)
    )  # fmt: skip
    (item,) = late.items
    assert (item.kind.value, item.amount, item.deposit_id) == ("late", 0, 1)
    assert late.unexpected == () and late.open_items == ()
    # Another amount, or a day past the window, is not it.
    other = [Deposit(date(2026, 12, 7), 5_001, "ﾀﾞﾚｶ", 1, deposit_id=1)]
    assert len(reconcile(owed, other, [], days, late_until=until).open_items) == 2
    later = [Deposit(date(2026, 12, 8), 5_000, "ﾀﾞﾚｶ", 1, deposit_id=1)]
    assert len(reconcile(owed, later, [], days, late_until=until).open_items) == 2


def test_with_late_days_0_a_late_remittance_is_missing_and_a_difference(
    ledger: Ledger, tmp_path: Path, migrated_url: str
) -> None:
    path = tmp_path / "off.toml"
    off = RECON.replace("transfer_days = 2", "transfer_days = 2\nlate_days = 0")
    path.write_text(config_text(migrated_url, extra=off), encoding="utf-8")
    ledger = Ledger(ledger.engine, load_config(path), ledger.serial)
    assert ledger.config.reconciliation.late_days == 0
    ledger.pay(Channel.CVS, 10_000, key=cvs_key(1), transfer_date=date(2026, 12, 1))
    made = statement_file(
        tmp_path, "S.txt", [Remittance(date(2026, 12, 2), 9_747, CVS)],
        first_day=date(2026, 12, 1), last_day=date(2026, 12, 2),
    )  # fmt: skip
    ledger.import_(made.read_bytes(), made.name)
    assert sorted(ledger.items()) == [
        ("difference", "cvs", date(2026, 12, 2), 0, 9_747, "open"),
        ("missing", "cvs", date(2026, 12, 1), 9_747, 0, "open"),
    ]


def test_a_bad_statement_is_refused_whole_and_nothing_is_imported(ledger: Ledger) -> None:
    good = build_zengin(
        account=ACCOUNT,
        account_name="ｼﾕｳﾉｳｾﾝﾀ-",
        first_day=date(2026, 12, 1),
        last_day=date(2026, 12, 4),
        created=date(2026, 12, 4),
        deposits=[(date(2026, 12, 3), 1000, CVS), (date(2026, 12, 4), 2000, MPN)],
    )
    lines = good.split(b"\r\n")
    lines[2] = lines[2][:30] + b"?" + lines[2][31:]
    with pytest.raises(FileErrors) as caught:
        ledger.import_(b"\r\n".join(lines), "bad.txt")
    assert [(e.record, e.field) for e in caught.value.errors] == [(3, "amount")]
    other = good.replace(b"0007654321", b"0001111111", 1)
    with pytest.raises(FileErrors, match=r"not reconciliation\.account"):
        ledger.import_(other, "other.txt")
    with ledger.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(bank_statements)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(bank_deposits)).scalar() == 0


def test_the_command_refuses_a_bad_file_naming_the_line_and_field(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.app.admin.commands import main

    config = ledger.config.source
    assert config is not None
    bad = tmp_path / "export.csv"
    bad.write_text(
        "勘定日,入金金額,出金金額,振込依頼人名\n2026/12/03,1000,,ｶ)ｺﾝﾋﾞﾆ\n2026/12/33,5,,x\n"
    )
    assert main(["-c", str(config), "recon", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "export.csv refused, nothing applied: line 3, field 勘定日: not a calendar date" in err
    with ledger.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(bank_deposits)).scalar() == 0
    good = tmp_path / "good.csv"
    good.write_text("勘定日,入金金額,出金金額,振込依頼人名\n2026/12/03,1000,,ﾔﾏﾀﾞ\n")
    assert main(["-c", str(config), "recon", "import", str(good)]) == 0
    assert '"new_deposits": 1' in capsys.readouterr().out
    assert main(["-c", str(config), "recon", "open"]) == 0
    assert '"kind": "unexpected"' in capsys.readouterr().out
    assert main(["-c", str(config), "recon", "resolve", "--item", "rci_x", "--note", "n"]) == 1
    assert "--item: rci_x not found" in capsys.readouterr().err


@pytest_twisted.ensureDeferred
async def test_finance_resolves_an_item_through_the_admin_api_once_and_audited(
    ledger: Ledger, gateway: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.app.admin.commands import main

    ledger.pay(Channel.CVS, 10_000, key=cvs_key(1), transfer_date=date(2026, 12, 4))
    ledger.statement([(date(2026, 12, 3), 7_777, "ﾔﾏﾀﾞ ﾀﾛｳ")], date(2026, 12, 3), date(2026, 12, 4))
    operator, shop = admin_key(gateway), gateway.onboard("shop", "cvs")
    status, listed, _ = await gateway.request("GET", "/v1/admin/reconciliation", operator)
    assert status == 200
    items = {i["kind"]: i for i in listed["items"]}
    assert sorted(items) == ["missing", "unexpected"]
    unexpected, missing = items["unexpected"]["item_id"], items["missing"]["item_id"]
    path = f"/v1/admin/reconciliation/items/{unexpected}/resolve"
    note = {"note": "paid to us by mistake; refunded on 12-08"}

    # A biller's key, a body without a note, a blank note, an unknown field: refused, named.
    assert (await gateway.request("POST", path, shop, note))[0] == 403
    status, bad, _ = await gateway.request("POST", path, operator, {})
    assert status == 400 and [e["field"] for e in bad["errors"]] == ["note"]
    status, bad, _ = await gateway.request("POST", path, operator, {"note": "   "})
    assert status == 422 and [e["field"] for e in bad["errors"]] == ["note"]
    status, bad, _ = await gateway.request("POST", path, operator, {**note, "by": "me"})
    assert status == 400 and [e["field"] for e in bad["errors"]] == ["by"]
    status, bad, _ = await gateway.request("POST", path, operator, {"note": "x" * 301})
    assert status == 422 and [e["field"] for e in bad["errors"]] == ["note"]
    nobody = "/v1/admin/reconciliation/items/rci_" + "0" * 24 + "/resolve"
    status, bad, _ = await gateway.request("POST", nobody, operator, note)
    assert status == 404 and [e["field"] for e in bad["errors"]] == ["item_id"]
    assert "reconciliation item rci_000" in bad["detail"]
    status, _, _ = await gateway.request(
        "POST", "/v1/admin/reconciliation/items/42/resolve", operator, note
    )
    assert status == 404

    # Resolved once: the note kept, the item no longer open, one audit line with the key's id.
    status, done, _ = await gateway.request("POST", path, operator, note)
    assert status == 200, done
    assert (done["item_id"], done["status"], done["resolution"]) == (
        unexpected,
        "resolved",
        note["note"],
    )
    assert done["resolved_at"] is not None and done["amount"] == 7_777
    status, again, _ = await gateway.request("POST", path, operator, {"note": "again"})
    assert status == 409 and [e["field"] for e in again["errors"]] == ["item_id"]
    assert "already resolved" in again["detail"] and note["note"] in again["detail"]
    status, listed, _ = await gateway.request("GET", "/v1/admin/reconciliation", operator)
    assert [i["item_id"] for i in listed["items"]] == [missing]
    status, audit, _ = await gateway.request(
        "GET", "/v1/support/audit?action=reconciliation_item.resolve", operator
    )
    assert status == 200
    (line,) = audit["data"]
    assert (
        line["actor"].startswith("key:") and line["target"] == f"reconciliation_item:{unexpected}"
    )
    assert line["before"] == {"status": "open", "kind": "unexpected", "amount": 7_777}
    assert line["after"] == {"status": "resolved", "note": note["note"]}

    # The command line is the same writer: the resolved item is refused there too.
    config = str(ledger.config.source)
    args = ["-c", config, "recon", "resolve", "--item", unexpected, "--note", "n"]
    assert main(args) == 1
    assert f"--item: reconciliation item {unexpected} was already resolved" in (
        capsys.readouterr().err
    )
    assert main(["-c", config, "recon", "resolve", "--item", missing, "--note", " "]) == 1
    assert "--note: say what was done" in capsys.readouterr().err

    # An item the money closed (the agency paid late) cannot be resolved by hand.
    ledger.statement([(date(2026, 12, 4), 9_747, CVS)], date(2026, 12, 4), date(2026, 12, 4), "2")
    status, closed, _ = await gateway.request(
        "POST", f"/v1/admin/reconciliation/items/{missing}/resolve", operator, note
    )
    assert status == 409 and "(matched)" in closed["detail"]
    status, audit, _ = await gateway.request(
        "GET", "/v1/support/audit?action=reconciliation_item.resolve", operator
    )
    assert len(audit["data"]) == 1
