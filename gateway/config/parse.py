"""The TOML file read into :class:`gateway.config.sections.Config`: every key checked (see
:mod:`gateway.config`)."""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from twisted.internet.endpoints import clientFromString, serverFromString

from gateway.config.sections import (
    ApiConfig,
    AssignedBy,
    BillsConfig,
    BulkConfig,
    Config,
    CvsAgency,
    CvsConfig,
    CvsFilesConfig,
    CvsLinkConfig,
    CvsPullConfig,
    DatabaseConfig,
    MailConfig,
    MetricsConfig,
    MpnConfig,
    RetentionConfig,
    SettlementConfig,
    TLSConfig,
    WebhooksConfig,
    ZenginConfig,
    _Network,
)
from gateway.errors import ConfigError
from gateway.infra.secretbox import key_from_environment, parse_key
from gateway.mappers.cvs.stamp import DEFAULT_STAMP_THRESHOLDS, StampThreshold

T = TypeVar("T")


_MISSING: Any = object()


class _Table:
    """One TOML table being read: typed getters that name the key's path, and a final check
    that no key was left unread (a misspelt key must not be silently ignored)."""

    def __init__(self, raw: object, path: str, base: Path) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(path, f"must be a table, not {type(raw).__name__}")
        self.raw: Mapping[str, Any] = raw
        self.path = path
        self.base = base
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def _get(self, name: str, kind: type | tuple[type, ...], kind_name: str, default: Any) -> Any:
        self.seen.add(name)
        if name not in self.raw:
            if default is _MISSING:
                raise ConfigError(self.key(name), "is required")
            return default
        value = self.raw[name]
        # bool is an int in Python; TOML keeps them apart and so do we.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise ConfigError(self.key(name), f"must be {kind_name}, not a boolean")
        if not isinstance(value, kind):
            raise ConfigError(self.key(name), f"must be {kind_name}, not {type(value).__name__}")
        return value

    def string(
        self, name: str, default: Any = _MISSING, pattern: str | None = None, hint: str = ""
    ) -> str:
        value: str = self._get(name, str, "a string", default)
        if pattern is not None and value is not default and not re.fullmatch(pattern, value):
            raise ConfigError(self.key(name), f"{value!r} is not {hint or pattern}")
        return value

    def integer(
        self, name: str, default: Any = _MISSING, low: int | None = None, high: int | None = None
    ) -> int:
        value: int = self._get(name, int, "an integer", default)
        if low is not None and value < low:
            raise ConfigError(self.key(name), f"{value} is below the minimum {low}")
        if high is not None and value > high:
            raise ConfigError(self.key(name), f"{value} is above the maximum {high}")
        return value

    def number(self, name: str, default: Any = _MISSING, low: float = 0.0) -> float:
        value = self._get(name, (int, float), "a number", default)
        if not math.isfinite(value):
            raise ConfigError(self.key(name), f"{value} is not a finite number")
        if value <= low:
            raise ConfigError(self.key(name), f"{value} must be greater than {low:g}")
        return float(value)

    def boolean(self, name: str, default: Any = _MISSING) -> bool:
        value: bool = self._get(name, bool, "true or false", default)
        return value

    def day(self, name: str) -> date:
        value = self._get(name, (date, str), "a date (YYYY-MM-DD)", _MISSING)
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise ConfigError(self.key(name), f"{value!r} is not a date (YYYY-MM-DD)") from None
        if not isinstance(value, date) or hasattr(value, "hour"):
            raise ConfigError(self.key(name), "must be a date (YYYY-MM-DD), not a date-time")
        return value

    def path_value(self, name: str, default: Any = _MISSING) -> Path:
        value = self.string(name, default)
        if not value:
            raise ConfigError(self.key(name), "must not be empty")
        try:
            path = Path(value).expanduser()
        except RuntimeError as e:
            raise ConfigError(self.key(name), f"{value!r}: {e}") from None
        return path if path.is_absolute() else (self.base / path)

    def endpoint(self, name: str, *, client: bool, default: Any = _MISSING) -> str:
        value = self.string(name, default)
        try:
            # Parsing builds an endpoint object without touching the network or a reactor.
            endpoint = clientFromString(None, value) if client else serverFromString(None, value)
        except Exception as e:
            raise ConfigError(self.key(name), f"{value!r} is not a Twisted endpoint: {e}") from None
        port = getattr(endpoint, "_port", None)  # TCP endpoints: refuse what cannot be bound
        if isinstance(port, int) and not (1 if client else 0) <= port <= 65535:
            raise ConfigError(self.key(name), f"{value!r}: port {port} is out of range")
        return value

    def table(self, name: str, required: bool = False) -> _Table | None:
        self.seen.add(name)
        if name not in self.raw:
            if required:
                raise ConfigError(self.key(name), "is required")
            return None
        return _Table(self.raw[name], self.key(name), self.base)

    def array_of_tables(self, name: str) -> list[_Table] | None:
        self.seen.add(name)
        if name not in self.raw:
            return None
        value = self.raw[name]
        if not isinstance(value, list):
            raise ConfigError(self.key(name), "must be an array of tables ([[...]])")
        return [_Table(item, f"{self.key(name)}[{i}]", self.base) for i, item in enumerate(value)]

    def done(self) -> None:
        for name in self.raw:
            if name not in self.seen:
                raise ConfigError(self.key(name), "unknown key")


