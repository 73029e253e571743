"""Idempotency-Key records, claimed in the same transaction as the effect they guard.

The record is inserted with ``ON CONFLICT DO NOTHING`` before the effect runs. On PostgreSQL a
second transaction with the same key waits on the unique index until the first commits, then
finds the stored response and replays it: two concurrent requests, one effect. A request that
fails rolls back with its record, so a rejected request leaves nothing behind.

A response that carries a secret (a webhook endpoint's signing secret, a bill's page URL) is
stored without it (:attr:`gateway.model.StoredResponse.kept`) and completed again on replay by
the caller's ``restore`` (the table must not be where a copy of the database reads secrets).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from gateway.errors import Conflict
from gateway.model import IdempotencyClaim as IdempotencyClaim  # re-exported
from gateway.model import Outcome
from gateway.model import StoredResponse as StoredResponse  # re-exported
from gateway.store.dialect import dialect_insert
from gateway.store.schema import idempotency_keys

# How ``status_code`` keeps the first answer's outcome: the codes that versions before
# gateway.model.Outcome stored (the API's status of the day), so that a key claimed before an
# upgrade replays the same. What the API answers for an outcome is not decided here
# (gateway.protocols.api.statuses).
_CODE = {Outcome.DONE: 200, Outcome.CREATED: 201, Outcome.ACCEPTED: 202}
_OUTCOME = {code: outcome for outcome, code in _CODE.items()}


def run_idempotent(
    conn: Connection,
    claim: IdempotencyClaim | None,
    now: datetime,
    ttl: timedelta,
    effect: Callable[[Connection], StoredResponse],
    restore: Callable[[Connection, StoredResponse], StoredResponse] | None = None,
) -> StoredResponse:
    if claim is None:
        return effect(conn)
    key_match = (idempotency_keys.c.scope == claim.scope) & (
        idempotency_keys.c.idempotency_key == claim.key
    )
    for _ in range(2):
        inserted = conn.execute(
            dialect_insert(conn, idempotency_keys)
            .on_conflict_do_nothing()
            .values(
                scope=claim.scope,
                idempotency_key=claim.key,
                request_hash=claim.request_hash,
                status_code=0,
                response_body="",
                created_at=now,
            )
            # rowcount is not reliable for ON CONFLICT DO NOTHING across drivers; RETURNING is.
            .returning(idempotency_keys.c.scope)
        ).first()
        if inserted is not None:
            response = effect(conn)
            conn.execute(
                update(idempotency_keys)
                .where(key_match)
                .values(
                    status_code=_CODE[response.outcome],
                    response_body=response.body if response.kept is None else response.kept,
                )
            )
            return response
        row = conn.execute(select(idempotency_keys).where(key_match)).one()
        if row.created_at < now - ttl:
            # Expired but not yet purged: the key is free again.
            conn.execute(delete(idempotency_keys).where(key_match))
            continue
        if row.request_hash != claim.request_hash:
            raise Conflict(
                "this Idempotency-Key was already used with a different request",
                field="Idempotency-Key",
            )
        replay = StoredResponse(_OUTCOME[row.status_code], row.response_body, replayed=True)
        return replay if restore is None else restore(conn, replay)
    raise AssertionError("unreachable: an expired key was deleted and could not be claimed")


def purge_expired(conn: Connection, before: datetime) -> int:
    return conn.execute(
        delete(idempotency_keys).where(idempotency_keys.c.created_at < before)
    ).rowcount
