"""The webhook tables: dispatch by per-biller cursor, claims with a lease, outcomes fenced by
lease and attempt number, redeliver rounds, purging (SQLite, or PostgreSQL when set)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from gateway.errors import Conflict, NotFound
from gateway.model import Channel
from gateway.store import create_db_engine
from gateway.store.billers import create_biller
from gateway.store.events import append_event
from gateway.store.schema import events as events_table
from gateway.store.schema import (
    metadata,
    webhook_attempts,
    webhook_cursors,
    webhook_deliveries,
)
from gateway.store.webhook_queue import (
    AttemptResult,
    Claim,
    claim_due,
    complete_attempts,
    queue_depth,
)
from gateway.store.webhooks import (
    MAX_ENABLED_ENDPOINTS,
    create_endpoint,
    disable_endpoint,
    dispatch,
    enable_endpoint,
    purge_finished,
    redeliver,
)

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
LEASE = timedelta(seconds=50)
MAX_AGE = timedelta(hours=72)
_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):024x}"


@pytest.fixture
def engine(migrated_url: str):  # type: ignore[no-untyped-def]
    engine = create_db_engine(migrated_url, 4)
    with engine.begin() as conn:
        for biller in ("acme", "beta"):
            create_biller(
                conn,
                biller_id=biller,
                name=biller,
                kana="ｱ",
                channels=frozenset({Channel.CVS}),
                payeasy_institution_code=None,
                now=NOW,
            )
    yield engine
    engine.dispose()


def event(conn: Connection, biller: str = "acme", type: str = "bill.created") -> str:
    event_id = new_id("evt")
    append_event(conn, biller_id=biller, event_id=event_id, type=type, data={"n": 1}, now=NOW)
    return event_id


def endpoint(conn: Connection, biller: str = "acme", types: tuple[str, ...] = ("*",)) -> str:
    endpoint_id = new_id("we")
    create_endpoint(
        conn,
        biller_id=biller,
        endpoint_id=endpoint_id,
        url=f"https://{biller}.example/hook",
        event_types=types,
        secret="whsec_" + endpoint_id,
        now=NOW,
    )
    return endpoint_id


def claim(conn: Connection, now: datetime = NOW, owner: str = "a", **kw: object) -> list[Claim]:
    args: dict[str, object] = {
        "now": now,
        "owner": owner,
        "lease": LEASE,
        "limit": 10,
        "in_flight": {},
        "per_endpoint": 4,
        "new_delivery_id": lambda: new_id("dlv"),
    }
    args.update(kw)
    return claim_due(conn, **args).claims  # type: ignore[arg-type]


def outcome(c: Claim, ok: bool, retry_at: datetime, code: int | None = 500) -> AttemptResult:
    return AttemptResult(
        c.delivery_pk, c.attempt, c.delivery_id, ok, 200 if ok else code, None, 12, retry_at
    )


def attempts(engine: Engine) -> list[tuple[int, str, int | None]]:
    with engine.connect() as conn:
        return [
            (r.attempt, r.result, r.status_code)
            for r in conn.execute(select(webhook_attempts).order_by(webhook_attempts.c.id))
        ]


def test_the_migration_matches_the_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diff if "webhook" in repr(d)] == []


def test_dispatch_fans_out_only_new_events_to_endpoints_that_want_them(engine: Engine) -> None:
    with engine.begin() as conn:
        event(conn)  # before any endpoint: never sent
        every = endpoint(conn)
        payments_only = endpoint(conn, types=("payment.preliminary", "payment.confirmed"))
        endpoint(conn, biller="beta")
        created = event(conn, type="bill.created")
        paid = event(conn, type="payment.preliminary")
    with engine.begin() as conn:
        done = dispatch(conn, NOW)
    assert (done.events, done.deliveries, done.more) == (2, 3, False)
    with engine.begin() as conn:
        claims = claim(conn)
        assert dispatch(conn, NOW).deliveries == 0  # the cursor moved: nothing twice
    sent = sorted((c.endpoint_id, c.event_id) for c in claims)
    assert sent == sorted([(every, created), (every, paid), (payments_only, paid)])
    assert {c.attempt for c in claims} == {1}
    assert all(c.secret.startswith("whsec_") for c in claims)
    assert "secret" not in repr(claims[0]) and "whsec_" not in repr(claims[0])


def test_a_biller_without_endpoints_only_moves_its_cursor(engine: Engine) -> None:
    with engine.begin() as conn:
        for _ in range(5):
            event(conn, biller="beta")
    with engine.begin() as conn:
        done = dispatch(conn, NOW)
        cursor = conn.execute(
            select(webhook_cursors.c.last_seq).where(webhook_cursors.c.biller_id == "beta")
        ).scalar_one()
    assert (done.events, done.deliveries, cursor) == (0, 0, 5)


def test_a_dispatch_woken_by_a_commit_serves_billers_with_endpoints_and_leaves_the_rest(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        endpoint(conn)  # acme has one; beta has none, and no cursor yet
        wanted = [event(conn) for _ in range(2)]
        for _ in range(3):
            event(conn, biller="beta")

    def cursors(conn: Connection) -> dict[str, int]:
        rows = conn.execute(select(webhook_cursors.c.biller_id, webhook_cursors.c.last_seq))
        return {biller: int(seq) for biller, seq in rows}

    with engine.begin() as conn:
        served = dispatch(conn, NOW, served_only=True)
        assert (served.events, served.deliveries) == (2, 2)
        assert cursors(conn) == {"acme": 2}  # beta's cursor is the full dispatch's business
        queued = conn.execute(select(webhook_deliveries.c.event_pk)).scalars().all()
        assert len(queued) == 2
    with engine.begin() as conn:
        full = dispatch(conn, NOW)
        assert (full.events, full.deliveries) == (0, 0)
        assert cursors(conn) == {"acme": 2, "beta": 3}
    assert len(wanted) == 2


def test_dispatch_keeps_to_its_budget(engine: Engine) -> None:
    with engine.begin() as conn:
        endpoint(conn)
        for _ in range(7):
            event(conn)
    with engine.begin() as conn:
        first = dispatch(conn, NOW, budget=5)
    with engine.begin() as conn:
        second = dispatch(conn, NOW, budget=5)
    assert (first.events, first.more, second.events, second.more) == (5, True, 2, False)


def test_claims_respect_the_per_endpoint_limit_and_the_in_flight_count(engine: Engine) -> None:
    with engine.begin() as conn:
        endpoint(conn)
        other = endpoint(conn, biller="beta")
        for _ in range(6):
            event(conn)
        event(conn, biller="beta")
        dispatch(conn, NOW)
    with engine.begin() as conn:
        claimed = claim_due(
            conn,
            now=NOW,
            owner="a",
            lease=LEASE,
            limit=10,
            in_flight={},
            per_endpoint=2,
            new_delivery_id=lambda: new_id("dlv"),
        )
    first = claimed.claims
    assert claimed.more  # 4 of acme's are due but wait for their endpoint's slots
    assert sorted(c.endpoint_id for c in first).count(other) == 1
    assert len(first) == 3  # 2 of acme's 6, 1 of beta's
    acme_pk = next(c.endpoint_pk for c in first if c.endpoint_id != other)
    with engine.begin() as conn:
        # this daemon still has 2 in flight to acme's endpoint: none more for it
        assert claim(conn, per_endpoint=2, in_flight={acme_pk: 2}) == []
        more = claim(conn, per_endpoint=2, in_flight={acme_pk: 1})
    assert len(more) == 1


def test_a_lost_lease_is_taken_again_and_its_late_outcome_changes_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        endpoint(conn)
        event(conn)
        dispatch(conn, NOW)
    with engine.begin() as conn:
        [first] = claim(conn, owner="a")
    with engine.begin() as conn:
        assert claim(conn, now=NOW + LEASE - timedelta(seconds=1), owner="b") == []
        [again] = claim(conn, now=NOW + LEASE + timedelta(seconds=1), owner="b")
    assert (again.delivery_pk, again.attempt) == (first.delivery_pk, 2)
    assert again.delivery_id != first.delivery_id
    later = NOW + LEASE + timedelta(seconds=2)
    with engine.begin() as conn:
        # "a" comes back with a success: logged, but the delivery is "b"'s now
        assert complete_attempts(
            conn, [outcome(first, True, later)], owner="a", now=later, max_age=MAX_AGE
        ) == ["stale"]
        assert complete_attempts(
            conn,
            [outcome(again, False, later + timedelta(seconds=5))],
            owner="b",
            now=later,
            max_age=MAX_AGE,
        ) == ["retry"]
        # the same outcome twice is not applied twice
        assert complete_attempts(
            conn, [outcome(again, False, later)], owner="b", now=later, max_age=MAX_AGE
        ) == ["stale"]
        state = conn.execute(select(webhook_deliveries.c.state, webhook_deliveries.c.due_at)).one()
    assert state == ("pending", later + timedelta(seconds=5))
    # attempt 1 did reach the receiver (its outcome came late); attempt 2 is the one counted
    assert attempts(engine) == [(1, "success", 200), (2, "retry", 500)]


def test_several_late_outcomes_in_one_pass_are_all_logged(engine: Engine) -> None:
    """Seed 394 of the simulation: a commit whose answer was lost left two outcomes to be
    recorded after their leases had been taken again. Recording both at once (one executemany)
    raised, every pass after it failed the same way, and the biller's webhooks stopped for good."""
    with engine.begin() as conn:
        endpoint(conn)
        endpoint(conn)
        event(conn)
        dispatch(conn, NOW)
    with engine.begin() as conn:
        first = claim(conn, owner="a")
    assert len(first) == 2
    retaken = NOW + LEASE + timedelta(seconds=1)
    with engine.begin() as conn:
        assert len(claim(conn, now=retaken, owner="b")) == 2
    later = retaken + timedelta(seconds=1)
    with engine.begin() as conn:
        results = complete_attempts(
            conn, [outcome(c, True, later) for c in first], owner="a", now=later, max_age=MAX_AGE
        )
    assert results == ["stale", "stale"]
    assert sorted(attempts(engine)) == [
        (1, "success", 200),
        (1, "success", 200),
        (2, "in_flight", None),
        (2, "in_flight", None),
    ]


