"""``[cvs]``: the convenience-store agencies (``[[cvs.agencies]]``, or the single ``[cvs]`` of
older files read as the agency ``default``); docs/config.md and docs/networks/cvs.md §1.1."""

from __future__ import annotations

from gateway.config.sections import (
    AssignedBy,
    CvsAgency,
    CvsConfig,
    CvsFilesConfig,
    CvsLinkConfig,
    CvsPullConfig,
)
from gateway.config.table import (
    Table,
    at_most,
    peer_names,
    require_https,
    section,
    split_url,
)
from gateway.errors import ConfigError
from gateway.mappers.cvs.stamp import DEFAULT_STAMP_THRESHOLDS, StampThreshold

_AGENCY_ID = r"[a-z0-9][a-z0-9_-]{0,31}"
_LEGACY_CVS_KEYS = (
    "company_code",
    "assigned_by",
    "center_code",
    "ceiling",
    "stamp_thresholds",
    "no_deadline",
    "link",
    "files",
    "agency",
)


def _cvs(t: Table) -> CvsConfig:
    """``[cvs]``: either ``[[cvs.agencies]]`` (one entry per agency, with ``default_agency``
    when there are several) or, as in older files, the one agency's keys in ``[cvs]`` itself
    (read as the agency ``default``)."""
    items = t.array_of_tables("agencies")
    if items is None:
        agency = _cvs_agency(t, "default", pull_key="agency")
        return CvsConfig((agency,), agency.id)
    for name in _LEGACY_CVS_KEYS:
        if name in t.raw:
            raise ConfigError(
                t.key(name),
                "belongs in an agency's entry ([[cvs.agencies]]) when agencies are listed",
            )
    if not items:
        raise ConfigError(t.key("agencies"), "must list at least one agency")
    agencies: list[CvsAgency] = []
    for item in items:
        agency = _cvs_agency(
            item, item.string("id", pattern=_AGENCY_ID, hint="an agency id"), "csv"
        )
        item.done()
        for other in agencies:
            if other.id == agency.id:
                raise ConfigError(item.key("id"), f"agency {agency.id!r} is listed twice")
            if other.company_code == agency.company_code:
                raise ConfigError(
                    item.key("company_code"),
                    f"{agency.company_code} is already the company code of agency {other.id}",
                )
            if agency.link and other.link and agency.link.listen == other.link.listen:
                raise ConfigError(item.key("link.listen"), f"is also the link of agency {other.id}")
            if agency.files and other.files and agency.files.inbox == other.files.inbox:
                raise ConfigError(
                    item.key("files.inbox"), f"is also the inbox of agency {other.id}"
                )
        agencies.append(agency)
    ids = [a.id for a in agencies]
    if len(agencies) == 1:
        default = t.string("default_agency", ids[0])
    else:
        default = t.string("default_agency")  # required: a biller's agency is never guessed
    if default not in ids:
        raise ConfigError(t.key("default_agency"), f"{default!r} is not one of {', '.join(ids)}")
    return CvsConfig(tuple(agencies), default)


def _cvs_agency(t: Table, agency_id: str, pull_key: str) -> CvsAgency:
    company_code = t.string("company_code", pattern=r"[0-9]{6}", hint="a 6-digit company code")
    assigned = t.string("assigned_by", "gateway")
    try:
        assigned_by = AssignedBy(assigned)
    except ValueError:
        raise ConfigError(t.key("assigned_by"), f"{assigned!r} is not agency or gateway") from None
    center_code = t.string("center_code", None, pattern=r"[0-9]{5}", hint="a 5-digit code")
    if center_code is not None and assigned_by is not AssignedBy.AGENCY:
        raise ConfigError(
            t.key("center_code"), 'is the code an agency assigned: only with assigned_by = "agency"'
        )
    ceiling = t.integer("ceiling", 300_000, low=1, high=999_999)
    thresholds: tuple[StampThreshold, ...] = DEFAULT_STAMP_THRESHOLDS
    items = t.array_of_tables("stamp_thresholds")
    if items is not None:
        read = []
        for item in items:
            read.append(
                StampThreshold(item.day("effective_from"), item.integer("threshold", low=1))
            )
            item.done()
        if not read:
            raise ConfigError(t.key("stamp_thresholds"), "must list at least one threshold")
        thresholds = tuple(sorted(read, key=lambda s: s.effective_from))
        if len({s.effective_from for s in thresholds}) != len(thresholds):
            raise ConfigError(t.key("stamp_thresholds"), "two thresholds share a date")

    def link(s: Table) -> CvsLinkConfig:
        listen = s.endpoint("listen", client=False)
        return CvsLinkConfig(
            listen,
            s.number("heartbeat_timeout", 60),
            peers=peer_names(s, "peers"),
            ca=s.path_value("ca", None) if "ca" in s.raw else None,
            max_unacked=s.integer("max_unacked", 100, low=1, high=10_000),
            max_connections=s.integer("max_connections", 4, low=1, high=1000),
            handshake_timeout=at_most(
                s, "handshake_timeout", s.number("handshake_timeout", 10.0), 300
            ),
            reuse_port=s.reuse_port(listen),
        )

    def files(s: Table) -> CvsFilesConfig:
        return CvsFilesConfig(s.path_value("inbox"), s.number("poll_interval", 5.0))

    def pull(s: Table) -> CvsPullConfig:
        url = s.string("url")
        parts = split_url(s.key("url"), url, "an http(s) URL")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(s.key("url"), f"{url!r} is not an http(s) URL")
        require_https(s.key("url"), url)  # it carries the agency password
        return CvsPullConfig(
            url=url,
            user_id=s.string("user_id"),
            password=s.string("password"),
            interval=s.number("interval", 300.0),
            lookback_days=s.integer("lookback_days", 7, low=0, high=366),
            margin_days=s.integer("margin_days", 2, low=0, high=366),
            max_backoff=s.number("max_backoff", 3600.0),
            timeout=s.number("timeout", 30.0),
        )

    return CvsAgency(
        id=agency_id,
        company_code=company_code,
        assigned_by=assigned_by,
        center_code=center_code,
        ceiling=ceiling,
        stamp_thresholds=thresholds,
        no_deadline=t.boolean("no_deadline", False),
        link=section(t, "link", link),
        files=section(t, "files", files),
        pull=section(t, pull_key, pull),
    )
