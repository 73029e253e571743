"""Onboarding a biller: the checks that ``gateway-admin biller create`` and the admin API's
``POST /v1/billers`` share, and how a biller looks to the operator.

A biller with the convenience-store channel is put under one of the center's agencies
(``[[cvs.agencies]]``; ``[cvs] default_agency`` when none is named). What its barcodes carry
after the agency's company code depends on how that agency gives out codes
(docs/networks/cvs.md, "Where a biller's 5 digits come from"):

- ``assigned_by = "gateway"``: the biller's own 5-digit gateway code;
- ``assigned_by = "agency"`` with a code per biller: the code the agency assigned to the biller,
  given at onboarding (``cvs_code``) and unique within the agency;
- ``assigned_by = "agency"`` with one ``center_code``: the center's code, then the biller's
  gateway code, then the serial (:class:`gateway.mappers.cvs.barcode.FreeFieldLayout`).

The admin API reads its body with :func:`parse_biller_request` and runs through
:class:`BillerService` (``POST /v1/billers``, ``GET /v1/billers``, ``GET /v1/billers/{id}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from twisted.internet.interfaces import IReactorTime

from gateway.billing.bills import decode_cursor, encode_cursor
from gateway.chain_rules import ChainRules, parse_rules_change
from gateway.clock import now as clock_now
from gateway.config import Config, CvsAgency
from gateway.errors import Conflict, FieldError, InvalidRequest
from gateway.model import Biller, Channel, Outcome
from gateway.notice_rules import NoticeRules
from gateway.notice_rules import parse_rules_change as parse_notice_rules
from gateway.store import Store
from gateway.store.audit import record
from gateway.store.billers import create_biller, get_biller, list_billers, update_biller
from gateway.store.idempotency import IdempotencyClaim, StoredResponse, run_idempotent
from gateway.validation import BILLER_ID, Fields

# Half-width katakana without small kana, digits, capitals, space and ( ) - . /
KANA = r"[\uFF66\uFF70-\uFF9FA-Z0-9 ().\-/]{1,40}"
KANA_MAX = 40
CVS_CODE = r"[0-9]{5}"
PAYEASY_INSTITUTION_CODE = r"[0-9]{5}"
NAME_MAX = 100
AGENCY_ID_MAX = 32  # billers.cvs_agency; an id the configuration does not list is refused


@dataclass(frozen=True)
class BillerApplication:
    """A new biller as the operator asks for it."""

    biller_id: str
    name: str
    kana: str
    channels: frozenset[Channel]
    payeasy_institution_code: str | None = None
    cvs_agency: str | None = None  # None: [cvs] default_agency (with the cvs channel)
    cvs_code: str | None = None  # the code its agency assigned to it


def check_application(config: Config, app: BillerApplication) -> BillerApplication:
    """``app`` with its agency resolved, or :class:`InvalidRequest` naming every bad field."""
    bad: list[FieldError] = []
    if not re.fullmatch(BILLER_ID, app.biller_id):
        bad.append(FieldError("id", f"{app.biller_id!r} must be 1-32 of a-z, 0-9, '_' or '-'"))
    if not 1 <= len(app.name) <= NAME_MAX:
        bad.append(FieldError("name", f"must be 1-{NAME_MAX} characters"))
    if not re.fullmatch(KANA, app.kana):
        bad.append(
            FieldError(
                "kana",
                f"{app.kana!r} must be 1-40 half-width katakana (no small kana),"
                " capitals, digits, space or ( ) - . /",
            )
        )
    if not app.channels:
        bad.append(FieldError("channels", "must name at least one channel"))
    off = sorted(app.channels - config.channels)
    if off:
        bad.append(FieldError("channels", f"{', '.join(off)} is not enabled in the configuration"))
    code = app.payeasy_institution_code
    if code is not None and not re.fullmatch(PAYEASY_INSTITUTION_CODE, code):
        bad.append(FieldError("payeasy_institution_code", "must be 5 digits"))
    agency_id, cvs_code = _cvs_contract(config, app, bad)
    if bad:
        raise InvalidRequest(bad, title="The biller cannot be created")
    return BillerApplication(
        app.biller_id,
        app.name,
        app.kana,
        app.channels,
        app.payeasy_institution_code,
        agency_id,
        cvs_code,
    )


def _cvs_contract(
    config: Config, app: BillerApplication, bad: list[FieldError]
) -> tuple[str | None, str | None]:
    """The biller's agency id and agency-assigned code, checked against the agency's terms."""
    if Channel.CVS not in app.channels or config.cvs is None:
        if app.cvs_agency is not None:
            bad.append(FieldError("cvs_agency", "is only for a biller with the cvs channel"))
        if app.cvs_code is not None:
            bad.append(FieldError("cvs_code", "is only for a biller with the cvs channel"))
        return None, None
    try:
        agency: CvsAgency = config.cvs.agency(app.cvs_agency)
    except KeyError:
        ids = ", ".join(a.id for a in config.cvs.agencies)
        bad.append(FieldError("cvs_agency", f"{app.cvs_agency!r} is not an agency ({ids})"))
        return None, None
    if agency.codes_per_biller:
        if app.cvs_code is None:
            bad.append(
                FieldError(
                    "cvs_code",
                    f"is required: agency {agency.id} assigns each biller its own 5-digit code",
                )
            )
        elif not re.fullmatch(CVS_CODE, app.cvs_code):
            bad.append(FieldError("cvs_code", f"{app.cvs_code!r} is not 5 digits"))
    elif app.cvs_code is not None:
        how = (
            f"holds one code ({agency.center_code}) for the whole center"
            if agency.center_code is not None
            else "is assigned_by the gateway, which mints the biller's code"
        )
        bad.append(FieldError("cvs_code", f"is not taken: agency {agency.id} {how}"))
    return agency.id, app.cvs_code


def onboard(
    conn: Connection,
    config: Config,
    app: BillerApplication,
    now: datetime,
    actor: str | None = None,
) -> Biller:
    """Check ``app`` and add the biller (:class:`InvalidRequest`, or :class:`Conflict` for an
    id or an agency code already taken); with an ``actor``, written to the audit log."""
    app = check_application(config, app)
    biller = create_biller(
        conn,
        biller_id=app.biller_id,
        name=app.name,
        kana=app.kana,
        channels=app.channels,
        payeasy_institution_code=app.payeasy_institution_code,
        now=now,
        cvs_agency=app.cvs_agency,
        cvs_code=app.cvs_code,
    )
    if actor is not None:
        after = biller_json(config, biller)
        record(
            conn,
            actor,
            "biller.create",
            f"biller:{biller.biller_id}",
            now,
            biller_id=biller.biller_id,
            after=after,
        )
    return biller


def biller_json(config: Config, biller: Biller) -> dict[str, Any]:
    """A biller as the operator sees it, with the codes its slips carry."""
    doc: dict[str, Any] = {
        "biller_id": biller.biller_id,
        "code": biller.code,
        "name": biller.name,
        "kana": biller.kana,
        "channels": sorted(biller.channels),
        "payeasy_institution_code": biller.payeasy_institution_code
        or (config.mpn.institution_code if config.mpn else None),
        "created_at": biller.created_at.isoformat(),
        "suspended_at": biller.suspended_at.isoformat() if biller.suspended_at else None,
        "chain_rules": biller.chain_rules.document(),
        **biller.notice_rules.document(),  # fallback, notices (gateway.notice_rules)
    }
    if Channel.CVS in biller.channels and config.cvs is not None:
        try:
            agency = config.cvs.agency(biller.cvs_agency)
        except KeyError:  # an agency taken out of the configuration
            doc["cvs"] = {"agency": biller.cvs_agency, "company_code": None, "prefix": None}
            return doc
        try:
            prefix: str | None = agency.prefix_of(biller)
        except Conflict:  # under an agency that assigns codes, without one
            prefix = None
        # prefix: what follows the company code in each of its barcodes
        doc["cvs"] = {"agency": agency.id, "company_code": agency.company_code, "prefix": prefix}
    return doc


#: What the API calls the fields that :func:`check_application` names as the command line does.
_API_FIELDS = {"id": "biller_id"}


def _api_field(name: str) -> str:
    return _API_FIELDS.get(name, name)


def _root(field: str) -> str:
    """The body field an error is about: ``channels`` for ``channels[2]``."""
    return field.split("[", 1)[0]


def parse_biller_request(config: Config, body: object) -> BillerApplication:
    """The application in a ``POST /v1/billers`` body, checked and with its agency resolved.

    :class:`InvalidRequest` naming every bad field: malformed (a wrong type, a missing or an
    unknown field) before anything else; then what :func:`check_application` refuses, the
    fields named as the body names them (``biller_id``, not the command line's ``id``)."""
    f = Fields(body)
    biller_id = f.string("biller_id", required=True, max_len=32)
    name = f.string("name", required=True, max_len=NAME_MAX)
    kana = f.string("kana", required=True, max_len=KANA_MAX)
    raw_channels = f.string_list("channels", required=True)
    payeasy = f.string("payeasy_institution_code", max_len=5)
    agency = f.string("cvs_agency", max_len=AGENCY_ID_MAX)
    cvs_code = f.string("cvs_code", max_len=5)
    f.finish()
    if f.malformed:
        f.raise_if_invalid()
    channels: set[Channel] = set()
    for i, raw in enumerate(raw_channels or ()):
        try:
            channel = Channel(raw)
        except ValueError:
            allowed = ", ".join(c.value for c in Channel)
            f.bad(f"channels[{i}]", f"{raw[:20]!r} is not one of {allowed}")
            continue
        if channel in channels:
            f.bad(f"channels[{i}]", f"{raw} is listed twice")
        channels.add(channel)
    app = BillerApplication(
        biller_id or "",
        name or "",
        kana or "",
        frozenset(channels),
        payeasy,
        agency,
        cvs_code,
    )
    bad = list(f.errors)
    flagged = {_root(e.field) for e in bad}  # the body's own rule said it first
    try:
        checked = check_application(config, app)
    except InvalidRequest as e:
        bad += [
            FieldError(_api_field(x.field), x.message)
            for x in e.errors
            if _api_field(x.field) not in flagged
        ]
    else:
        if not bad:
            return checked
    raise InvalidRequest(bad, title="The biller cannot be created")


def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


class BillerService:
    """The operator's billers through the admin API: each operation is one store interaction.

    The caller (:mod:`gateway.protocols.api.biller_routes`) has checked that the key is an
    admin key. ``biller_id`` and an agency's code are unique: a second biller with either is
    :class:`Conflict` naming the field; an ``Idempotency-Key`` replays the first answer."""

    def __init__(self, store: Store, clock: IReactorTime, config: Config) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.ttl = config.api.idempotency_ttl

    async def create(
        self, body: object, claim: IdempotencyClaim | None, actor: str | None = None
    ) -> StoredResponse:
        app = parse_biller_request(self.config, body)
        now = clock_now(self.clock)

        def effect(conn: Connection) -> StoredResponse:
            try:
                biller = onboard(conn, self.config, app, now, actor)
            except Conflict as e:
                raise Conflict(e.detail, e.field and _api_field(e.field)) from None
            return StoredResponse(Outcome.CREATED, _dumps(biller_json(self.config, biller)))

        return await self.store.run_interaction(
            "billers.create", run_idempotent, claim, now, self.ttl, effect
        )

    async def get(self, biller_id: str) -> dict[str, Any]:
        biller = await self.store.run_interaction("billers.get", get_biller, biller_id)
        return biller_json(self.config, biller)

    async def list(self, cursor: str | None, limit: int) -> dict[str, Any]:
        """A page of billers in the order of their codes; the cursor is the last one's code.
        (Billers are few, at most 99,999: the page is cut from all of them.)"""
        after = decode_cursor(cursor) if cursor is not None else 0
        found = await self.store.run_interaction("billers.list", list_billers)
        rest = [b for b in found if int(b.code) > after]
        page = rest[:limit]
        return {
            "data": [biller_json(self.config, b) for b in page],
            "next_cursor": encode_cursor(int(page[-1].code)) if len(rest) > limit else None,
        }

    async def update(self, actor: str, biller_id: str, body: object) -> dict[str, Any]:
        name, kana, channels, chain_rules, notice_rules = parse_biller_update(body)
        biller = await self.store.run_interaction(
            "billers.update",
            change_biller,
            self.config,
            actor,
            biller_id,
            clock_now(self.clock),
            name=name,
            kana=kana,
            channels=channels,
            chain_rules=chain_rules,
            notice_rules=notice_rules,
        )
        return biller_json(self.config, biller)

    async def suspend(self, actor: str, biller_id: str, body: object) -> dict[str, Any]:
        reason = parse_reason(body)
        biller = await self.store.run_interaction(
            "billers.suspend",
            set_suspended,
            self.config,
            actor,
            biller_id,
            True,
            reason,
            clock_now(self.clock),
        )
        return biller_json(self.config, biller)

    async def resume(self, actor: str, biller_id: str, body: object) -> dict[str, Any]:
        reason = parse_reason(body)
        biller = await self.store.run_interaction(
            "billers.resume",
            set_suspended,
            self.config,
            actor,
            biller_id,
            False,
            reason,
            clock_now(self.clock),
        )
        return biller_json(self.config, biller)


# --- changing a biller: name, kana, channels, chain rules; suspending and resuming it -----------

REASON_MAX = 500  # a suspension's (or a resumption's) reason, kept in the audit log


def parse_biller_update(
    body: object,
) -> tuple[
    str | None,
    str | None,
    frozenset[Channel] | None,
    Mapping[str, Any] | None,
    Mapping[str, Any] | None,
]:
    """A ``PATCH /v1/billers/{id}`` body: any of ``name``, ``kana``, ``channels``,
    ``chain_rules`` (gateway.chain_rules.parse_rules_change: the parts it names replace the
    biller's), ``fallback`` and ``notices`` (gateway.notice_rules.parse_rules_change, the same
    way; returned together as the notice rules' change), at least one (400 for a malformed body;
    the values are checked by :func:`change_biller`)."""
    f = Fields(body)
    name = f.string("name", max_len=NAME_MAX)
    kana = f.string("kana", max_len=KANA_MAX)
    raw_channels = f.string_list("channels")
    rules = f.obj("chain_rules")
    if rules is not None:
        parse_rules_change(rules, ChainRules())  # its errors, named chain_rules.…
    fallback, notices = f.obj("fallback"), f.obj("notices")
    if fallback is not None or notices is not None:
        parse_notice_rules(fallback, notices, NoticeRules())  # named fallback.… and notices.…
    f.finish()
    if f.malformed:
        f.raise_if_invalid()
    if (
        name is None
        and kana is None
        and raw_channels is None
        and rules is None
        and fallback is None
        and notices is None
    ):
        f.bad("body", "give at least one of name, kana, channels, chain_rules, fallback, notices")
        f.raise_if_invalid()
    channels: set[Channel] | None = None
    if raw_channels is not None:
        channels = set()
        for i, raw in enumerate(raw_channels):
            try:
                channel = Channel(raw)
            except ValueError:
                allowed = ", ".join(c.value for c in Channel)
                f.bad(f"channels[{i}]", f"{raw[:20]!r} is not one of {allowed}")
                continue
            if channel in channels:
                f.bad(f"channels[{i}]", f"{raw} is listed twice")
            channels.add(channel)
    f.raise_if_invalid()
    chain_rules = None if rules is None else rules.raw
    notice_rules: dict[str, Any] | None = None
    if fallback is not None or notices is not None:
        notice_rules = {}
        if fallback is not None:
            notice_rules["fallback"] = fallback.raw
        if notices is not None:
            notice_rules["notices"] = notices.raw
    return name, kana, None if channels is None else frozenset(channels), chain_rules, notice_rules


def parse_reason(body: object) -> str | None:
    """The optional body of a suspension or a resumption: ``{"reason": "…"}``."""
    if body is None:
        return None
    f = Fields(body)
    reason = f.string("reason", max_len=REASON_MAX)
    f.finish()
    f.raise_if_invalid()
    return reason


def change_biller(
    conn: Connection,
    config: Config,
    actor: str,
    biller_id: str,
    now: datetime,
    *,
    name: str | None = None,
    kana: str | None = None,
    channels: frozenset[Channel] | None = None,
    chain_rules: Mapping[str, Any] | None = None,
    notice_rules: Mapping[str, Any] | None = None,
) -> Biller:
    """Change a biller's name, kana, channels or chain rules, checked as at onboarding (a
    channel the configuration does not enable, or cvs under an agency that has no code for it,
    is :class:`InvalidRequest`), and write it to the audit log. ``chain_rules`` is a change of
    its chain rules as gateway.chain_rules.parse_rules_change reads it (the parts named replace
    the biller's). Its bills keep what they were issued with; its id, code and agency never
    change."""
    current = get_biller(conn, biller_id)
    new_rules = current.chain_rules
    if chain_rules is not None:
        f = Fields(chain_rules, "chain_rules")
        new_rules = parse_rules_change(f, current.chain_rules)
        f.raise_if_invalid()
    new_notice_rules = current.notice_rules
    if notice_rules is not None:  # {"fallback": {…}, "notices": {…}}, each optional
        errors: list[FieldError] = []
        malformed: list[FieldError] = []
        parts = {
            key: Fields(notice_rules[key], key, errors, malformed)
            for key in ("fallback", "notices")
            if key in notice_rules
        }
        new_notice_rules = parse_notice_rules(
            parts.get("fallback"), parts.get("notices"), current.notice_rules
        )
        Fields({}, "", errors, malformed).raise_if_invalid()
    new_channels = current.channels if channels is None else channels
    with_cvs = Channel.CVS in new_channels
    app = BillerApplication(
        biller_id,
        current.name if name is None else name,
        current.kana if kana is None else kana,
        new_channels,
        current.payeasy_institution_code,
        current.cvs_agency if with_cvs else None,
        current.cvs_code if with_cvs else None,
    )
    asked = {"name"} if name is not None else set()
    asked |= {"kana"} if kana is not None else set()
    asked |= {"channels", "cvs_agency", "cvs_code"} if channels is not None else set()
    try:
        check_application(config, app)
    except InvalidRequest as e:
        bad = [x for x in e.errors if x.field in asked]
        if bad:
            raise InvalidRequest(bad, title="The biller cannot be changed") from None
    changes: dict[str, Any] = {}
    if name is not None and name != current.name:
        changes["name"] = name
    if kana is not None and kana != current.kana:
        changes["kana"] = kana
    if channels is not None and channels != current.channels:
        changes["channels"] = channels
    if new_rules != current.chain_rules:
        changes["chain_rules"] = new_rules
    if new_notice_rules != current.notice_rules:
        changes["notice_rules"] = new_notice_rules
    if not changes:
        return current
    before, after = update_biller(conn, biller_id, changes)
    record(
        conn,
        actor,
        "biller.update",
        f"biller:{biller_id}",
        now,
        biller_id=biller_id,
        before=_changed(biller_json(config, before), changes),
        after=_changed(biller_json(config, after), changes),
    )
    return after


def _changed(doc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    shown = {"notice_rules": ("fallback", "notices")}  # a change and the keys that show it
    return {key: doc[key] for k in changes for key in shown.get(k, (k,))}


def set_suspended(
    conn: Connection,
    config: Config,
    actor: str,
    biller_id: str,
    suspend: bool,
    reason: str | None,
    now: datetime,
) -> Biller:
    """Suspend (or resume) a biller; suspending a suspended one changes nothing.

    A suspended biller's API keys are refused (403, within ``api.auth_cache_seconds``) and no
    bill of it is created (API, bulk files, its watched folder). What it has issued stays: its
    slips and Pay-easy numbers can still be paid, and every payment that arrives is recorded,
    confirmed, sent to its webhooks and settled as before (money is never refused)."""
    current = get_biller(conn, biller_id)
    if (current.suspended_at is not None) == suspend:
        return current
    _, after = update_biller(conn, biller_id, {"suspended_at": now if suspend else None})
    record(
        conn,
        actor,
        "biller.suspend" if suspend else "biller.resume",
        f"biller:{biller_id}",
        now,
        biller_id=biller_id,
        before={"suspended_at": biller_json(config, current)["suspended_at"]},
        after={"suspended_at": biller_json(config, after)["suspended_at"], "reason": reason},
    )
    return after
