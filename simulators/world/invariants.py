"""What must hold after every seed, once the world has calmed down and drained.

Each check reads the database as it was left (the daemon's last life is dead by then) and the
simulated peers' own records, and returns the breaks it found, one readable line each:

1. every message a network was told was taken (a link ``AK 00``, a file moved to ``done/``, an
   accepted CSV poll, an MPN ``0000``, a transfer result applied) is stored exactly once, and no
   message is stored twice;
2. the ledger is what the networks believe they paid: every payment they made, with its amount
   and fate (pending, confirmed, voided), and no other — unless the gateway recorded an
   anomaly for it (a contradiction it was told about, kept for an operator);
3. a bill is double-paid exactly when two of its live payments pay it, and then all of them
   but one carry an open double-payment refund case; one paying payment carries none;
4. no transfer was requested for a bill that had a live payment when the request was made;
5. every settlement's lines add up to its payout, the payments it claims add up to what it
   says it collected and are as many as it counted, and no confirmed payment of a period that
   was settled was left out;
6. each biller's events feed is gap-free: sequence numbers 1..last, each once;
7. every event was delivered at least once to every endpoint registered for it before it
   happened (``after_seq``) whose event types it matches;
8. for every MPN day that was closed, the ledger's counters now equal the center's figures.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from gateway.fee_model import jst_midnight
from gateway.mappers.cvs.mapper import RecordKind
from gateway.model import transfer_key
from gateway.store.mpn import day_counters
from gateway.store.schema import (
    anomalies,
    billers,
    bills,
    collection_messages,
    events,
    mpn_day_closes,
    payments,
    refund_cases,
    settlement_lines,
    settlements,
    webhook_endpoints,
    zengin_request_items,
    zengin_requests,
)
from simulators.cvs import Fate

if TYPE_CHECKING:
    from simulators.world.world import World

KINDS = {
    RecordKind.PRELIMINARY.value: "preliminary",
    RecordKind.CONFIRMATION.value: "confirmation",
    RecordKind.VOID.value: "void",
}
LIVE = ("pending", "confirmed")
MAX_BREAKS = 20


def _short(key: str) -> str:
    return key if len(key) <= 24 else f"…{key[-24:]}"


class Db:
    """The tables the checks read, loaded once."""

    def __init__(self, engine: Engine) -> None:
        with engine.connect() as conn:

            def rows(table: Any) -> list[Any]:
                return list(conn.execute(select(table)).all())

            self.messages = [
                r
                for r in conn.execute(
                    select(
                        collection_messages.c.channel,
                        collection_messages.c.kind,
                        collection_messages.c.event_key,
                        collection_messages.c.outcome,
                    )
                ).all()
            ]
            self.payments = rows(payments)
            self.bills = rows(bills)
            self.cases = rows(refund_cases)
            self.anomalies = rows(anomalies)
            self.events = list(
                conn.execute(
                    select(events.c.event_id, events.c.biller_id, events.c.seq, events.c.type)
                ).all()
            )
            self.billers = rows(billers)
            self.endpoints = rows(webhook_endpoints)
            self.settlements = rows(settlements)
            self.lines = rows(settlement_lines)
            self.requests = rows(zengin_requests)
            self.items = rows(zengin_request_items)
            self.closes = rows(mpn_day_closes)
            self.counters = {
                c.business_date: day_counters(conn, c.business_date) for c in self.closes
            }


def check_world(world: World) -> list[str]:
    db = Db(world.engine)
    breaks: list[str] = []
    for check in (
        _stored_once,
        _cvs_ledger,
        _mpn_ledger,
        _transfer_ledger,
        _double_payments,
        _transfers_requested,
        _settlements,
        _events_feed,
        _webhooks,
        _day_closes,
        _files,
    ):
        found = check(world, db)
        breaks += found[:MAX_BREAKS]
        if len(found) > MAX_BREAKS:
            breaks.append(f"... and {len(found) - MAX_BREAKS} more like the last")
    world.stats["anomalies"] += len(db.anomalies)
    world.stats["payments"] += len(db.payments)
    for channel, n in Counter(p.channel for p in db.payments).items():
        world.stats[f"payments_{channel}"] += n
    world.stats["transfer_results"] += len(world.bank.entries())
    world.stats["messages"] += len(db.messages)
    world.stats["settlements"] += len(db.settlements)
    world.stats["events"] += len(db.events)
    world.stats["double_paid_bills"] += sum(1 for b in db.bills if b.double_paid)
    world.stats["refund_cases"] += len(db.cases)
    return breaks


# 1 ---------------------------------------------------------------------------------------------


def _taken(world: World) -> set[tuple[str, str, str]]:
    """(channel, kind, event key) of every message a network was told was taken."""
    taken: set[tuple[str, str, str]] = set()
    agency = world.agency
    done = world.cvs_inbox / "done"
    done_names = {p.name for p in done.iterdir()} if done.exists() else set()
    delivered = set(agency.acked) | set(agency.csv_accepted)
    for name, _, records in agency.files:
        if name in done_names:
            delivered |= set(records)
    taken |= {("cvs", KINDS[kind], key) for kind, key in delivered if kind in KINDS}
    for p in world.center.payments.values():
        if p.answered:
            taken.add(("payeasy", "preliminary", p.key))
        if p.cancelled:
            taken.add(("payeasy", "void", p.key))
    return taken


def _stored_once(world: World, db: Db) -> list[str]:
    breaks = []
    stored = Counter((m.channel, m.kind, m.event_key) for m in db.messages)
    for key, n in sorted(stored.items()):
        if n > 1:
            breaks.append(f"message {key[0]} {key[1]} {_short(key[2])} stored {n} times")
    for key in sorted(_taken(world)):
        if stored[key] == 0:
            breaks.append(
                f"message {key[0]} {key[1]} {_short(key[2])} was acknowledged but is not stored"
            )
    return breaks


# 2 ---------------------------------------------------------------------------------------------


def _explained(db: Db) -> set[tuple[str, str]]:
    return {(a.channel, a.event_key) for a in db.anomalies}


def _cvs_ledger(world: World, db: Db) -> list[str]:
    breaks = []
    agency = world.agency
    explained = _explained(db)
    ours = [p for p in db.payments if p.channel == "cvs"]
    by_key = defaultdict(list)
    for p in ours:
        by_key[p.event_key].append(p)
    taken = _taken(world)
    for key, payment in agency.model.payments.items():
        found = by_key.get(key, [])
        made = ("cvs", "preliminary", key) in taken or ("cvs", "confirmation", key) in taken
        if not found:
            if made:
                breaks.append(f"cvs payment {_short(key)} ({payment.bill_no}) is not in the ledger")
            else:
                world.stats["cvs_not_delivered"] += 1
                breaks.append(f"cvs payment {_short(key)} ({payment.bill_no}) never delivered")
            continue
        if len(found) > 1:
            breaks.append(f"cvs payment {_short(key)} is in the ledger {len(found)} times")
        row = found[0]
        voided_told = ("cvs", "void", key) in taken
        want = {
            Fate.PENDING: "pending",
            Fate.CONFIRMED: "confirmed",
            Fate.VOIDED: "voided" if voided_told else "pending",
        }[payment.fate]
        if row.amount != payment.amount or row.status != want:
            if ("cvs", key) in explained:
                world.stats["explained_by_anomaly"] += 1
                continue
            breaks.append(
                f"cvs payment {_short(key)} ({payment.bill_no}): the agency says {want} "
                f"{payment.amount} yen, the ledger {row.status} {row.amount} yen"
            )
    for p in ours:
        if p.event_key not in agency.model.payments:
            breaks.append(f"cvs payment {p.payment_id} ({_short(p.event_key)}) was never made")
    return breaks


def _mpn_ledger(world: World, db: Db) -> list[str]:
    breaks = []
    explained = _explained(db)
    by_key = {p.event_key: p for p in db.payments if p.channel == "payeasy"}
    for paid in world.center.payments.values():
        row = by_key.get(paid.key)
        if paid.answered:
            if row is None:
                breaks.append(
                    f"MPN 消込 {paid.key} ({paid.bill_no}) answered 0000, not in the ledger"
                )
                continue
            want_live = not paid.cancelled
            if row.amount != paid.notice.amount or (row.status in LIVE) != want_live:
                if ("payeasy", paid.key) in explained:
                    world.stats["explained_by_anomaly"] += 1
                    continue
                breaks.append(
                    f"MPN 消込 {paid.key}: the center says "
                    f"{'voided' if paid.cancelled else 'paid'} {paid.notice.amount} yen, "
                    f"the ledger {row.status} {row.amount} yen"
                )
        elif paid.refused is not None and row is not None:
            breaks.append(f"MPN 消込 {paid.key} was refused {paid.refused} but is in the ledger")
    for key in by_key:
        if not any(p.key == key for p in world.center.payments.values()):
            breaks.append(f"MPN payment {key} was never made")
    return breaks


def _transfer_ledger(world: World, db: Db) -> list[str]:
    breaks = []
    items = {(i.consignor_code, i.customer_number, f"{i.debit_date:%m%d}"): i for i in db.items}
    by_key = {p.event_key: p for p in db.payments if p.channel == "transfer"}
    expected: set[str] = set()
    for entry in world.bank.entries():
        item = items.get((entry.biller_code, entry.customer_number, entry.debit_mmdd))
        if item is None:
            breaks.append(f"the bank debited {entry.customer_number} of no request item")
            continue
        key = transfer_key(item.consignor_code, item.debit_date, item.customer_number)
        row = by_key.get(key)
        if entry.result_code == "0":
            expected.add(key)
            if row is None:
                breaks.append(f"transfer {key} debited by the bank, not in the ledger")
            elif row.amount != entry.amount or row.status != "confirmed":
                breaks.append(
                    f"transfer {key}: bank {entry.amount} yen, ledger {row.status} {row.amount}"
                )
        elif row is not None:
            breaks.append(f"transfer {key} failed ({entry.result_code}) but is in the ledger")
    for key in by_key:
        if key not in expected:
            breaks.append(f"transfer payment {key} was never debited")
    return breaks


# 3 ---------------------------------------------------------------------------------------------


def _double_payments(world: World, db: Db) -> list[str]:
    breaks = []
    cases = defaultdict(list)
    for c in db.cases:
        cases[c.payment_id].append(c)
    by_bill = defaultdict(list)
    for p in db.payments:
        if p.bill_id is not None:
            by_bill[p.bill_id].append(p)
    for bill in db.bills:
        paying = [
            p
            for p in by_bill[bill.id]
            if p.status in LIVE and all(c.reason == "double_payment" for c in cases[p.payment_id])
        ]
        open_cases = [
            c
            for p in paying
            for c in cases[p.payment_id]
            if c.reason == "double_payment" and c.status == "open"
        ]
        name = f"bill {bill.biller_id}/{bill.bill_no}"
        if bool(bill.double_paid) != (len(paying) >= 2):
            breaks.append(
                f"{name}: double_paid is {bool(bill.double_paid)} "
                f"with {len(paying)} paying payment(s)"
            )
        if len(paying) >= 2 and len(open_cases) != len(paying) - 1:
            breaks.append(
                f"{name}: {len(paying)} paying payments, "
                f"{len(open_cases)} open double-payment case(s)"
            )
        if len(paying) < 2 and open_cases:
            breaks.append(f"{name}: paid once, yet a double-payment case is open")
    status = {p.payment_id: p.status for p in db.payments}
    for payment_id, found in cases.items():
        for c in found:
            if c.status == "open" and status.get(payment_id) == "voided":
                breaks.append(
                    f"payment {payment_id} was voided by its network (the money went back), "
                    f"yet its {c.reason} refund case {c.case_id} is open"
                )
        reasons = Counter(c.reason for c in found)
        for reason, n in reasons.items():
            if n > 1:
                breaks.append(f"payment {payment_id}: {n} refund cases for {reason}")
    return breaks


# 4 ---------------------------------------------------------------------------------------------


def _transfers_requested(world: World, db: Db) -> list[str]:
    """No debit is requested for a bill another channel had already paid when the request's
    transaction began (commit order, as :meth:`World._watch_requests` saw it)."""
    breaks = []
    requests = {r.id: r for r in db.requests}
    by_bill = defaultdict(list)
    for p in db.payments:
        if p.bill_id is not None and p.channel != "transfer":
            by_bill[p.bill_id].append(p)
    for item in db.items:
        saw = world.request_saw.get(item.request_id)
        if saw is not None:
            if item.bill_id in saw:
                paid = ", ".join(p.payment_id for p in by_bill[item.bill_id])
                breaks.append(
                    f"transfer of bill #{item.bill_id} requested (request #{item.request_id}) "
                    f"after payment {paid} paid it"
                )
            continue
        # a request made outside a zengin.request job: judge by the timestamps
        at = requests[item.request_id].created_at
        for p in by_bill[item.bill_id]:
            live_then = p.created_at < at and (p.voided_at is None or p.voided_at > at)
            if live_then:
                breaks.append(
                    f"transfer of bill #{item.bill_id} requested at {at:%Y-%m-%d %H:%M:%S} "
                    f"while payment {p.payment_id} ({p.channel}) paid it"
                )
    return breaks


# 5 ---------------------------------------------------------------------------------------------


def _settlements(world: World, db: Db) -> list[str]:
    breaks = []
    lines: defaultdict[str, int] = defaultdict(int)
    for line in db.lines:
        lines[line.settlement_id] += int(line.amount)
    claimed: dict[str, list[Any]] = defaultdict(list)
    for p in db.payments:
        if p.settlement_id is not None:
            claimed[p.settlement_id].append(p)
            if p.status != "confirmed":
                breaks.append(f"payment {p.payment_id} is {p.status} yet settled")
    last_end: dict[str, date] = {}
    for s in db.settlements:
        if lines[s.settlement_id] != int(s.payout):
            breaks.append(
                f"settlement {s.settlement_id}: lines {lines[s.settlement_id]} ≠ payout {s.payout}"
            )
        taken = claimed[s.settlement_id]
        total = sum(int(p.amount) for p in taken)
        if total != int(s.collected) or len(taken) != int(s.payments_count):
            breaks.append(
                f"settlement {s.settlement_id} ({s.period_start}..{s.period_end}) counted "
                f"{s.payments_count} payment(s), {s.collected} yen; {len(taken)} payment(s), "
                f"{total} yen point at it"
            )
        last_end[s.biller_id] = max(last_end.get(s.biller_id, s.period_end), s.period_end)
    for p in db.payments:
        end = last_end.get(p.biller_id or "")
        if (
            p.status == "confirmed"
            and p.settlement_id is None
            and end is not None
            and p.confirmed_at < jst_midnight(end + timedelta(days=1))
        ):
            breaks.append(
                f"payment {p.payment_id} confirmed {p.confirmed_at:%Y-%m-%d %H:%M} is in no "
                f"settlement, though {p.biller_id} is settled through {end}"
            )
    return breaks


# 6 ---------------------------------------------------------------------------------------------


def _events_feed(world: World, db: Db) -> list[str]:
    breaks = []
    seqs = defaultdict(list)
    for e in db.events:
        seqs[e.biller_id].append(int(e.seq))
    for b in db.billers:
        got = sorted(seqs[b.biller_id])
        if got != list(range(1, len(got) + 1)) or len(got) != int(b.last_event_seq):
            missing = sorted(set(range(1, int(b.last_event_seq) + 1)) - set(got))[:5]
            breaks.append(
                f"events of {b.biller_id}: {len(got)} event(s), last_event_seq "
                f"{b.last_event_seq}, missing {missing}"
            )
    return breaks


# 7 ---------------------------------------------------------------------------------------------


def _webhooks(world: World, db: Db) -> list[str]:
    breaks = []
    delivered = world.receivers.delivered
    for ep in db.endpoints:
        if not ep.enabled:
            continue
        types = set(ep.events.split(","))
        got = delivered.get(ep.url, set())
        missing = [
            e
            for e in db.events
            if e.biller_id == ep.biller_id
            and int(e.seq) > int(ep.after_seq)
            and ("*" in types or e.type in types)
            and e.event_id not in got
        ]
        world.stats["webhooks_delivered"] += len(got)
        if world.receivers.bad_signatures:
            breaks += world.receivers.bad_signatures[:5]
            world.receivers.bad_signatures.clear()
        if missing:
            first = missing[0]
            breaks.append(
                f"endpoint {ep.endpoint_id}: {len(missing)} event(s) never delivered "
                f"(first: #{first.seq} {first.type})"
            )
    return breaks


# 8 ---------------------------------------------------------------------------------------------


def _day_closes(world: World, db: Db) -> list[str]:
    breaks = []
    for close in db.closes:
        world.stats["mpn_closes"] += 1
        if close.matched is False:
            world.stats["mpn_close_mismatched_at_close"] += 1
        ours = db.counters[close.business_date]
        theirs = world.center.figures(close.business_date)
        if ours != theirs:
            breaks.append(
                f"MPN {close.business_date}: the ledger counts {ours}, the center {theirs}"
            )
    return breaks


def _files(world: World, db: Db) -> list[str]:
    breaks = []
    assert world.config.zengin is not None
    for inbox in (world.cvs_inbox, world.config.zengin.inbox):
        rejected = inbox / "rejected"
        if rejected.exists():
            for p in sorted(rejected.iterdir()):
                if not p.name.endswith(".report.txt"):
                    report = rejected / (p.name + ".report.txt")
                    why = report.read_text(encoding="utf-8")[:200] if report.exists() else ""
                    breaks.append(f"file {p.name} was rejected: {why.strip()}")
    return breaks
