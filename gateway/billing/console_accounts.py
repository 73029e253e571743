"""A biller's console users in the console (docs/console.md): listed, created and disabled by
its ``biller_admin`` (or the center's ``operator`` for the biller it chooses), through the same
use cases as ``gateway-admin user create`` and ``user disable``
(:mod:`gateway.billing.console_users`).

- **Listed**: the biller's users with their role, when made, last login, whether the one-time
  password is still to be changed, and when disabled; never a password, hash or TOTP secret.
- **Created**: a login (:data:`gateway.billing.console_access.LOGIN`) and a role,
  ``biller_staff`` or ``biller_admin`` (:data:`MANAGED_ROLES`), of the acting biller. The
  one-time password is in the answer once and must be changed at the first login. The form
  carries a one-time ``form_id``: sent again, it creates nothing more and answers without the
  password (only its hash is stored), saying so.
- **Disabled** at once, after the form's confirmation box, with every session of the user
  ended; a user of another biller (or of the center) is :class:`NotFound`, as an unknown one;
  nobody disables himself here (:func:`may_disable`).
- **Audit**: ``console_user.create`` and ``console_user.disable``, written by the use cases
  themselves, with the actor ``user:<login>``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway.billing.actors import console_actor
from gateway.billing.console_access import (
    MANAGED_ROLES,
    ConsoleUser,
    Permission,
    is_login,
    may_disable,
)
from gateway.billing.console_actions import form_claim
from gateway.billing.console_keys import admin_biller, biller_names, confirmed
from gateway.billing.console_users import create_user, disable, users_json
from gateway.clock import now as clock_now
from gateway.errors import FieldError, InvalidRequest, NotFound
from gateway.model import Outcome, StoredResponse
from gateway.store import Store
from gateway.store.console import user_credentials
from gateway.store.idempotency import run_idempotent

ROLES = tuple(r.value for r in MANAGED_ROLES)


class ConsoleAccounts:
    def __init__(self, store: Store, clock: IReactorTime, ttl: timedelta) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl

    async def page(self, user: ConsoleUser, asked: str | None) -> dict[str, Any]:
        """``{"biller_id", "billers", "users"}``; ``users`` empty until a center user chooses."""
        biller_id = admin_biller(user, Permission.USERS, asked)

        def txn(conn: Connection) -> dict[str, Any]:
            billers = biller_names(conn)
            found: list[dict[str, Any]] = []
            if biller_id is not None:
                if biller_id not in billers:
                    raise NotFound(f"biller {biller_id}")
                found = users_json(conn, biller_id)
            return {"biller_id": biller_id, "billers": billers, "users": found}

        return await self.store.run_interaction("console.users", txn)

    async def create(self, user: ConsoleUser, fields: Mapping[str, str]) -> dict[str, Any]:
        """The new user, with ``password`` (the one-time password) the first time only;
        ``replayed`` when the form had been sent already."""
        biller_id = admin_biller(user, Permission.USERS, fields.get("biller"))
        login = (fields.get("login") or "").strip()
        role = (fields.get("role") or "").strip()
        errors = []
        if biller_id is None:
            errors.append(FieldError("biller", "収納企業を選んでください"))
        if not is_login(login):
            message = (
                "半角の英小文字・数字・「.」「_」「-」の2〜32文字で、英小文字か数字で始めてください"
            )
            errors.append(FieldError("login", message))
        if role not in ROLES:
            errors.append(FieldError("role", "役割を選んでください"))
        if errors:
            raise InvalidRequest(errors)
        claim = form_claim(user, fields, f"user.create {biller_id}")
        now = clock_now(self.clock)

        def effect(conn: Connection) -> StoredResponse:
            made = create_user(
                conn,
                None,
                login=login,
                role=role,
                biller_id=biller_id,
                totp=False,
                actor=console_actor(user.login),
                now=now,
            )
            body = json.dumps({**made.user, "password": made.password}, ensure_ascii=False)
            return StoredResponse(Outcome.CREATED, body, kept=json.dumps(made.user))

        stored = await self.store.run_interaction(
            "console.user.create", run_idempotent, claim, now, self.ttl, effect
        )
        return {**json.loads(stored.body), "replayed": stored.replayed}

    async def disable(self, user: ConsoleUser, fields: Mapping[str, str]) -> dict[str, Any]:
        """The user disabled and its sessions ended (already disabled: unchanged)."""
        biller_id = admin_biller(user, Permission.USERS, fields.get("biller"))
        login = (fields.get("login") or "").strip()
        if biller_id is None or not is_login(login):
            raise NotFound(f"console user {login[:40]}")
        if not may_disable(user, login):
            raise InvalidRequest([FieldError("login", "自分のアカウントは無効にできません")])
        confirmed(fields)
        now = clock_now(self.clock)

        def txn(conn: Connection) -> dict[str, Any]:
            found = user_credentials(conn, login)
            if found is None or found.biller_id != biller_id:
                raise NotFound(f"console user {login}")
            return disable(conn, login, console_actor(user.login), now)

        return await self.store.run_interaction("console.user.disable", txn)
