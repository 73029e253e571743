"""The TOML file read into :class:`gateway.config.sections.Config`: every key checked (see
:mod:`gateway.config`)."""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from datetime import time as dt_time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from twisted.internet.endpoints import clientFromString

from gateway.config.console import ConsoleConfig, parse_console
from gateway.config.cvs import _cvs
from gateway.config.notices import NoticesConfig, parse_notices, parse_sms
from gateway.config.payouts import parse_payouts
from gateway.config.reconciliation import (
    ReconciliationConfig,
    check_remitter_agencies,
    parse_reconciliation,
)
from gateway.config.sections import (
    ApiConfig,
    BillsConfig,
    BulkConfig,
    Config,
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
from gateway.config.table import (
    Table,
    require_https,
    section,
    split_url,
)
from gateway.errors import ConfigError
from gateway.infra.secretbox import key_from_environment, parse_key


def _database(t: Table) -> DatabaseConfig:
    url = t.string("url", "sqlite:///var/gateway.sqlite3")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
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


def _api(t: Table) -> ApiConfig:
    listen = t.endpoint("listen", client=False)
    public_url = t.string("public_url").rstrip("/")
    parts = split_url(t.key("public_url"), public_url, "an http(s) base URL")
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.query
        or parts.fragment
        or "#" in public_url
    ):
        raise ConfigError(t.key("public_url"), f"{public_url!r} is not an http(s) base URL")
    require_https(t.key("public_url"), public_url)
    ttl = t.integer("idempotency_ttl_hours", 24, low=24, high=24 * 30)
    return ApiConfig(
        listen=listen,
        public_url=public_url,
        idempotency_ttl=timedelta(hours=ttl),
        max_page_size=t.integer("max_page_size", 100, low=1, high=1000),
        # A revoked key works until its cache entry expires: a minute at most.
        auth_cache_seconds=float(t.integer("auth_cache_seconds", 10, low=0, high=60)),
        reuse_port=t.reuse_port(listen),
        **_http_limits(t),
    )


def _http_limits(t: Table) -> dict[str, Any]:
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


def _tls(t: Table) -> TLSConfig:
    return TLSConfig(t.path_value("ca"), t.path_value("certificate"), t.path_value("key"))


def _bills(t: Table) -> BillsConfig:
    return BillsConfig(
        max_due_days=t.integer("max_due_days", 365, low=1, high=3650),
        expiry_interval=t.number("expiry_interval", 300.0),
        retention_days=t.integer("retention_days", 92, low=1, high=3650),
    )


def _mpn(t: Table) -> MpnConfig:
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
                pattern=r"(?:[0-9a-fA-F]{2}){16,64}",  # whole bytes: fromhex refuses an odd count
                hint="an even number of hexadecimal digits, 32 to 128 (openssl rand -hex 32)",
            )
        ),
    )


def _zengin(t: Table) -> ZenginConfig:
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


def _mail(t: Table) -> MailConfig:
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


def _webhooks(t: Table) -> WebhooksConfig:
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


def _networks(t: Table, name: str) -> tuple[_Network, ...]:
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


def _bulk(t: Table) -> BulkConfig:
    return BulkConfig(t.path_value("inbox"), t.number("poll_interval", 5.0))


def _settlement(t: Table) -> SettlementConfig:
    return SettlementConfig(
        interval=t.number("interval", 3600.0, low=1.0),
        max_per_run=t.integer("max_per_run", 10_000, low=1, high=10_000_000),
        workers=t.integer("workers", 2, low=1, high=64),
    )


def _secret_key(t: Table) -> bytes:
    return parse_key(t.string("key"), t.key("key"))


def _retention(t: Table) -> RetentionConfig:
    return RetentionConfig(
        months=t.integer("months", 3, low=1, high=120),
        interval=t.number("interval", 86400.0, low=60.0),
    )


def parse_config(raw: Mapping[str, Any], base: Path, source: Path | None = None) -> Config:
    """Check and freeze an already-decoded TOML document."""
    root = Table(raw, "", base)
    database = section(root, "database", _database)
    if database is None:
        database = _database(Table({}, "database", base))
    api = section(root, "api", _api, required=True)
    metrics = section(
        root, "metrics", lambda t: MetricsConfig(t.endpoint("listen", client=False)), required=True
    )
    bills = section(root, "bills", _bills) or _bills(Table({}, "bills", base))
    secret_key = section(root, "secrets", _secret_key) or key_from_environment()
    webhooks = section(root, "webhooks", _webhooks) or WebhooksConfig()
    config = Config(
        source=source,
        database=database,
        api=api,  # type: ignore[arg-type]
        metrics=metrics,  # type: ignore[arg-type]
        tls=section(root, "tls", _tls),
        bills=bills,
        cvs=section(root, "cvs", _cvs),
        mpn=section(root, "mpn", _mpn),
        zengin=section(root, "zengin", _zengin),
        mail=section(root, "mail", _mail),
        webhooks=replace(webhooks, secret_key=secret_key),
        bulk=section(root, "bulk", _bulk),
        settlement=section(root, "settlement", _settlement) or SettlementConfig(),
        retention=section(root, "retention", _retention) or RetentionConfig(),
        payouts=section(root, "payouts", parse_payouts),
        reconciliation=section(root, "reconciliation", parse_reconciliation)
        or ReconciliationConfig(),
        console=section(root, "console", parse_console) or ConsoleConfig(),
        sms=section(root, "sms", parse_sms),
        notices=section(root, "notices", parse_notices) or NoticesConfig(),
        secret_key=secret_key,
    )
    root.done()
    check_remitter_agencies(config.reconciliation, config.cvs)
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
