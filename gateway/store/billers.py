"""Billers and their API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from gateway.errors import Conflict, NotFound
from gateway.model import Biller, Channel, Principal
from gateway.store.schema import api_keys, billers


def _biller(row: Row) -> Biller:
    return Biller(
        biller_id=row.biller_id,
        code=row.code,
        name=row.name,
        kana=row.kana,
        channels=frozenset(Channel(c) for c in row.channels.split(",") if c),
        payeasy_institution_code=row.payeasy_institution_code,
        created_at=row.created_at,
    )


def create_biller(
    conn: Connection,
    *,
    biller_id: str,
    name: str,
    kana: str,
    channels: frozenset[Channel],
    payeasy_institution_code: str | None,
    now: datetime,
) -> Biller:
    """Add a biller and assign it the next free 5-digit code (codes are never reused)."""
    if conn.execute(select(billers.c.biller_id).where(billers.c.biller_id == biller_id)).first():
        raise Conflict(f"biller {biller_id} already exists", field="id")
    highest = conn.execute(select(func.max(billers.c.code))).scalar()
    code = int(highest or 0) + 1
    if code > 99_999:
        raise Conflict("all 99,999 biller codes are used")
    try:
        conn.execute(
            billers.insert().values(
                biller_id=biller_id,
                code=f"{code:05d}",
                name=name,
                kana=kana,
                channels=",".join(sorted(channels)),
                payeasy_institution_code=payeasy_institution_code,
                created_at=now,
            )
        )
    except IntegrityError:
        raise Conflict(f"biller {biller_id} already exists", field="id") from None
    return get_biller(conn, biller_id)


def get_biller(conn: Connection, biller_id: str) -> Biller:
    row = conn.execute(select(billers).where(billers.c.biller_id == biller_id)).first()
    if row is None:
        raise NotFound(f"biller {biller_id}")
    return _biller(row)


def list_billers(conn: Connection) -> list[Biller]:
    return [_biller(r) for r in conn.execute(select(billers).order_by(billers.c.code))]


def insert_api_key(
    conn: Connection,
    *,
    key_id: str,
    key_hash: str,
    biller_id: str | None,
    is_admin: bool,
    now: datetime,
) -> None:
    if biller_id is not None:
        get_biller(conn, biller_id)
    conn.execute(
        api_keys.insert().values(
            key_id=key_id,
            key_hash=key_hash,
            biller_id=biller_id,
            is_admin=is_admin,
            created_at=now,
        )
    )


def principal_for_hash(conn: Connection, key_hash: str) -> Principal | None:
    row = conn.execute(
        select(api_keys.c.key_id, api_keys.c.biller_id, api_keys.c.is_admin).where(
            api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    return Principal(row.key_id, row.biller_id, bool(row.is_admin))
