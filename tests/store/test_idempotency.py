"""The Idempotency-Key table: a replay has the outcome of the first answer, kept as the codes
earlier versions stored (so that keys claimed before an upgrade replay the same)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine

from gateway.model import IdempotencyClaim, Outcome, StoredResponse
from gateway.store import create_db_engine
from gateway.store.idempotency import run_idempotent
from gateway.store.schema import idempotency_keys

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
TTL = timedelta(hours=24)


@pytest.fixture
def engine(migrated_url: str):  # type: ignore[no-untyped-def]
    engine = create_db_engine(migrated_url, 2)
    yield engine
    engine.dispose()


def answer(engine: Engine, claim: IdempotencyClaim, outcome: Outcome) -> StoredResponse:
    def effect(conn: Connection) -> StoredResponse:
        return StoredResponse(outcome, '{"n":1}')

    with engine.begin() as conn:
        return run_idempotent(conn, claim, NOW, TTL, effect)


@pytest.mark.parametrize(
    ("outcome", "code"), [(Outcome.DONE, 200), (Outcome.CREATED, 201), (Outcome.ACCEPTED, 202)]
)
def test_a_replay_has_the_first_answers_outcome(
    engine: Engine, outcome: Outcome, code: int
) -> None:
    claim = IdempotencyClaim("biller:acme", f"key-{code}", "h")
    first = answer(engine, claim, outcome)
    assert (first.outcome, first.replayed) == (outcome, False)
    with engine.connect() as conn:
        kept = conn.execute(
            select(idempotency_keys.c.status_code).where(
                idempotency_keys.c.idempotency_key == claim.key
            )
        ).scalar_one()
    assert kept == code
    # The effect would answer otherwise now: the replay is the stored answer.
    again = answer(engine, claim, Outcome.DONE if outcome is not Outcome.DONE else Outcome.CREATED)
    assert (again.outcome, again.body, again.replayed) == (outcome, '{"n":1}', True)


def test_a_key_stored_by_an_earlier_version_replays_the_same(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(idempotency_keys).values(
                scope="biller:acme",
                idempotency_key="old",
                request_hash="h",
                status_code=201,
                response_body='{"bill_no":"B-1"}',
                created_at=NOW - timedelta(hours=1),
            )
        )
    replay = answer(engine, IdempotencyClaim("biller:acme", "old", "h"), Outcome.DONE)
    assert (replay.outcome, replay.body, replay.replayed) == (
        Outcome.CREATED,
        '{"bill_no":"B-1"}',
        True,
    )