def _section(
    parent: _Table, name: str, read: Callable[[_Table], T], required: bool = False
) -> T | None:
    table = parent.table(name, required)
    if table is None:
        return None
    value = read(table)
    table.done()
    return value


def _database(t: _Table) -> DatabaseConfig:
    url = t.string("url", "sqlite:///var/gateway.sqlite3")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(t.key("url"), f"{url!r} is not a database URL") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(t.key("url"), "only sqlite and postgresql databases are supported")
    if parsed.get_backend_name() == "postgresql" and parsed.drivername != "postgresql+psycopg":
        raise ConfigError(t.key("url"), "use the psycopg driver: postgresql+psycopg://...")
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database or ""
        if db in ("", ":memory:"):
            raise ConfigError(t.key("url"), "an SQLite database must be a file")
        if not Path(db).is_absolute():
            url = parsed.set(database=str(t.base / db)).render_as_string(hide_password=False)
    pool_size = t.integer("pool_size", 10, low=1, high=200)
    return DatabaseConfig(url, pool_size, t.boolean("migrate_on_start", False))


def _api(t: _Table) -> ApiConfig:
    listen = t.endpoint("listen", client=False)
    public_url = t.string("public_url").rstrip("/")
    parts = urlsplit(public_url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.query
        or parts.fragment
        or "#" in public_url
    ):
        raise ConfigError(t.key("public_url"), f"{public_url!r} is not an http(s) base URL")
    _require_https(t.key("public_url"), public_url)
    ttl = t.integer("idempotency_ttl_hours", 24, low=24, high=24 * 30)
    return ApiConfig(
        listen=listen,
        public_url=public_url,
        idempotency_ttl=timedelta(hours=ttl),
        max_page_size=t.integer("max_page_size", 100, low=1, high=1000),
        # A revoked key works until its cache entry expires: a minute at most.
        auth_cache_seconds=float(t.integer("auth_cache_seconds", 10, low=0, high=60)),
        **_http_limits(t),
    )


def _http_limits(t: _Table) -> dict[str, Any]:
    """The API listener's limits (the ``ApiConfig`` fields of the same names)."""
    max_body = t.integer("max_body_bytes", 1024 * 1024, low=1024, high=64 * 1024 * 1024)
    max_file = t.integer("max_file_bytes", 64 * 1024 * 1024, low=1024, high=1024 * 1024 * 1024)
    if max_file < max_body:
        raise ConfigError(t.key("max_file_bytes"), f"must be at least max_body_bytes ({max_body})")
    header_timeout = t.number("header_timeout", 10.0)
    request_timeout = t.number("request_timeout", 120.0)
    if request_timeout < header_timeout:
        raise ConfigError(
            t.key("request_timeout"), f"must be at least header_timeout ({header_timeout:g})"
        )
    return {
        "max_body_bytes": max_body,
        "max_file_bytes": max_file,
        "header_timeout": header_timeout,
        "request_timeout": request_timeout,
        "max_connections_per_address": t.integer(
            "max_connections_per_address", 64, low=0, high=100_000
        ),
        "requests_per_second": t.number("requests_per_second", 50.0),
        "request_burst": t.integer("request_burst", 100, low=1, high=100_000),
        "auth_failures_per_second": t.number("auth_failures_per_second", 1.0),
        "auth_failure_burst": t.integer("auth_failure_burst", 20, low=1, high=100_000),
    }


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback  # 127.0.0.0/8, ::1
    except ValueError:
        return False


