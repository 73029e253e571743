"""A biller's fee plans in the console (docs/console.md, docs/settlement.md): the versions of
its contract, and a version set from the form.

A version is set through the operator's own :meth:`gateway.money.settlement.SettlementApi.
put_plan` (``PUT /v1/billers/{id}/fee-plans/{effective_from}``, ``gateway-admin contract
set``): the plan read by :func:`gateway.money.fees.parse_plan`, stored by ``put_fee_plan``
with its rules (the same plan again changes nothing; a date a settlement already covers is a
:class:`Conflict`) and its audit line ``fee_plan.put`` (before and after), as ``user:<login>``.
The console only turns the form's text into the plan's JSON: a number field left empty is
absent (the plan's default), one that is no number is sent as typed, for ``parse_plan`` to
name.

**Who**: every center role reads a biller's plans (:data:`Permission.BILLERS`); ``finance``
and ``operator`` set them (:data:`Permission.FEE_PLANS`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from gateway.billing.actors import console_actor
from gateway.billing.console_access import ConsoleUser, Permission, may
from gateway.errors import FieldError, InvalidRequest, NotFound
from gateway.fee_model import Cycle, NoticeKind, Rounding
from gateway.model import Channel
from gateway.money.fees import STAMP_CHARGES
from gateway.money.settlement import SettlementApi
from gateway.validation import BILLER_ID

_DIGITS = str.maketrans("０１２３４５６７８９，", "0123456789,")

#: The console's names of the plan's fields, for parse_plan's messages.
FIELD_LABELS: dict[str, str] = {
    "effective_from": "適用開始日",
    "cycle": "締め",
    "payout_days": "振込日（締日の何営業日後）",
    "settlement_fee": "振込手数料（1回）",
    "tax_rate": "消費税率",
    "tax_rounding": "消費税の端数",
    "channels": "支払方法ごとの手数料",
    "initial_fee": "初期費用",
    "monthly_fee": "月額基本料",
    "waive_idle_months": "収納のない月の基本料",
    "per_bill": "請求登録1件",
    "notices": "通知1件",
}
_CHANNEL_NAMES = {"cvs": "コンビニ", "payeasy": "ペイジー", "transfer": "口座振替"}
_RATE_NAMES = {
    "per_payment": "収納1件",
    "per_uncollected": "未収1件",
    "stamp_charge": "印紙代",
}
_NOTICE_NAMES = {"email": "メール", "sms": "SMS", "sheet": "払込票"}
for _c, _cn in _CHANNEL_NAMES.items():
    FIELD_LABELS[f"channels.{_c}"] = f"{_cn}の手数料"
    for _r, _rn in _RATE_NAMES.items():
        FIELD_LABELS[f"channels.{_c}.{_r}"] = f"{_cn}：{_rn}"
for _n, _nn in _NOTICE_NAMES.items():
    FIELD_LABELS[f"notices.{_n}"] = f"通知1件：{_nn}"

CYCLES = {
    Cycle.MONTHLY.value: "月末締め",
    Cycle.TWICE_MONTHLY.value: "15日・月末締め",
    Cycle.THREE_TIMES_MONTHLY.value: "10日・20日・月末締め",
    Cycle.SIX_TIMES_MONTHLY.value: "5日ごと・月末締め",
}
ROUNDINGS = {
    Rounding.FLOOR.value: "切り捨て",
    Rounding.HALF_UP.value: "四捨五入",
    Rounding.CEIL.value: "切り上げ",
}


def _number(fields: Mapping[str, str], name: str) -> int | str | None:
    """An integer field as the plan takes it: None when empty, the text itself when it is no
    number (parse_plan names it)."""
    raw = (fields.get(name) or "").strip()
    if not raw:
        return None
    plain = raw.translate(_DIGITS).replace(",", "").removeprefix("¥").removeprefix("￥")
    return int(plain) if re.fullmatch(r"[0-9]{1,12}", plain) else raw


def plan_body(fields: Mapping[str, str]) -> dict[str, Any]:
    """The fee-plan form as ``PUT /v1/billers/{id}/fee-plans/{day}`` takes its body: the
    channels ticked (``rate_<channel>``) with their rates (``<channel>_per_payment``,
    ``<channel>_per_uncollected``, ``cvs_stamp_charge``), the notices' rates
    (``notice_<kind>``)."""
    body: dict[str, Any] = {"cycle": (fields.get("cycle") or "").strip()}
    for name in (
        "payout_days",
        "settlement_fee",
        "tax_rate",
        "initial_fee",
        "monthly_fee",
        "per_bill",
    ):
        value = _number(fields, name)
        if value is not None:
            body[name] = value
    rounding = (fields.get("tax_rounding") or "").strip()
    if rounding:
        body["tax_rounding"] = rounding
    body["waive_idle_months"] = bool(fields.get("waive_idle_months"))
    channels: dict[str, Any] = {}
    for channel in Channel:
        c = channel.value
        if not fields.get(f"rate_{c}"):
            continue
        rates: dict[str, Any] = {}
        kinds = ["per_payment", "per_uncollected"]
        if channel in STAMP_CHARGES:
            kinds.append("stamp_charge")
        for kind in kinds:
            value = _number(fields, f"{c}_{kind}")
            if value is not None:
                rates[kind] = value
        channels[c] = rates
    body["channels"] = channels
    notices = {}
    for kind in NoticeKind:
        value = _number(fields, f"notice_{kind.value}")
        if value is not None:
            notices[kind.value] = value
    if notices:
        body["notices"] = notices
    return body


def plan_fields(doc: Mapping[str, Any] | None) -> dict[str, str]:
    """A stored plan version as the form's fields (:func:`plan_body`'s inverse), to start the
    next version from; a new contract's defaults without one."""
    if doc is None:
        return {"cycle": Cycle.MONTHLY.value, "tax_rate": "10", "tax_rounding": "floor"}
    fields = {
        name: str(doc[name])
        for name in (
            "cycle",
            "payout_days",
            "settlement_fee",
            "tax_rate",
            "tax_rounding",
            "initial_fee",
            "monthly_fee",
            "per_bill",
        )
    }
    if doc.get("waive_idle_months"):
        fields["waive_idle_months"] = "1"
    for channel, rates in doc.get("channels", {}).items():
        fields[f"rate_{channel}"] = "1"
        for kind, value in rates.items():
            fields[f"{channel}_{kind}"] = str(value)
    for kind, value in doc.get("notices", {}).items():
        fields[f"notice_{kind}"] = str(value)
    return fields


