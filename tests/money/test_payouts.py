"""Payouts against the real store (SQLite, or PostgreSQL with GATEWAY_TEST_DATABASE_URL): payout
accounts versioned and sealed, payout files that carry every settlement once, returns that
reopen the amount and carry it into the next settlement (gateway/money/payouts.py)."""

from __future__ import annotations

import json
import re
import threading
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from gateway import ids
from gateway.billing.retention import PurgeReport, purge_payout_accounts_batch
from gateway.config.payouts import PayoutsConfig
from gateway.errors import Conflict, FileErrors, InvalidRequest, NotFound
from gateway.fee_model import LineKind, PayoutState, Settlement
from gateway.infra.secretbox import SecretBox
from gateway.mappers.zengin.payouts import PayoutFile, build_payout_file, parse_payout_file
from gateway.model import JST, Channel
from gateway.money.payouts import (
    AccountTerms,
    Prepared,
    account_json,
    apply_returns,
    mark_paid_out,
    parse_account_body,
    parse_account_spec,
    payout_bytes,
    prepare_payout,
    set_account,
    write_pending,
)
from gateway.money.settlement import settlement_json
from gateway.money.statements import statement_pdf
from gateway.render.pdf import yen
from gateway.store.billers import create_biller, update_biller
from gateway.store.events import list_events
from gateway.store.payouts import account_versions, list_payout_files, pending_payout_files
from gateway.store.schema import data_purges, payout_accounts, payout_items, settlements
from gateway.store.settlements import get_settlement
from tests.money.test_settlement import World, at, standard_plan, world
from tests.render.test_receipts import text_of
from tests.render.test_receipts import write as write_pdf

__all__ = ["world"]  # the fixture, imported for the tests below

BOX = SecretBox(b"k" * 32)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=JST)
TODAY = NOW.date()
DAY = date(2026, 12, 3)  # the November settlements' payout date (T+3 bank days)


def payouts_config(tmp_path: Path) -> PayoutsConfig:
    return PayoutsConfig(
        consignor_code="1234567890",
        consignor_name="ｷﾖｳﾄﾞｳｾﾝﾀ-",
        bank_code="0001",
        branch_code="001",
        account_type="1",
        account_number="1234567",
        outbox=tmp_path / "outbox",
        inbox=tmp_path / "inbox",
        at=None,
        poll_interval=1.0,
        separator=b"\r\n",
        eof_mark=False,
        check_bank_master=True,
    )


@pytest.fixture
def config(tmp_path: Path) -> PayoutsConfig:
    return payouts_config(tmp_path)


def render(s: Settlement) -> dict[str, Any]:
    return settlement_json(s, lines=False)


def terms(number: str = "7654321", holder: str = "ｶ)ｱｸﾒ") -> AccountTerms:
    return parse_account_spec(f"0005-135-1-{number}", holder, check_bank_master=True)


def set_acct(world: World, biller: str, day: date = TODAY, **kw: str) -> Any:
    with world.engine.begin() as conn:
        return set_account(conn, BOX, biller, terms(**kw), day, TODAY, NOW)


def request(world: World, config: PayoutsConfig, day: date = DAY) -> Prepared:
    with world.engine.begin() as conn:
        return prepare_payout(conn, config, day, NOW, ids.new_id, render)


def write(world: World, config: PayoutsConfig) -> list[Any]:
    with world.engine.begin() as conn:
        return write_pending(conn, config, BOX, NOW)


def november(world: World, biller: str, amounts: list[int]) -> Settlement:
    """A November settlement of ``biller`` with a confirmed payment of each amount."""
    world.plan(standard_plan(), biller)
    for n, amount in enumerate(amounts):
        world.confirm(world.bill(f"{biller}-{n}", amount, biller=biller), at(11, 5), at(11, 8))
    made = world.settle(date(2026, 12, 1), biller)
    assert made is not None and made.totals.payout > 0
    return made


def stored(world: World, s: Settlement) -> Settlement:
    with world.engine.connect() as conn:
        found = get_settlement(conn, s.biller_id, s.settlement_id)
    assert found is not None
    return found


def the_file(config: PayoutsConfig, name: str) -> PayoutFile:
    return parse_payout_file((config.outbox / name).read_bytes(), source=name)


# --- accounts --------------------------------------------------------------------------------