def _require_https(key: str, url: str) -> None:
    """``url`` must be https unless its host is a loopback address (development and tests)."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not _is_loopback(parts.hostname or ""):
        raise ConfigError(
            key, f"{url!r} must be https:// (plain http only on a loopback host such as 127.0.0.1)"
        )


def _tls(t: _Table) -> TLSConfig:
    return TLSConfig(t.path_value("ca"), t.path_value("certificate"), t.path_value("key"))


def _bills(t: _Table) -> BillsConfig:
    return BillsConfig(
        max_due_days=t.integer("max_due_days", 365, low=1, high=3650),
        expiry_interval=t.number("expiry_interval", 300.0),
        retention_days=t.integer("retention_days", 92, low=1, high=3650),
    )


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


def _cvs(t: _Table) -> CvsConfig:
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


def _cvs_agency(t: _Table, agency_id: str, pull_key: str) -> CvsAgency:
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

    def link(s: _Table) -> CvsLinkConfig:
        return CvsLinkConfig(
            s.endpoint("listen", client=False),
            s.number("heartbeat_timeout", 60),
            peers=_peer_names(s, "peers"),
            ca=s.path_value("ca", None) if "ca" in s.raw else None,
            max_unacked=s.integer("max_unacked", 100, low=1, high=10_000),
            max_connections=s.integer("max_connections", 4, low=1, high=1000),
            handshake_timeout=_at_most(
                s, "handshake_timeout", s.number("handshake_timeout", 10.0), 300
            ),
        )

    def files(s: _Table) -> CvsFilesConfig:
        return CvsFilesConfig(s.path_value("inbox"), s.number("poll_interval", 5.0))

    def pull(s: _Table) -> CvsPullConfig:
        url = s.string("url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(s.key("url"), f"{url!r} is not an http(s) URL")
        _require_https(s.key("url"), url)  # it carries the agency password
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
        link=_section(t, "link", link),
        files=_section(t, "files", files),
        pull=_section(t, pull_key, pull),
    )


#: A certificate name: printable, no control character, no surrounding space.
_CERT_NAME = re.compile(r"[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]{0,251}[^\x00-\x20\x7f])?")


def _peer_names(t: _Table, name: str) -> tuple[str, ...]:
    """A required, non-empty list of certificate names (CN or DNS subjectAltName)."""
    value = t._get(name, list, "a list of certificate names", _MISSING)
    names: list[str] = []
    for item in value:
        if not isinstance(item, str) or not _CERT_NAME.fullmatch(item):
            raise ConfigError(t.key(name), f"{item!r} is not a certificate name")
        names.append(item)
    if not names:
        raise ConfigError(t.key(name), "must list at least one certificate name")
    if len({n.casefold() for n in names}) != len(names):
        raise ConfigError(t.key(name), "lists a name twice")
    return tuple(names)


def _at_most(t: _Table, name: str, value: float, high: float) -> float:
    if value > high:
        raise ConfigError(t.key(name), f"{value:g} is above the maximum {high:g}")
    return value


def _mpn(t: _Table) -> MpnConfig:
    connect = t.endpoint("connect", client=True, default=None) if "connect" in t.raw else None
    t.seen.add("connect")
    center_code = t.string("center_code", None, pattern=r"[0-9]{4}", hint="4 digits")
    if connect is not None and center_code is None:
        raise ConfigError(t.key("center_code"), "is required with mpn.connect")
    hostname = t.string(
        "hostname", None, pattern=r"[A-Za-z0-9.\-:]{1,253}", hint="a host name or address"
    )
    if connect is not None and hostname is None:
        raise ConfigError(
            t.key("hostname"),
            "is required with mpn.connect: the name the center's certificate carries",
        )
    close_at = t.string(
        "close_at", "23:50", pattern=r"([01][0-9]|2[0-3]):[0-5][0-9]", hint="a time HH:MM"
    )
    return MpnConfig(
        institution_code=t.string("institution_code", pattern=r"[0-9]{5}", hint="5 digits"),
        connect=connect,
        center_code=center_code,
        confirmation_digits=t.integer("confirmation_digits", 6, low=4, high=6),
        max_amount=t.integer("max_amount", 9_999_999, low=1, high=9_999_999_999),
        hostname=hostname,
        close_at=dt_time(int(close_at[:2]), int(close_at[3:])),
        guard_limit=t.integer("guard_limit", 5, low=1, high=100),
        ca=t.path_value("ca", None) if "ca" in t.raw else None,
        number_key=bytes.fromhex(
            t.string(
                "number_key",
                pattern=r"[0-9a-fA-F]{32,128}",
                hint="32 to 128 hexadecimal digits (make one with: openssl rand -hex 32)",
            )
        ),
    )


def _zengin(t: _Table) -> ZenginConfig:
    request_at = t.string(
        "request_at", None, pattern=r"([01][0-9]|2[0-3]):[0-5][0-9]", hint="a time HH:MM"
    )
    separator = t.string("separator", "crlf", pattern=r"crlf|none", hint="crlf or none")
    return ZenginConfig(
        outbox=t.path_value("outbox"),
        inbox=t.path_value("inbox"),
        max_amount=t.integer("max_amount", 9_999_999, low=1, high=9_999_999_999),
        poll_interval=t.number("poll_interval", 5.0),
        request_at=None
        if request_at is None
        else dt_time(int(request_at[:2]), int(request_at[3:])),
        lead_days=t.integer("lead_days", 3, low=1, high=20),
        separator=b"\r\n" if separator == "crlf" else b"",
        eof_mark=t.boolean("eof_mark", False),
        check_bank_master=t.boolean("check_bank_master", True),
    )


def _mail(t: _Table) -> MailConfig:
    email = r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+"
    username = t.string("username", None)
    password = t.string("password", None)
    if (username is None) != (password is None):
        missing = "password" if password is None else "username"
        raise ConfigError(t.key(missing), "username and password go together")
    relay = t.endpoint("relay", client=True)
    relay_host = getattr(clientFromString(None, relay), "_host", None)
    tls_hostname = t.string(
        "tls_hostname",
        relay_host if isinstance(relay_host, str) else None,
        pattern=r"[A-Za-z0-9.\-:]{1,253}",
        hint="a host name or address",
    )
    if tls_hostname is None:
        raise ConfigError(t.key("tls_hostname"), "is required when the relay is not tcp:HOST:PORT")
    return MailConfig(
        relay=relay,
        sender=t.string("sender", pattern=email, hint="an e-mail address"),
        sender_name=t.string("sender_name", None),
        username=username,
        password=password,
        require_tls=t.boolean("require_tls", False),
        poll_interval=t.number("poll_interval", 5.0),
        timeout=t.number("timeout", 30.0),
        max_attempts=t.integer("max_attempts", 8, low=1, high=50),
        retry_base=t.number("retry_base", 60.0),
        retry_cap=t.number("retry_cap", 3600.0),
        ca=t.path_value("ca") if "ca" in t.raw else None,
        tls_hostname=tls_hostname,
    )


def _webhooks(t: _Table) -> WebhooksConfig:
    def at_most(name: str, value: float, high: float) -> float:
        if value > high:
            raise ConfigError(t.key(name), f"{value:g} is above the maximum {high:g}")
        return value

    timeout = at_most("timeout", t.number("timeout", 10.0), 300)
    max_age_hours = at_most("max_age_hours", t.number("max_age_hours", 72.0), 720)
    base = at_most("backoff_base", t.number("backoff_base", 10.0), 86400)
    cap = at_most("backoff_cap", t.number("backoff_cap", 3600.0), 86400)
    if cap < base:
        raise ConfigError(t.key("backoff_cap"), f"{cap:g} is below backoff_base ({base:g})")
    concurrency = t.integer("concurrency", 16, low=1, high=1000)
    per_endpoint = t.integer("per_endpoint", 4, low=1, high=100)
    if per_endpoint > concurrency:
        raise ConfigError(
            t.key("per_endpoint"), f"{per_endpoint} is above concurrency ({concurrency})"
        )
    return WebhooksConfig(
        timeout=timeout,
        max_age=timedelta(hours=max_age_hours),
        backoff_base=base,
        backoff_cap=cap,
        poll_interval=at_most("poll_interval", t.number("poll_interval", 1.0), 60),
        concurrency=concurrency,
        per_endpoint=per_endpoint,
        allow_http=t.boolean("allow_http", False),
        log_retention_days=t.integer("log_retention_days", 30, low=1, high=3650),
        allowed_networks=_networks(t, "allowed_networks"),
    )


def _networks(t: _Table, name: str) -> tuple[_Network, ...]:
    """A list of networks in CIDR notation (``10.20.0.0/16``, ``fd12::/64``; a bare address is
    a /32 or /128); empty by default."""
    value = t._get(name, list, "a list of networks (CIDR strings)", [])
    networks = []
    for i, item in enumerate(value):
        key = f"{t.key(name)}[{i}]"
        if not isinstance(item, str):
            raise ConfigError(key, f"must be a CIDR string (10.0.0.0/8), not {type(item).__name__}")
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=True))
        except ValueError as e:
            raise ConfigError(key, f"{item!r} is not a network in CIDR notation: {e}") from None
    return tuple(networks)


def _bulk(t: _Table) -> BulkConfig:
    return BulkConfig(t.path_value("inbox"), t.number("poll_interval", 5.0))


def _settlement(t: _Table) -> SettlementConfig:
    return SettlementConfig(
        interval=t.number("interval", 3600.0, low=1.0),
        max_per_run=t.integer("max_per_run", 10_000, low=1, high=10_000_000),
        workers=t.integer("workers", 2, low=1, high=64),
    )


def _secret_key(t: _Table) -> bytes:
    return parse_key(t.string("key"), t.key("key"))


def _retention(t: _Table) -> RetentionConfig:
    return RetentionConfig(
        months=t.integer("months", 3, low=1, high=120),
        interval=t.number("interval", 86400.0, low=60.0),
    )


def parse_config(raw: Mapping[str, Any], base: Path, source: Path | None = None) -> Config:
    """Check and freeze an already-decoded TOML document."""
    root = _Table(raw, "", base)
    database = _section(root, "database", _database)
    if database is None:
        database = _database(_Table({}, "database", base))
    api = _section(root, "api", _api, required=True)
    metrics = _section(
        root, "metrics", lambda t: MetricsConfig(t.endpoint("listen", client=False)), required=True
    )
    bills = _section(root, "bills", _bills) or _bills(_Table({}, "bills", base))
    secret_key = _section(root, "secrets", _secret_key) or key_from_environment()
    webhooks = _section(root, "webhooks", _webhooks) or WebhooksConfig()
    config = Config(
        source=source,
        database=database,
        api=api,  # type: ignore[arg-type]
        metrics=metrics,  # type: ignore[arg-type]
        tls=_section(root, "tls", _tls),
        bills=bills,
        cvs=_section(root, "cvs", _cvs),
        mpn=_section(root, "mpn", _mpn),
        zengin=_section(root, "zengin", _zengin),
        mail=_section(root, "mail", _mail),
        webhooks=replace(webhooks, secret_key=secret_key),
        bulk=_section(root, "bulk", _bulk),
        settlement=_section(root, "settlement", _settlement) or SettlementConfig(),
        retention=_section(root, "retention", _retention) or RetentionConfig(),
        secret_key=secret_key,
    )
    root.done()
    for i, agency in enumerate(config.cvs.agencies if config.cvs is not None else ()):
        if agency.link is not None and config.tls is None:
            where = "cvs.link" if "agencies" not in raw["cvs"] else f"cvs.agencies[{i}].link"
            raise ConfigError(where, "the link is mutual TLS: the [tls] section is required")
    if config.mpn is not None and config.mpn.connect is not None and config.tls is None:
        raise ConfigError("mpn.connect", "the link is mutual TLS: the [tls] section is required")
    return config


def load_config(path: Path | str) -> Config:
    """Read, check and freeze the configuration file at ``path``."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("", f"configuration file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError("", f"{path} is not valid UTF-8 TOML: {e}") from None
    except OSError as e:
        raise ConfigError("", f"{path} cannot be read: {e.strerror or e}") from None
    return parse_config(raw, path.resolve().parent, path.resolve())
