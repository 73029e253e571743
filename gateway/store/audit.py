"""The audit log of operator actions (``audit_log``, migration 0011).

:func:`record` is called inside the transaction of the action it records: the line and the
action commit or roll back together. ``before`` and ``after`` are JSON documents of what the
action changed, as the operator sees them (never a key, a key's hash or a secret).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from gateway.store.schema import audit_log


def _dumps(doc: Any) -> str | None:
    if doc is None:
        return None
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)


def record(
    conn: Connection,
    actor: str,
    action: str,
    target: str,
    now: datetime,
    *,
    biller_id: str | None = None,
    before: Any = None,
    after: Any = None,
) -> int:
    """Write one line of the audit log; returns its id. ``actor``: who acts,
    ``key:<key_id>`` (the admin API), ``cli:<unix user>`` (gateway-admin) or ``system:<job>``
    (the daemon's scheduled runs): gateway.billing.actors."""
    result = conn.execute(
        audit_log.insert()
        .values(
            at=now,
            actor=actor[:64],
            action=action,
            target=target[:120],
            biller_id=biller_id,
            before=_dumps(before),
            after=_dumps(after),
        )
        .returning(audit_log.c.id)
    )
    return int(result.scalar_one())


def audit_json(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "at": row.at.isoformat(),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "biller_id": row.biller_id,
        "before": None if row.before is None else json.loads(row.before),
        "after": None if row.after is None else json.loads(row.after),
    }


def list_audit(
    conn: Connection,
    *,
    biller_id: str | None = None,
    target: str | None = None,
    action: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """The newest lines first; ``before_id``: the id of the last line of the previous page;
    ``since`` (included) and ``until`` (excluded): when they were written."""
    conditions = []
    if actor is not None:
        conditions.append(audit_log.c.actor == actor)
    if since is not None:
        conditions.append(audit_log.c.at >= since)
    if until is not None:
        conditions.append(audit_log.c.at < until)
    if biller_id is not None:
        conditions.append(audit_log.c.biller_id == biller_id)
    if target is not None:
        conditions.append(audit_log.c.target == target)
    if action is not None:
        conditions.append(audit_log.c.action == action)
    if before_id is not None:
        conditions.append(audit_log.c.id < before_id)
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if conditions:
        query = query.where(and_(*conditions))
    return [audit_json(r) for r in conn.execute(query)]