def test_a_payout_account_is_checked_sealed_at_rest_and_versioned(world: World) -> None:
    stored_account, created = set_acct(world, "acme", holder="ｶﾌﾞｼｷｶﾞｲｼｬ ｱｸﾒ")
    assert created and stored_account.masked.masked_number == "****321"
    assert (stored_account.bank_name, stored_account.branch_name) == ("ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ", "ｼﾌﾞﾔ")
    with world.engine.connect() as conn:
        raw = conn.execute(text("SELECT account_number, holder_kana FROM payout_accounts")).one()
    assert "7654321" not in raw[0] and "ｱｸﾒ" not in raw[1]  # sealed, not in the database
    assert account_json(stored_account, BOX)["holder_kana"] == "ｶﾌﾞｼｷｶﾞｲｼﾔ ｱｸﾒ"
    assert account_json(stored_account)["holder_kana"] is None  # without the key
    # a later version; the same date again replaces a version no payout file has used
    set_acct(world, "acme", date(2026, 12, 10), number="1111111")
    again, created = set_acct(world, "acme", date(2026, 12, 10), number="2222222")
    assert not created and again.masked.masked_number == "****222"
    with world.engine.connect() as conn:
        versions = account_versions(conn, "acme")
    assert [(v.effective_from, v.number_hint) for v in versions] == [
        (TODAY, "321"),
        (date(2026, 12, 10), "222"),
    ]
    # a value copied onto another row does not open there
    with world.engine.begin() as conn:
        conn.execute(
            payout_accounts.update()
            .where(payout_accounts.c.id == versions[1].account_id)
            .values(account_number=versions[0].sealed_number)
        )
        copied = account_versions(conn, "acme")[1]
    with pytest.raises(ValueError, match="does not decrypt"):
        BOX.unseal(copied.sealed_number, f"payout_account:acme:{copied.effective_from}")


def test_a_bad_payout_account_is_refused_naming_the_field(world: World) -> None:
    with pytest.raises(InvalidRequest) as bad:
        parse_account_spec("0005-999-1-1234567", "ｱｸﾒ", check_bank_master=True)
    assert [e.field for e in bad.value.errors] == ["account"]
    with pytest.raises(InvalidRequest) as bad:
        parse_account_spec("5-135-1-1234567", "東京ガス", check_bank_master=True)
    assert sorted(e.field for e in bad.value.errors) == ["account", "holder_kana"]
    with pytest.raises(InvalidRequest) as bad:
        parse_account_body(
            {
                "bank_code": "9999",
                "branch_code": "001",
                "account_type": "3",
                "account_number": "1",
                "holder_kana": "ｱ",
            },
            check_bank_master=True,
        )
    assert sorted(e.field for e in bad.value.errors) == ["account_type", "bank_code"]
    with pytest.raises(InvalidRequest, match="effective_from"):
        set_acct(world, "acme", date(2026, 11, 30))  # before today
    with pytest.raises(NotFound):
        set_acct(world, "nobody")


# --- payout files ----------------------------------------------------------------------------


def test_a_payout_file_carries_each_settlement_once_with_its_payout(
    world: World, config: PayoutsConfig
) -> None:
    acme = november(world, "acme", [5_400, 60_000])
    other = november(world, "other", [3_000])
    set_acct(world, "acme")
    set_acct(world, "other", number="1234", holder="ｱﾀﾞﾙ")

    prepared = request(world, config)
    assert prepared.file is not None and prepared.skipped == {}
    assert prepared.file.file_name == "PAYOUT21_1234567890_20261203_01.txt"
    assert (prepared.file.records, prepared.file.total) == (
        2,
        acme.totals.payout + other.totals.payout,
    )
    assert stored(world, acme).payout_status.state is PayoutState.PAYOUT_REQUESTED
    assert [f.file_name for f in write(world, config)] == [prepared.file.file_name]

    parsed = the_file(config, prepared.file.file_name)
    assert parsed.header.requester_code == "1234567890" and parsed.header.transfer_mmdd == "1203"
    by_amount = {t.amount: t for t in parsed.transfers}
    assert set(by_amount) == {acme.totals.payout, other.totals.payout}
    assert by_amount[other.totals.payout].account_number == "0001234"
    assert by_amount[other.totals.payout].payee_name == "ｱﾀﾞﾙ"
    assert by_amount[acme.totals.payout].account_number == "7654321"
    assert (parsed.trailer.count, parsed.trailer.total) == (2, prepared.file.total)
    status = stored(world, acme).payout_status
    assert status.transfer_date == DAY and status.file_name == prepared.file.file_name
    assert status.account is not None and status.account.masked_number == "****321"

    # the same date again: nothing left to carry, no second file
    assert request(world, config).file is None
    # a settlement made since: a second file for the date carries it alone
    with world.engine.begin() as conn:
        create_biller(
            conn,
            biller_id="late",
            name="late 株式会社",
            kana="ﾚｲﾄ",
            channels=frozenset({Channel.CVS}),
            payeasy_institution_code=None,
            now=NOW,
        )
    late = november(world, "late", [7_000])
    set_acct(world, "late", number="999")
    second = request(world, config)
    assert second.file is not None and second.file.sequence == 2 and second.file.records == 1
    write(world, config)
    (only,) = the_file(config, second.file.file_name).transfers
    assert only.amount == late.totals.payout
    with world.engine.connect() as conn:
        carried = conn.execute(select(func.count()).select_from(payout_items)).scalar_one()
        events = list_events(conn, "acme", 0, 100)
    assert carried == 3
    requested = [e for e in events if e.type == "settlement.payout_requested"]
    assert [e.data["settlement"]["payout_state"] for e in requested] == ["payout_requested"]


