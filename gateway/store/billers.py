"""Billers and their API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from gateway.chain_rules import ChainRules
from gateway.errors import Conflict, FieldError, InvalidRequest, NotFound
from gateway.model import Biller, Channel, Principal
from gateway.notice_rules import NoticeRules
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
        cvs_agency=row.cvs_agency,
        cvs_code=row.cvs_code,
        suspended_at=row.suspended_at,
        chain_rules=ChainRules.from_json(row.chain_rules),
        notice_rules=NoticeRules.from_json(row.notice_rules),
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
    cvs_agency: str | None = None,
    cvs_code: str | None = None,
) -> Biller:
    """Add a biller and assign it the next free 5-digit code (codes are never reused).

    ``cvs_agency`` is its convenience-store agency, ``cvs_code`` the code that agency assigned
    to it (when the agency gives each biller its own): :class:`Conflict` naming ``cvs_code``
    when another biller of the agency has it."""
    if conn.execute(select(billers.c.biller_id).where(billers.c.biller_id == biller_id)).first():
        raise Conflict(f"biller {biller_id} already exists", field="id")
    highest = conn.execute(select(func.max(billers.c.code))).scalar()
    code = int(highest or 0) + 1
    if code > 99_999:
        raise Conflict("all 99,999 biller codes are used")
    if cvs_code is not None:
        holder = conn.execute(
            select(billers.c.biller_id).where(
                billers.c.cvs_agency == cvs_agency, billers.c.cvs_code == cvs_code
            )
        ).first()
        if holder is not None:
            raise Conflict(
                f"agency {cvs_agency}'s code {cvs_code} is biller {holder.biller_id}'s",
                field="cvs_code",
            )
    try:
        conn.execute(
            billers.insert().values(
                biller_id=biller_id,
                code=f"{code:05d}",
                name=name,
                kana=kana,
                channels=",".join(sorted(channels)),
                payeasy_institution_code=payeasy_institution_code,
                cvs_agency=cvs_agency,
                cvs_code=cvs_code,
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


def update_biller(
    conn: Connection, biller_id: str, changes: dict[str, Any]
) -> tuple[Biller, Biller]:
    """Change a biller's ``name``, ``kana``, ``channels`` (a frozenset), ``suspended_at`` or
    ``chain_rules`` (a :class:`ChainRules`); returns (before, after). The row is locked
    (PostgreSQL) from the read to the write."""
    row = conn.execute(
        select(billers).where(billers.c.biller_id == biller_id).with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"biller {biller_id}")
    before = _biller(row)
    values = dict(changes)
    if "channels" in values:
        values["channels"] = ",".join(sorted(values["channels"]))
    if "chain_rules" in values:
        values["chain_rules"] = values["chain_rules"].to_json()
    if "notice_rules" in values:
        values["notice_rules"] = values["notice_rules"].to_json()
    if values:
        conn.execute(update(billers).where(billers.c.biller_id == biller_id).values(**values))
    return before, get_biller(conn, biller_id)


def chain_rules_of(conn: Connection, biller_ids: Sequence[str]) -> dict[str, ChainRules]:
    """The chain rules of those of ``biller_ids`` that set any (the others have none)."""
    if not biller_ids:
        return {}
    rows = conn.execute(
        select(billers.c.biller_id, billers.c.chain_rules).where(
            billers.c.biller_id.in_(list(biller_ids)), billers.c.chain_rules.is_not(None)
        )
    )
    return {r.biller_id: ChainRules.from_json(r.chain_rules) for r in rows}


def active_biller(conn: Connection, biller_id: str) -> Biller:
    """The biller, to issue a bill for: :class:`InvalidRequest` naming ``biller`` when the
    operator suspended it (its watched folder's file is refused with that reason)."""
    return ensure_active(get_biller(conn, biller_id))


def ensure_active(biller: Biller) -> Biller:
    """``biller``, or :class:`InvalidRequest` as :func:`active_biller` refuses a suspended one."""
    if biller.suspended_at is not None:
        why = f"{biller.biller_id} is suspended: no new bill until the operator resumes it"
        raise InvalidRequest([FieldError("biller", why)], title="The biller is suspended")
    return biller


def insert_api_key(
    conn: Connection,
    *,
    key_id: str,
    key_hash: str,
    biller_id: str | None,
    is_admin: bool,
    now: datetime,
    prefix: str | None = None,
    name: str | None = None,
) -> None:
    """A new key (its hash); ``prefix``: the key's first characters (gateway.billing.keys),
    ``name``: what the biller calls it."""
    if biller_id is not None:
        get_biller(conn, biller_id)
    conn.execute(
        api_keys.insert().values(
            key_id=key_id,
            key_hash=key_hash,
            biller_id=biller_id,
            is_admin=is_admin,
            created_at=now,
            prefix=prefix,
            name=name,
        )
    )


def _key_active(now: datetime) -> Any:
    """A key works while it is not revoked, or revoked at a time still to come (a grace)."""
    return or_(api_keys.c.revoked_at.is_(None), api_keys.c.revoked_at > now)


#: A key's ``last_used_at`` is written again only when it is older than this: a lookup is a
#: read, and a write at most once a minute per key (the authenticator's cache keeps most
#: requests off the database anyway).
KEY_TOUCH_EVERY = timedelta(seconds=60)


def principal_for_hash(
    conn: Connection, key_hash: str, now: datetime
) -> tuple[Principal, datetime | None] | None:
    """Who a key hash belongs to, and when the key stops working (None: not revoked), if it is
    known and works at ``now``; the key's ``last_used_at`` becomes ``now`` when it is older
    than :data:`KEY_TOUCH_EVERY`."""
    row = conn.execute(
        select(
            api_keys.c.key_id,
            api_keys.c.biller_id,
            api_keys.c.is_admin,
            api_keys.c.revoked_at,
            api_keys.c.last_used_at,
            billers.c.suspended_at,
        )
        .select_from(api_keys.outerjoin(billers, api_keys.c.biller_id == billers.c.biller_id))
        .where(api_keys.c.key_hash == key_hash, _key_active(now))
    ).first()
    if row is None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= KEY_TOUCH_EVERY:
        stale = or_(
            api_keys.c.last_used_at.is_(None),
            api_keys.c.last_used_at <= now - KEY_TOUCH_EVERY,
        )
        conn.execute(
            update(api_keys).where(api_keys.c.key_id == row.key_id, stale).values(last_used_at=now)
        )
    suspended = row.suspended_at is not None
    return Principal(row.key_id, row.biller_id, bool(row.is_admin), suspended), row.revoked_at


def _key_json(row: Row, now: datetime, *, shown: bool = False) -> dict[str, Any]:
    """What an operator sees of a key: never the key itself nor its hash. ``shown`` (a
    listing): with its first characters, ``prefix``, to tell it by; a revocation's document,
    which the audit log keeps, has no part of the key."""
    revoked_at = row.revoked_at
    state = "active" if revoked_at is None else ("expiring" if revoked_at > now else "revoked")
    doc = {
        "key_id": row.key_id,
        "biller_id": row.biller_id,
        "admin": bool(row.is_admin),
        "name": row.name,
        "created_at": row.created_at.isoformat(),
        "last_used_at": None if row.last_used_at is None else row.last_used_at.isoformat(),
        "revoked_at": None if revoked_at is None else revoked_at.isoformat(),
        "state": state,
    }
    return {**doc, "prefix": row.prefix} if shown else doc


_KEY_COLUMNS = (
    api_keys.c.key_id,
    api_keys.c.biller_id,
    api_keys.c.is_admin,
    api_keys.c.name,
    api_keys.c.prefix,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
)


def list_api_keys(
    conn: Connection, now: datetime, biller_id: str | None = None
) -> list[dict[str, Any]]:
    """Every key (of one biller), oldest first: id, biller, admin flag, created, revoked."""
    query = select(*_KEY_COLUMNS).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if biller_id is not None:
        get_biller(conn, biller_id)
        query = query.where(api_keys.c.biller_id == biller_id)
    return [_key_json(r, now, shown=True) for r in conn.execute(query)]


def get_api_key(conn: Connection, key_id: str, now: datetime) -> dict[str, Any] | None:
    row = conn.execute(select(*_KEY_COLUMNS).where(api_keys.c.key_id == key_id)).first()
    return None if row is None else _key_json(row, now, shown=True)


def revoke_api_key(
    conn: Connection, key_id: str, now: datetime, *, biller_id: str | None = None
) -> dict[str, Any]:
    """Revoke one key now (a key in its rotation grace loses the rest of it). Revoking a revoked
    key changes nothing. With ``biller_id``, a key of another biller (or an admin key) is
    :class:`NotFound`, as an unknown one."""
    mine = api_keys.c.key_id == key_id
    if biller_id is not None:
        mine = and_(mine, api_keys.c.biller_id == biller_id)
    conn.execute(update(api_keys).where(mine, _key_active(now)).values(revoked_at=now))
    row = conn.execute(select(*_KEY_COLUMNS).where(mine)).first()
    if row is None:
        raise NotFound(f"key {key_id}")
    return _key_json(row, now)


def revoke_biller_keys(
    conn: Connection, biller_id: str, at: datetime, now: datetime, *, keep: str | None = None
) -> list[dict[str, Any]]:
    """Revoke every key of a biller (but ``keep``) at ``at`` (now, or the end of a grace); a
    key that stops working before ``at`` keeps its earlier end. Returns the keys changed."""
    get_biller(conn, biller_id)
    still = or_(api_keys.c.revoked_at.is_(None), api_keys.c.revoked_at > at)
    mine = and_(api_keys.c.biller_id == biller_id, still)
    if keep is not None:
        mine = and_(mine, api_keys.c.key_id != keep)
    changed = [r.key_id for r in conn.execute(select(api_keys.c.key_id).where(mine))]
    if changed:
        conn.execute(update(api_keys).where(api_keys.c.key_id.in_(changed)).values(revoked_at=at))
    rows = conn.execute(
        select(*_KEY_COLUMNS).where(api_keys.c.key_id.in_(changed)).order_by(api_keys.c.key_id)
    )
    return [_key_json(r, now) for r in rows]


def billers_under_agency(
    conn: Connection, agency_id: str, *, default: bool, codes: Sequence[str], assigned: bool
) -> dict[str, str]:
    """The billers of the agency ``agency_id`` named by 5-digit codes in its barcodes: code →
    biller_id. ``assigned``: the codes are the agency's own (``cvs_code``), else the gateway's
    (``code``). ``default``: the agency is ``[cvs] default_agency``, which also holds the
    billers created before agencies were recorded (``cvs_agency`` NULL)."""
    if not codes:
        return {}
    column = billers.c.cvs_code if assigned else billers.c.code
    mine = billers.c.cvs_agency == agency_id
    if default:
        mine = or_(mine, billers.c.cvs_agency.is_(None))
    rows = conn.execute(
        select(column.label("code"), billers.c.biller_id).where(column.in_(list(codes)), mine)
    )
    return {r.code: r.biller_id for r in rows}