def test_an_abandoned_attempt_is_marked_when_its_lease_is_retaken(engine: Engine) -> None:
    with engine.begin() as conn:
        endpoint(conn)
        event(conn)
        dispatch(conn, NOW)
        claim(conn, owner="a")
    with engine.begin() as conn:
        claim(conn, now=NOW + LEASE * 2, owner="b")
    assert [a[:2] for a in attempts(engine)] == [(1, "abandoned"), (2, "in_flight")]


def test_retry_until_max_age_then_failed(engine: Engine) -> None:
    with engine.begin() as conn:
        endpoint(conn)
        event(conn)
        dispatch(conn, NOW)
    at = NOW
    with engine.begin() as conn:
        [c] = claim(conn, now=at)
        retry = at + timedelta(hours=71)
        assert complete_attempts(
            conn, [outcome(c, False, retry)], owner="a", now=at, max_age=MAX_AGE
        ) == ["retry"]
    with engine.begin() as conn:
        assert claim(conn, now=retry - timedelta(seconds=1)) == []
        [c] = claim(conn, now=retry)
        too_late = retry + timedelta(hours=2)  # past created_at + 72 h
        assert complete_attempts(
            conn, [outcome(c, False, too_late, code=None)], owner="a", now=retry, max_age=MAX_AGE
        ) == ["failed"]
        row = conn.execute(select(webhook_deliveries)).one()
        assert (row.state, row.due_at, row.completed_at) == ("failed", None, retry)
        assert claim(conn, now=too_late + timedelta(days=1)) == []
    log = attempts(engine)
    assert [(a, r) for a, r, _ in log] == [(1, "retry"), (2, "failed")]