def test_a_biller_without_an_account_waits_and_a_date_before_the_payout_carries_nothing(
    world: World, config: PayoutsConfig
) -> None:
    acme = november(world, "acme", [5_400])
    early = request(world, config, date(2026, 12, 2))  # before acme's payout date
    assert early.file is None and early.skipped == {}
    waiting = request(world, config)
    assert waiting.file is None
    assert waiting.skipped == {"acme": "no payout account in force on 2026-12-03"}
    set_acct(world, "acme", date(2026, 12, 4))  # from after the transfer date: not yet
    assert request(world, config).file is None
    assert stored(world, acme).payout_status.state is PayoutState.SETTLED
    later = request(world, config, date(2026, 12, 4))
    assert later.file is not None and later.file.total == acme.totals.payout


def test_a_file_left_pending_by_a_crash_is_written_again_with_the_same_bytes(
    world: World, config: PayoutsConfig
) -> None:
    november(world, "acme", [5_400])
    set_acct(world, "acme")
    prepared = request(world, config)
    assert prepared.file is not None
    with world.engine.begin() as conn:  # the file written, then the transaction lost
        first = payout_bytes(conn, config, BOX, prepared.file)
        write_pending(conn, config, BOX, NOW)
        conn.rollback()
    assert (config.outbox / prepared.file.file_name).read_bytes() == first
    with world.engine.connect() as conn:
        assert [f.file_name for f in pending_payout_files(conn)] == [prepared.file.file_name]
    (config.outbox / prepared.file.file_name).unlink()  # the bank took it meanwhile
    assert [f.file_name for f in write(world, config)] == [prepared.file.file_name]
    assert (config.outbox / prepared.file.file_name).read_bytes() == first
    assert write(world, config) == []
    # an account changed since does not change what was requested
    set_acct(world, "acme", date(2026, 12, 2), number="5555555")
    with world.engine.connect() as conn:
        (written,) = list_payout_files(conn)
        assert written.status == "written"
        assert payout_bytes(conn, config, BOX, written) == first


def test_a_version_a_payout_file_used_cannot_be_changed(
    world: World, config: PayoutsConfig
) -> None:
    november(world, "acme", [5_400])
    set_acct(world, "acme")
    request(world, config)
    with pytest.raises(Conflict, match="used by a payout file"):
        set_acct(world, "acme", number="1")


def test_paid_out_once_the_transfer_date_has_come(world: World, config: PayoutsConfig) -> None:
    acme = november(world, "acme", [5_400])
    set_acct(world, "acme")
    request(world, config)
    with world.engine.begin() as conn:
        assert mark_paid_out(conn, DAY, NOW, ids.new_id, render) == 0  # not written yet
    write(world, config)
    with world.engine.begin() as conn:
        assert mark_paid_out(conn, date(2026, 12, 2), NOW, ids.new_id, render) == 0
        assert mark_paid_out(conn, DAY, NOW, ids.new_id, render) == 1
        assert mark_paid_out(conn, DAY, NOW, ids.new_id, render) == 0
        events = [e.type for e in list_events(conn, "acme", 0, 100)]
    assert stored(world, acme).payout_status.state is PayoutState.PAID_OUT
    assert events.count("settlement.paid_out") == 1


