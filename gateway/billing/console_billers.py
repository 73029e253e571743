"""The center's billers in the console (docs/console.md): the list, a biller's page, and what
an ``operator`` changes — a new biller, its channels, a suspension or resumption, its 委託者
(account-transfer consignor) data.

Each change goes through the operator's own functions, as the admin API and ``gateway-admin``
run them: :class:`gateway.billing.billers.BillerService` (``POST /v1/billers``, ``PATCH
/v1/billers/{id}``, ``…/suspend``, ``…/resume``) and :func:`gateway.billing.consignors.
set_consignor` (``gateway-admin biller zengin``), with their rules, refusals and audit lines
(``biller.create``, ``biller.update``, ``biller.suspend``, ``biller.resume``,
``consignor.set``), written as ``user:<login>`` in the transaction of the change. The console
only turns the form's text into the body those functions take.

- **Who**: :data:`Permission.BILLERS` reads (every center role), :data:`Permission.EDIT_BILLERS`
  changes (``operator``); anyone else is answered as for an unknown page (:class:`NotFound`).
- **Kana**: a name typed in full-width katakana or hiragana is sent half-width, as the
  biller's kana and its 委託者名 are kept (gateway.mappers.zengin.records.to_zengin_text);
  what cannot be converted is sent as typed, for the rules to name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway.billing.actors import console_actor
from gateway.billing.billers import BillerService, biller_json
from gateway.billing.consignors import consignor_json, set_consignor
from gateway.billing.console_access import ConsoleUser, Permission, may
from gateway.clock import now as clock_now
from gateway.config import Config
from gateway.errors import NotFound
from gateway.mappers.zengin.records import to_zengin_text
from gateway.model import Channel
from gateway.store import Store
from gateway.store.billers import get_biller
from gateway.store.zengin import get_consignor
from gateway.validation import BILLER_ID

PAGE = 100  # billers a page, in the order of their codes

#: The console's names of the fields the operator's functions name, for their error messages.
FIELD_LABELS = {
    "biller_id": "収納企業ID",
    "name": "名称",
    "kana": "名称（カナ）",
    "channels": "支払方法",
    "payeasy_institution_code": "ペイジー収納機関番号",
    "cvs_agency": "コンビニ収納代行会社",
    "cvs_code": "収納代行会社の企業コード",
    "reason": "理由",
    "consignor_code": "委託者コード",
    "consignor_name": "委託者名",
    "account": "委託者の口座",
    "zengin": "口座振替",
    "body": "変更",
}


def _kana(text: str) -> str:
    try:
        return to_zengin_text(text)
    except ValueError:
        return text


def _channels(fields: Mapping[str, str]) -> list[str]:
    return [c.value for c in Channel if fields.get(f"channel_{c.value}")]


def _text(fields: Mapping[str, str], name: str) -> str | None:
    value = (fields.get(name) or "").strip()
    return value or None


def new_biller_body(fields: Mapping[str, str]) -> dict[str, Any]:
    """The new-biller form as ``POST /v1/billers`` takes it (a field left empty: absent)."""
    body: dict[str, Any] = {
        "biller_id": (fields.get("biller_id") or "").strip(),
        "name": (fields.get("name") or "").strip(),
        "kana": _kana((fields.get("kana") or "").strip()),
        "channels": _channels(fields),
    }
    for name in ("payeasy_institution_code", "cvs_agency", "cvs_code"):
        value = _text(fields, name)
        if value is not None:
            body[name] = value
    return body


def _reason(fields: Mapping[str, str]) -> dict[str, str] | None:
    reason = _text(fields, "reason")
    return None if reason is None else {"reason": reason}


class ConsoleBillers:
    def __init__(self, store: Store, clock: IReactorTime, config: Config) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.api = BillerService(store, clock, config)

    def _may(self, user: ConsoleUser, permission: Permission, what: str) -> None:
        if not may(user.role, permission):
            raise NotFound(what)

    def form_options(self) -> dict[str, Any]:
        """What the new-biller form offers: the channels the configuration enables, the CVS
        agencies (with whether each assigns a code of its own to every biller)."""
        agencies = []
        if self.config.cvs is not None:
            agencies = [
                {"id": a.id, "codes_per_biller": a.codes_per_biller}
                for a in self.config.cvs.agencies
            ]
        return {
            "channels": [c.value for c in Channel if c in self.config.channels],
            "agencies": agencies,
            "zengin": self.config.zengin is not None,
        }

    async def page(self, user: ConsoleUser, cursor: str | None) -> dict[str, Any]:
        """A page of billers as ``GET /v1/billers`` answers it."""
        self._may(user, Permission.BILLERS, "billers")
        return await self.api.list(cursor, PAGE)

    async def biller(self, user: ConsoleUser, biller_id: str) -> dict[str, Any]:
        """``{"biller": …, "consignor": … or None}``, as the operator's API and ``gateway-admin
        biller zengin`` show them."""
        self._may(user, Permission.BILLERS, f"biller {biller_id}")
        if not re.fullmatch(BILLER_ID, biller_id):
            raise NotFound(f"biller {biller_id[:32]}")

        def txn(conn: Connection) -> dict[str, Any]:
            found = get_biller(conn, biller_id)
            consignor = get_consignor(conn, biller_id)
            return {
                "biller": biller_json(self.config, found),
                "consignor": None if consignor is None else consignor_json(consignor),
            }

        return await self.store.run_interaction("console.biller", txn)

    async def create(self, user: ConsoleUser, fields: Mapping[str, str]) -> dict[str, Any]:
        """The new biller (``POST /v1/billers``'s answer); InvalidRequest, Conflict."""
        self._may(user, Permission.EDIT_BILLERS, "billers")
        stored = await self.api.create(new_biller_body(fields), None, console_actor(user.login))
        made: dict[str, Any] = json.loads(stored.body)
        return made

    async def set_channels(
        self, user: ConsoleUser, biller_id: str, fields: Mapping[str, str]
    ) -> dict[str, Any]:
        """The biller's channels as ticked (``PATCH /v1/billers/{id}`` with ``channels``)."""
        self._may(user, Permission.EDIT_BILLERS, f"biller {biller_id}")
        body = {"channels": _channels(fields)}
        return await self.api.update(console_actor(user.login), biller_id, body)

    async def suspend(
        self, user: ConsoleUser, biller_id: str, fields: Mapping[str, str], suspend: bool
    ) -> dict[str, Any]:
        """Suspended (or resumed) with the form's ``reason``, kept in the audit log."""
        self._may(user, Permission.EDIT_BILLERS, f"biller {biller_id}")
        actor = console_actor(user.login)
        if suspend:
            return await self.api.suspend(actor, biller_id, _reason(fields))
        return await self.api.resume(actor, biller_id, _reason(fields))

    async def set_consignor(
        self, user: ConsoleUser, biller_id: str, fields: Mapping[str, str]
    ) -> dict[str, Any]:
        """The biller's 委託者 data: ``consignor_code``, its account in four fields
        (``bank_code``, ``branch_code``, ``account_type``, ``account_number``) and
        ``consignor_name`` (empty: the biller's kana)."""
        self._may(user, Permission.EDIT_BILLERS, f"biller {biller_id}")
        account = "-".join(
            (fields.get(name) or "").strip()
            for name in ("bank_code", "branch_code", "account_type", "account_number")
        )
        name = _text(fields, "consignor_name")
        consignor = await self.store.run_interaction(
            "console.consignor",
            set_consignor,
            self.config,
            console_actor(user.login),
            biller_id,
            (fields.get("consignor_code") or "").strip(),
            account,
            None if name is None else _kana(name),
            clock_now(self.clock),
        )
        return consignor_json(consignor)