def test_a_success_is_final(engine: Engine) -> None:
    with engine.begin() as conn:
        endpoint(conn)
        event(conn)
        dispatch(conn, NOW)
        [c] = claim(conn)
        assert complete_attempts(
            conn, [outcome(c, True, NOW)], owner="a", now=NOW, max_age=MAX_AGE
        ) == ["success"]
        assert claim(conn, now=NOW + timedelta(days=10)) == []
        assert queue_depth(conn, NOW) == {"due": 0, "retrying": 0, "in_flight": 0}


def test_disabling_cancels_waiting_deliveries_and_the_one_in_flight_after_it(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        endpoint_id = endpoint(conn)
        event(conn)
        event(conn)
        dispatch(conn, NOW)
        [c] = claim(conn, limit=1)
        assert queue_depth(conn, NOW) == {"due": 1, "retrying": 0, "in_flight": 1}
        disabled = disable_endpoint(conn, "acme", endpoint_id, NOW)
        assert not disabled.enabled and disabled.disabled_at == NOW
        assert disable_endpoint(conn, "acme", endpoint_id, NOW).disabled_at == NOW
        assert complete_attempts(
            conn, [outcome(c, False, NOW)], owner="a", now=NOW, max_age=MAX_AGE
        ) == ["cancelled"]
        states = sorted(conn.execute(select(webhook_deliveries.c.state)).scalars())
        assert states == ["cancelled", "cancelled"]
        event(conn)
        assert dispatch(conn, NOW).deliveries == 0
        with pytest.raises(NotFound):
            disable_endpoint(conn, "beta", endpoint_id, NOW)  # another biller's: unknown


def test_redeliver_adds_a_round_per_call(engine: Engine) -> None:
    with engine.begin() as conn:
        first = endpoint(conn, types=("bill.created",))
        endpoint(conn, types=("payment.preliminary",))
        event_id = event(conn)
        dispatch(conn, NOW)
        type_, made = redeliver(conn, "acme", event_id, None, NOW)
        assert (type_, [(e.endpoint_id, r) for e, r in made]) == ("bill.created", [(first, 1)])
        _, made = redeliver(conn, "acme", event_id, first, NOW)
        assert [r for _, r in made] == [2]
        rounds = sorted(conn.execute(select(webhook_deliveries.c.round)).scalars())
        assert rounds == [0, 1, 2]
        claims = claim(conn)
        with pytest.raises(NotFound):
            redeliver(conn, "beta", event_id, None, NOW)
        with pytest.raises(Conflict):
            redeliver(conn, "acme", event(conn, type="bill.expired"), None, NOW)
    log = {(a, r) for a, r, _ in attempts(engine)}
    assert log == {(1, "in_flight")} and len(claims) == 3


def test_too_many_enabled_endpoints(engine: Engine) -> None:
    with engine.begin() as conn:
        ids = [endpoint(conn) for _ in range(MAX_ENABLED_ENDPOINTS)]
        with pytest.raises(Conflict):
            endpoint(conn)
        disable_endpoint(conn, "acme", ids[0], NOW)
        endpoint(conn)
        with pytest.raises(Conflict):  # enabling counts too
            enable_endpoint(conn, "acme", ids[0], NOW)


def test_enabled_again_an_endpoint_gets_the_events_from_then_on_only(engine: Engine) -> None:
    """The console's enable (gateway.webhooks.api.WebhookApi.enable): what happened while it was
    disabled is not sent (a redelivery sends one such event); what comes after is."""
    later = NOW + timedelta(minutes=5)
    with engine.begin() as conn:
        endpoint_id = endpoint(conn)
        disable_endpoint(conn, "acme", endpoint_id, NOW)
        missed = event(conn)
        dispatch(conn, NOW)
        again = enable_endpoint(conn, "acme", endpoint_id, later)
        assert again.enabled and again.disabled_at is None
        assert enable_endpoint(conn, "acme", endpoint_id, later) == again  # again: no change
        with pytest.raises(NotFound):
            enable_endpoint(conn, "beta", endpoint_id, later)  # another biller's: unknown
        assert dispatch(conn, later).deliveries == 0
        after = event(conn)
        assert dispatch(conn, later).deliveries == 1
        _, made = redeliver(conn, "acme", missed, endpoint_id, later)
        assert [r for _, r in made] == [1]
        delivered = conn.execute(
            select(events_table.c.event_id, webhook_deliveries.c.round)
            .join(events_table, events_table.c.id == webhook_deliveries.c.event_pk)
            .order_by(webhook_deliveries.c.id)
        ).all()
        assert [tuple(r) for r in delivered] == [(after, 0), (missed, 1)]


def test_purge_deletes_finished_deliveries_and_their_attempts(engine: Engine) -> None:
    with engine.begin() as conn:
        endpoint(conn)
        event(conn)
        event(conn)
        dispatch(conn, NOW)
        done, waiting = claim(conn)
        complete_attempts(conn, [outcome(done, True, NOW)], owner="a", now=NOW, max_age=MAX_AGE)
        complete_attempts(
            conn,
            [outcome(waiting, False, NOW + timedelta(days=1))],
            owner="a",
            now=NOW,
            max_age=MAX_AGE,
        )
        assert purge_finished(conn, NOW) == 0
        assert purge_finished(conn, NOW + timedelta(seconds=1)) == 1
        left = conn.execute(select(webhook_attempts.c.delivery_pk)).scalars().all()
    assert left == [waiting.delivery_pk]