# --- returns ---------------------------------------------------------------------------------


def returns_of(config: PayoutsConfig, name: str, amounts: set[int], code: str = "1") -> bytes:
    from dataclasses import replace

    parsed = the_file(config, name)
    back = [replace(t, return_code=code) for t in parsed.transfers if t.amount in amounts]
    return build_payout_file(parsed.header, back)


def apply(world: World, config: PayoutsConfig, data: bytes, name: str = "RETURN_1") -> Any:
    with world.engine.begin() as conn:
        return apply_returns(
            conn, config, parse_payout_file(data, source=name), name, NOW, ids.new_id, render
        )


def test_a_returned_transfer_reopens_the_amount_into_the_next_settlement(
    world: World, config: PayoutsConfig, tmp_path: Path
) -> None:
    acme = november(world, "acme", [5_400])
    other = november(world, "other", [3_000])
    set_acct(world, "acme")
    set_acct(world, "other", number="1234")
    prepared = request(world, config)
    assert prepared.file is not None
    write(world, config)
    with world.engine.begin() as conn:
        mark_paid_out(conn, DAY, NOW, ids.new_id, render)
    paid_pdf = text_of(write_pdf(tmp_path, statement_pdf(stored(world, acme), "ACME"), "p.pdf"))
    shown = " ".join(paid_pdf.split())
    assert "振込状況 振込済（2026年12月3日 ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ ｼﾌﾞﾔ 普通 ****321）" in shown
    data = returns_of(config, prepared.file.file_name, {acme.totals.payout})

    summary = apply(world, config, data)
    assert (summary["records"], summary["returned"]) == (1, 1)
    assert summary["settlements"] == [acme.settlement_id]
    status = stored(world, acme).payout_status
    assert status.state is PayoutState.PAYOUT_RETURNED and status.return_code == "1"
    assert stored(world, other).payout_status.state is PayoutState.PAID_OUT
    doc = settlement_json(stored(world, acme))
    assert doc["payout_transfer"]["return_reason"].startswith("口座なし")
    again = apply(world, config, data)  # the same file twice changes nothing
    assert (again["returned"], again["already_returned"]) == (0, 1)

    # December: the returned payout comes back as its own line, added to the payout
    world.confirm(world.bill("acme-dec", 2_000), at(12, 5), at(12, 8))
    december = world.settle(date(2027, 1, 1))
    assert december is not None
    (line,) = [x for x in december.lines if x.kind is LineKind.RETURNED_PAYOUT]
    assert (line.quantity, line.amount) == (1, acme.totals.payout)
    assert december.totals.returned_in == acme.totals.payout
    assert sum(x.amount for x in december.lines) == december.totals.payout
    assert stored(world, acme).payout_status.carried_into == december.settlement_id
    assert world.settle(date(2027, 2, 1)) is not None  # January: nothing carried twice
    returned_pdf = text_of(write_pdf(tmp_path, statement_pdf(stored(world, acme), "ACME"), "n.pdf"))
    assert re.search(
        rf"振込状況\s+振込不能（口座なし）・{december.settlement_id} で再振込", returned_pdf
    )
    december_pdf = text_of(
        write_pdf(tmp_path, statement_pdf(stored(world, december), "A"), "d.pdf")
    )
    assert re.search(rf"前回振込不能分\s+{yen(acme.totals.payout)}", december_pdf)
    assert "振込状況 振込依頼前" in " ".join(december_pdf.split())
    with world.engine.connect() as conn:
        returned_in = conn.execute(
            select(func.sum(settlements.c.returned_in)).where(settlements.c.biller_id == "acme")
        ).scalar_one()
        types = [e.type for e in list_events(conn, "acme", 0, 100)]
    assert returned_in == acme.totals.payout
    assert types.count("settlement.payout_returned") == 1

    # the account it went to is still in force: acme is held, its December payout waits
    held = request(world, config, date(2027, 1, 6))
    assert held.file is None and "returned" in held.skipped["acme"]
    set_acct(world, "acme", date(2027, 1, 5), number="7654322")  # the corrected account
    fixed = request(world, config, date(2027, 1, 6))
    assert fixed.file is not None
    write(world, config)
    (transfer,) = the_file(config, fixed.file.file_name).transfers
    assert transfer.amount == december.totals.payout and transfer.account_number == "7654322"