def _day(fields: Mapping[str, str]) -> date:
    raw = (fields.get("effective_from") or "").strip()
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise InvalidRequest([FieldError("effective_from", "日付（YYYY-MM-DD）を入力してください")])


class ConsoleFeePlans:
    def __init__(self, api: SettlementApi) -> None:
        self.api = api

    async def plans(self, user: ConsoleUser, biller_id: str) -> list[dict[str, Any]]:
        """The biller's plan versions, oldest first (``GET /v1/billers/{id}/fee-plans``)."""
        if not may(user.role, Permission.BILLERS) or not re.fullmatch(BILLER_ID, biller_id):
            raise NotFound(f"biller {biller_id[:32]}")
        found = await self.api.plans(biller_id)
        return list(found["plans"])

    async def put(
        self, user: ConsoleUser, biller_id: str, fields: Mapping[str, str]
    ) -> tuple[bool, dict[str, Any]]:
        """(created, the stored version); InvalidRequest naming the plan's fields, Conflict
        for a date a settlement covers, NotFound for an unknown biller."""
        if not may(user.role, Permission.FEE_PLANS) or not re.fullmatch(BILLER_ID, biller_id):
            raise NotFound(f"biller {biller_id[:32]}")
        day = _day(fields)
        status, doc = await self.api.put_plan(
            console_actor(user.login), biller_id, day, plan_body(fields)
        )
        return status == 201, doc
