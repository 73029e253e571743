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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from gateway.config import Config, CvsAgency
from gateway.errors import Conflict, FieldError, InvalidRequest
from gateway.model import Biller, Channel
from gateway.store.billers import create_biller
from gateway.validation import BILLER_ID

# Half-width katakana without small kana, digits, capitals, space and ( ) - . /
KANA = r"[\uFF66\uFF70-\uFF9FA-Z0-9 ().\-/]{1,40}"
CVS_CODE = r"[0-9]{5}"


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
    if not 1 <= len(app.name) <= 100:
        bad.append(FieldError("name", "must be 1-100 characters"))
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
    if code is not None and not re.fullmatch(r"[0-9]{5}", code):
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


def onboard(conn: Connection, config: Config, app: BillerApplication, now: datetime) -> Biller:
    """Check ``app`` and add the biller (:class:`InvalidRequest`, or :class:`Conflict` for an
    id or an agency code already taken)."""
    app = check_application(config, app)
    return create_biller(
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