def test_a_returns_file_that_is_not_ours_is_refused_whole(
    world: World, config: PayoutsConfig
) -> None:
    acme = november(world, "acme", [5_400])
    set_acct(world, "acme")
    prepared = request(world, config)
    assert prepared.file is not None
    write(world, config)
    good = returns_of(config, prepared.file.file_name, {acme.totals.payout})
    parsed = parse_payout_file(good)
    from dataclasses import replace

    stranger = build_payout_file(
        parsed.header, [replace(parsed.transfers[0], customer_code1="0000099999")]
    )
    wrong_amount = build_payout_file(parsed.header, [replace(parsed.transfers[0], amount=1)])
    other_center = build_payout_file(
        replace(parsed.header, requester_code="9999999999"), parsed.transfers
    )
    payout_itself = (config.outbox / prepared.file.file_name).read_bytes()
    for data, field in [
        (stranger, "customer_code1"),
        (wrong_amount, "amount"),
        (other_center, "requester_code"),
        (payout_itself, "return_code"),
    ]:
        with pytest.raises(FileErrors) as refused:
            apply(world, config, data)
        assert field in {e.field for e in refused.value.errors}
    assert stored(world, acme).payout_status.state is PayoutState.PAYOUT_REQUESTED


def test_two_requests_at_once_make_one_file(world: World, config: PayoutsConfig) -> None:
    """Two daemons (threads here) request the same date together: the settlements are locked
    by the first, the second finds them taken (PostgreSQL waits; SQLite has one writer)."""
    for biller in ("acme", "other"):
        november(world, biller, [5_400, 1_000])
        set_acct(world, biller)
    results: list[Prepared] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        try:
            results.append(request(world, config))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    made = [r.file for r in results if r.file is not None]
    assert len(made) == 1 and made[0].records == 2
    with world.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(payout_items)).scalar_one() == 2


# --- retention -------------------------------------------------------------------------------


def test_payout_accounts_are_purged_only_once_the_biller_has_ended(
    world: World, config: PayoutsConfig
) -> None:
    """A biller's payout accounts go with the retention run once it has ended: suspended since
    before the cutoff, and none of its settlements owes it money."""
    acme = november(world, "acme", [5_400])
    set_acct(world, "acme")
    set_acct(world, "acme", date(2026, 12, 20), number="1111111")
    set_acct(world, "other", number="2222222")
    cutoff = datetime(2027, 6, 1, tzinfo=JST)

    def run() -> PurgeReport:
        with world.engine.begin() as conn:
            report = PurgeReport(ran_at=cutoff, cutoff=cutoff, months=3)
            return purge_payout_accounts_batch(conn, report, 0, 100)[0]

    assert run().payout_accounts == 0  # nobody has ended
    with world.engine.begin() as conn:
        update_biller(conn, "acme", {"suspended_at": datetime(2027, 1, 5, tzinfo=JST)})
        update_biller(conn, "other", {"suspended_at": datetime(2027, 1, 5, tzinfo=JST)})
    # acme's November payout is in no file yet: it still owes acme money
    report = run()
    assert report.payout_accounts == 1 and report.purge_id is not None  # other's only
    request(world, config)
    write(world, config)
    assert stored(world, acme).payout_status.state is PayoutState.PAYOUT_REQUESTED
    assert run().payout_accounts == 0  # requested: not paid yet
    with world.engine.begin() as conn:
        mark_paid_out(conn, DAY, NOW, ids.new_id, render)
    report = run()
    assert report.payout_accounts == 2
    with world.engine.connect() as conn:
        versions = account_versions(conn, "acme")
        raw = conn.execute(text("SELECT account_number, holder_kana FROM payout_accounts")).all()
        detail = json.loads(
            conn.execute(
                select(data_purges.c.detail).where(data_purges.c.id == report.purge_id)
            ).scalar_one()
        )
    assert all(v.purged for v in versions) and set(raw) == {("", "")}
    assert detail["payout_accounts"] == 2
    assert [account_json(v, BOX)["holder_kana"] for v in versions] == [None, None]
    assert stored(world, acme).payout_status.account is not None  # ****321 still shown
    assert run().payout_accounts == 0
