"""What a console user does to bills: register one, reissue it, cancel it (docs/console.md).

Each goes through the merchant API's own service (:class:`gateway.billing.bills.BillService`),
with the API's rules and answers, for the bill's biller: the console only turns the form into
the body the API takes and writes the audit line in the transaction of the change.

- **Who**: :mod:`gateway.billing.console_access` — a bill the user may not act on is
  :class:`NotFound`, as an unknown one.
- **A form sent twice** (a double click, a reload of the answer) changes the bill once: each
  form carries a one-time ``form_id``, claimed as the API claims an ``Idempotency-Key``
  (scope ``console:<user id>``); the same form with other values is a :class:`Conflict`.
- **Fields** are text: :func:`reissue_body` and :func:`new_bill_body` turn them into the API's
  JSON (numbers where it wants numbers, a field left empty as absent) and name a field that is
  no number where one is wanted; every other rule is the API's.
- **Audit**: ``bill.create``, ``bill.reissue``, ``bill.cancel`` with the actor
  ``user:<login>``, the target ``bill:<biller_id>/<bill_no>``, and the bill's status, amount,
  due date, reissue count and version before and after (never the customer's data).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection

from gateway.billing.actors import console_actor
from gateway.billing.bills import BillAudit, BillService
from gateway.billing.console_access import ConsoleUser, Permission, acting_biller, may, may_for
from gateway.errors import Conflict, FieldError, InvalidRequest, NotFound
from gateway.model import Bill, Channel, IdempotencyClaim, Outcome, Principal
from gateway.store.audit import record
from gateway.store.billers import get_biller, list_billers

FORM_ID = r"[A-Za-z0-9_\-]{16,64}"
_INTEGER = re.compile(r"[0-9]{1,12}")
_DIGIT_WIDTH = str.maketrans("０１２３４５６７８９，", "0123456789,")

#: The console's names of the API's fields, for its error messages.
FIELD_LABELS = {
    "bill_no": "請求番号",
    "amount": "金額",
    "due_date": "支払期限",
    "channels": "支払方法",
    "customer.customer_no": "お客様コード",
    "customer.name": "お客様名",
    "customer.kana": "お客様名（カナ）",
    "customer.email": "メールアドレス",
    "customer.phone": "電話番号",
    "tax.taxable": "課税",
    "tax.tax_amount": "消費税額",
    "description": "摘要",
    "biller": "収納企業",
    "form_id": "フォーム",
}

#: The new-bill form's text fields and the API field each becomes.
_NEW_BILL_TEXT = {
    "bill_no": "bill_no",
    "customer_no": "customer.customer_no",
    "name": "customer.name",
    "kana": "customer.kana",
    "email": "customer.email",
    "phone": "customer.phone",
    "description": "description",
}


def console_principal(user: ConsoleUser, biller_id: str) -> Principal:
    """The console user acting for ``biller_id``, as the bill service takes a caller."""
    return Principal(key_id=f"console:{user.login}", biller_id=biller_id, is_admin=False)


def _number(fields: Mapping[str, str], name: str, errors: list[FieldError]) -> int | None:
    """An integer field (full-width digits and thousands separators taken), None when empty."""
    raw = (fields.get(name) or "").strip().translate(_DIGIT_WIDTH).replace(",", "")
    if raw.startswith("¥") or raw.startswith("￥"):
        raw = raw[1:]
    if not raw:
        return None
    if not _INTEGER.fullmatch(raw):
        errors.append(FieldError(name, "半角数字で入力してください"))
        return None
    return int(raw)


def reissue_body(fields: Mapping[str, str]) -> dict[str, Any]:
    """The reissue form (``amount``, ``due_date``; either may be left empty: unchanged) as the
    body of ``POST /v1/bills/{bill_no}/reissue``."""
    errors: list[FieldError] = []
    body: dict[str, Any] = {}
    amount = _number(fields, "amount", errors)
    if amount is not None:
        body["amount"] = amount
    due = (fields.get("due_date") or "").strip()
    if due:
        body["due_date"] = due
    if errors:
        raise InvalidRequest(errors)
    return body


def new_bill_body(fields: Mapping[str, str]) -> dict[str, Any]:
    """The new-bill form as the body of ``POST /v1/bills``: the channels are the checked
    ``channel_<name>`` boxes; the tax is given when ``taxable`` is checked."""
    errors: list[FieldError] = []
    body: dict[str, Any] = {"channels": [c.value for c in Channel if fields.get(f"channel_{c}")]}
    customer: dict[str, Any] = {}
    for name, path in _NEW_BILL_TEXT.items():
        value = (fields.get(name) or "").strip()
        if not value:
            continue
        if path.startswith("customer."):
            customer[path.removeprefix("customer.")] = value
        else:
            body[path] = value
    if customer:
        body["customer"] = customer
    amount = _number(fields, "amount", errors)
    body["amount"] = amount
    if amount is None and not errors:
        errors.append(FieldError("amount", "入力してください"))
    due = (fields.get("due_date") or "").strip()
    if due:
        body["due_date"] = due
    if fields.get("taxable"):
        tax = _number(fields, "tax_amount", errors)
        body["tax"] = {"taxable": True, "tax_amount": tax or 0}
    if errors:
        raise InvalidRequest(errors)
    return body


def form_claim(user: ConsoleUser, fields: Mapping[str, str], what: str) -> IdempotencyClaim:
    """The form's one-time ``form_id`` as an idempotency claim of the user: the same form sent
    again answers as the first time; :class:`InvalidRequest` for a form without one."""
    form_id = fields.get("form_id") or ""
    if not re.fullmatch(FORM_ID, form_id):
        raise InvalidRequest([FieldError("form_id", "画面を開き直してから送信してください")])
    sent = {k: v for k, v in sorted(fields.items()) if k not in ("csrf_token", "form_id")}
    digest = hashlib.sha256(json.dumps([what, sent], ensure_ascii=False).encode()).hexdigest()
    return IdempotencyClaim(f"console:{user.user_id}", form_id, digest)


def _facts(bill: Bill) -> dict[str, Any]:
    return {
        "status": bill.status.value,
        "amount": bill.amount,
        "due_date": bill.due_date.isoformat() if bill.due_date else None,
        "reissue": bill.reissue,
        "version": bill.version,
    }


def _auditor(user: ConsoleUser, action: str) -> BillAudit:
    actor = console_actor(user.login)

    def audit(conn: Connection, before: Bill | None, after: Bill) -> None:
        record(
            conn,
            actor,
            action,
            f"bill:{after.biller_id}/{after.bill_no}",
            after.updated_at,
            biller_id=after.biller_id,
            before=None if before is None else _facts(before),
            after=_facts(after),
        )

    return audit


class ConsoleBillActions:
    """The console's changes to bills, each one store interaction of the bill service."""

    def __init__(self, bills: BillService) -> None:
        self.bills = bills
        self.store = bills.store

    def _check(self, user: ConsoleUser, permission: Permission, biller_id: str, what: str) -> None:
        if not may_for(user, permission, biller_id):
            raise NotFound(what)

    async def reissue(
        self, user: ConsoleUser, biller_id: str, bill_no: str, fields: Mapping[str, str]
    ) -> dict[str, Any]:
        """The bill reissued (the API's rendering); the API's refusals as they are."""
        self._check(user, Permission.REISSUE, biller_id, f"bill {bill_no}")
        body = reissue_body(fields)
        claim = form_claim(user, fields, f"reissue {biller_id}/{bill_no}")
        stored = await self.bills.reissue(
            console_principal(user, biller_id),
            bill_no,
            body,
            claim,
            audit=_auditor(user, "bill.reissue"),
        )
        return dict(json.loads(stored.body))

    async def cancel(
        self, user: ConsoleUser, biller_id: str, bill_no: str, fields: Mapping[str, str]
    ) -> dict[str, Any]:
        self._check(user, Permission.CANCEL, biller_id, f"bill {bill_no}")
        claim = form_claim(user, fields, f"cancel {biller_id}/{bill_no}")
        stored = await self.bills.cancel(
            console_principal(user, biller_id),
            bill_no,
            None,
            claim,
            audit=_auditor(user, "bill.cancel"),
        )
        return dict(json.loads(stored.body))

    async def create(
        self, user: ConsoleUser, fields: Mapping[str, str]
    ) -> tuple[str, dict[str, Any], bool]:
        """(biller_id, the bill, whether it is new): a bill_no the biller has with the same
        fields is the same bill (not new), with other fields a :class:`Conflict`."""
        biller_id = acting_biller(user, fields.get("biller"))
        if biller_id is None:
            raise InvalidRequest([FieldError("biller", "収納企業を選んでください")])
        if not may(user.role, Permission.NEW_BILL):
            raise NotFound("the new-bill form")
        self._check(user, Permission.NEW_BILL, biller_id, f"biller {biller_id}")
        body = new_bill_body(fields)
        claim = form_claim(user, fields, "create")
        try:
            stored = await self.bills.create(
                console_principal(user, biller_id), body, claim, audit=_auditor(user, "bill.create")
            )
        except NotFound:
            raise InvalidRequest([FieldError("biller", "この収納企業では登録できません")]) from None
        return biller_id, dict(json.loads(stored.body)), stored.outcome is Outcome.CREATED

    async def form_options(self, user: ConsoleUser) -> dict[str, Any]:
        """What the new-bill form offers: the billers a center user may choose (active ones,
        with their channels), or the user's own biller's channels."""

        def txn(conn: Connection) -> dict[str, Any]:
            own = acting_biller(user, None)
            if own is not None:
                biller = get_biller(conn, own)
                return {"billers": {}, "channels": sorted(biller.channels)}
            found = [b for b in list_billers(conn) if b.suspended_at is None]
            return {
                "billers": {b.biller_id: b.name for b in found},
                "channels": sorted({c for b in found for c in b.channels}),
            }

        return await self.store.run_interaction("console.bill_form", txn)


def conflict_message(e: Conflict) -> str:
    """A refusal of the bill service in the console's words where it has them."""
    detail = e.detail
    if "Idempotency-Key" in detail:
        return "この画面の内容は送信済みです。画面を開き直してください。"
    if "exists already" in detail or "already exists" in detail:
        return "この請求番号は別の内容で登録済みです。"
    if "cannot be cancelled" in detail:
        return f"この請求は取り消せません（{detail}）。"
    if "cannot be reissued" in detail:
        return f"この請求は再発行できません（{detail}）。"
    return detail
