"""A biller's API keys in the console (docs/console.md): listed, created, revoked by its
``biller_admin`` (or the center's ``operator`` for the biller it chooses).

- **Listed** newest first with their id, name, prefix (``gw_`` and 4 characters), when made,
  last used and revoked: never the key nor its hash (gateway.store.billers).
- **Created** with a name (required, 1-64 characters): the key is in the answer once. The
  form carries a one-time ``form_id`` claimed as an ``Idempotency-Key`` is: the same form sent
  again creates nothing more and answers without the key (only its hash is stored), saying so.
- **Revoked** at once, after the form's confirmation box; another biller's key (or an admin
  key) is :class:`NotFound`, as an unknown one. A revoked key is refused by the API within
  ``api.auth_cache_seconds``.
- **Audit**: ``key.create`` and ``key.revoke`` (target ``key:<key_id>``) with the actor
  ``user:<login>``, in the transaction of the change, as ``gateway-admin key`` writes them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway.billing.actors import console_actor
from gateway.billing.console_access import ConsoleUser, Permission, acting_biller, may_for
from gateway.billing.console_actions import form_claim
from gateway.billing.keys import NAME_MAX, hash_key, name_ok, new_key, shown_prefix
from gateway.clock import now as clock_now
from gateway.errors import FieldError, InvalidRequest, NotFound
from gateway.model import Outcome, StoredResponse
from gateway.store import Store
from gateway.store.audit import record
from gateway.store.billers import (
    get_api_key,
    insert_api_key,
    list_api_keys,
    list_billers,
    revoke_api_key,
)
from gateway.store.idempotency import run_idempotent
from gateway.validation import BILLER_ID

KEY_ID = r"key_[0-9a-f]{16}"


def admin_biller(user: ConsoleUser, permission: Permission, asked: str | None) -> str | None:
    """The biller whose administration a screen shows: a biller's user's own, or the one a
    center user chose (None: none yet). :class:`InvalidRequest` for a malformed id,
    :class:`NotFound` for a biller the user may not manage."""
    biller_id = acting_biller(user, (asked or "").strip() or None)
    if biller_id is None:
        return None
    if not re.fullmatch(BILLER_ID, biller_id):
        raise InvalidRequest([FieldError("biller", "収納企業IDが正しくありません")])
    if not may_for(user, permission, biller_id):
        raise NotFound(f"biller {biller_id}")
    return biller_id


def biller_names(conn: Connection) -> dict[str, str]:
    return {b.biller_id: b.name for b in list_billers(conn)}


def confirmed(fields: Mapping[str, str]) -> None:
    """A destructive form's confirmation box, ticked."""
    if fields.get("confirm") != "1":
        raise InvalidRequest([FieldError("confirm", "確認のチェックを入れてください")])


class ConsoleKeys:
    def __init__(self, store: Store, clock: IReactorTime, ttl: timedelta) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl  # how long a form's form_id is remembered (api.idempotency_ttl)

    async def page(self, user: ConsoleUser, asked: str | None) -> dict[str, Any]:
        """``{"biller_id", "billers", "keys"}``; ``keys`` empty until a center user chooses."""
        biller_id = admin_biller(user, Permission.API_KEYS, asked)
        now = clock_now(self.clock)

        def txn(conn: Connection) -> dict[str, Any]:
            billers = biller_names(conn)
            keys: list[dict[str, Any]] = []
            if biller_id is not None:
                if biller_id not in billers:
                    raise NotFound(f"biller {biller_id}")
                keys = list(reversed(list_api_keys(conn, now, biller_id)))
            return {"biller_id": biller_id, "billers": billers, "keys": keys}

        return await self.store.run_interaction("console.api_keys", txn)

    async def create(self, user: ConsoleUser, fields: Mapping[str, str]) -> dict[str, Any]:
        """The new key's facts, with ``key`` (the key itself) the first time only; ``replayed``
        when the form had been sent already."""
        biller_id = admin_biller(user, Permission.API_KEYS, fields.get("biller"))
        if biller_id is None:
            raise InvalidRequest([FieldError("biller", "収納企業を選んでください")])
        name = (fields.get("name") or "").strip()
        if not name_ok(name):
            message = f"1〜{NAME_MAX}文字で入力してください（改行などの制御文字は使えません）"
            raise InvalidRequest([FieldError("name", message)])
        claim = form_claim(user, fields, f"key.create {biller_id}")
        key_id, key = new_key()
        now = clock_now(self.clock)

        def effect(conn: Connection) -> StoredResponse:
            insert_api_key(
                conn,
                key_id=key_id,
                key_hash=hash_key(key),
                biller_id=biller_id,
                is_admin=False,
                now=now,
                prefix=shown_prefix(key),
                name=name,
            )
            made = {"key_id": key_id, "biller_id": biller_id, "admin": False, "name": name}
            record(
                conn,
                console_actor(user.login),
                "key.create",
                f"key:{key_id}",
                now,
                biller_id=biller_id,
                after=made,
            )
            doc = {**made, "prefix": shown_prefix(key)}
            return StoredResponse(Outcome.CREATED, _dumps({**doc, "key": key}), kept=_dumps(doc))

        stored = await self.store.run_interaction(
            "console.api_key.create", run_idempotent, claim, now, self.ttl, effect
        )
        return {**json.loads(stored.body), "replayed": stored.replayed}

    async def revoke(self, user: ConsoleUser, fields: Mapping[str, str]) -> dict[str, Any]:
        """The key revoked now (already revoked: unchanged, and no audit line)."""
        biller_id = admin_biller(user, Permission.API_KEYS, fields.get("biller"))
        key_id = (fields.get("key_id") or "").strip()
        if biller_id is None or not re.fullmatch(KEY_ID, key_id):
            raise NotFound(f"key {key_id[:40]}")
        confirmed(fields)
        now = clock_now(self.clock)

        def txn(conn: Connection) -> dict[str, Any]:
            before = get_api_key(conn, key_id, now)
            if before is None or before["biller_id"] != biller_id:
                raise NotFound(f"key {key_id}")
            if before["state"] == "revoked":
                return before
            after = revoke_api_key(conn, key_id, now, biller_id=biller_id)
            record(
                conn,
                console_actor(user.login),
                "key.revoke",
                f"key:{key_id}",
                now,
                biller_id=biller_id,
                before={"state": before["state"], "revoked_at": before["revoked_at"]},
                after=after,
            )
            return after

        return await self.store.run_interaction("console.api_key.revoke", txn)


def _dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
