"""The sections of the configuration: one frozen class a TOML table, and :class:`Config`, the
whole (read by :mod:`gateway.config.parse`)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import time as dt_time
from datetime import timedelta
from pathlib import Path

from gateway.mappers.cvs.stamp import StampThreshold
from gateway.model import Channel


@dataclass(frozen=True)
class DatabaseConfig:
    url: str
    pool_size: int
    migrate_on_start: bool

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


@dataclass(frozen=True)
class ApiConfig:
    listen: str
    public_url: str
    idempotency_ttl: timedelta
    max_page_size: int
    auth_cache_seconds: float
    # HTTP limits (docs/operations.md, "HTTP limits"): bodies, deadlines, connections, rates.
    max_body_bytes: int = 1024 * 1024
    max_file_bytes: int = 64 * 1024 * 1024
    header_timeout: float = 10.0
    request_timeout: float = 120.0
    max_connections_per_address: int = 64
    requests_per_second: float = 50.0
    request_burst: int = 100
    auth_failures_per_second: float = 1.0
    auth_failure_burst: int = 20


@dataclass(frozen=True)
class MetricsConfig:
    listen: str


@dataclass(frozen=True)
class TLSConfig:
    ca: Path
    certificate: Path
    key: Path


@dataclass(frozen=True)
class BillsConfig:
    max_due_days: int
    expiry_interval: float
    retention_days: int = 92  # payment pages of settled bills answer 410 after this many days


@dataclass(frozen=True)
class CvsLinkConfig:
    listen: str
    heartbeat_timeout: float
    peers: tuple[str, ...] = ()  # certificate names (CN or DNS SAN) allowed on the link
    ca: Path | None = None  # None: [tls] ca
    max_unacked: int = 100  # records in flight per connection; reading stops at this many
    max_connections: int = 4  # established connections (and, apart, handshakes in progress)
    handshake_timeout: float = 10.0  # seconds for a TLS handshake to complete


@dataclass(frozen=True)
class CvsFilesConfig:
    inbox: Path
    poll_interval: float


@dataclass(frozen=True)
class CvsAgencyConfig:
    url: str
    user_id: str
    password: str
    interval: float
    lookback_days: int
    margin_days: int
    max_backoff: float
    timeout: float


@dataclass(frozen=True)
class CvsConfig:
    company_code: str
    ceiling: int
    stamp_thresholds: tuple[StampThreshold, ...]
    link: CvsLinkConfig | None
    files: CvsFilesConfig | None
    agency: CvsAgencyConfig | None


@dataclass(frozen=True)
class MpnConfig:
    institution_code: str
    connect: str | None  # None: Pay-easy numbers are issued, the link to the center is off
    center_code: str | None
    confirmation_digits: int
    max_amount: int
    hostname: str | None  # the name the center's certificate must carry; required with connect
    close_at: dt_time  # JST; 閉局 of the business day
    guard_limit: int
    ca: Path | None = None  # the CA of the center's certificate; None: [tls] ca
    # Keys the permutation that makes お客様番号 non-sequential (gateway.mappers.mpn.numbers);
    # required in the file (the empty default only serves code that builds an MpnConfig by hand).
    number_key: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class ZenginConfig:
    outbox: Path
    inbox: Path
    max_amount: int
    poll_interval: float  # seconds between scans of the inbox
    request_at: dt_time | None  # JST; None: request files only by gateway-admin zengin request
    lead_days: int  # the scheduled run writes the requests of this many bank days ahead
    separator: bytes  # after each record: CRLF, or nothing
    eof_mark: bool  # a final 0x1A
    check_bank_master: bool  # mandates must name a bank and branch of the Zengin master


@dataclass(frozen=True)
class MailConfig:
    relay: str  # Twisted client endpoint of the SMTP relay
    sender: str  # the From address
    sender_name: str | None
    username: str | None
    password: str | None = field(repr=False)
    require_tls: bool  # STARTTLS required before anything is sent (always with a username)
    poll_interval: float
    timeout: float  # seconds for the whole SMTP exchange of one e-mail
    max_attempts: int
    retry_base: float  # seconds before the 2nd attempt; doubled each time, up to retry_cap
    retry_cap: float
    ca: Path | None = None  # CA file the relay's certificate must chain to; None: system trust
    tls_hostname: str = ""  # the name the relay's certificate must carry (default: relay host)

    @property
    def starttls_required(self) -> bool:
        """STARTTLS before anything is sent: when asked, and always before credentials."""
        return self.require_tls or self.username is not None


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class WebhooksConfig:
    """Webhook delivery (docs/webhooks.md); every option has a default, the section is optional."""

    timeout: float = 10.0  # seconds for one attempt: connect, send, response, body
    max_age: timedelta = timedelta(hours=72)  # retried until then, then failed
    backoff_base: float = 10.0  # full jitter: uniform(0, min(cap, base * 2 ** (n - 1)))
    backoff_cap: float = 3600.0
    poll_interval: float = 1.0  # how often the dispatcher and the workers look for work
    concurrency: int = 16  # attempts in flight in one daemon
    per_endpoint: int = 4  # attempts in flight to one endpoint in one daemon
    allow_http: bool = False  # plain http:// to other hosts than loopback
    log_retention_days: int = 30  # finished deliveries and their attempts are kept this long
    # the top-level secret key ([secrets] key), which decrypts the endpoints' secrets
    secret_key: bytes | None = field(default=None, repr=False)
    # Non-public networks webhooks may still reach (gateway.webhooks.address); none by default.
    allowed_networks: tuple[_Network, ...] = ()


@dataclass(frozen=True)
class BulkConfig:
    inbox: Path  # <inbox>/<biller_id>/NAME.csv: bulk bill files, registered as the API does
    poll_interval: float  # seconds between scans


@dataclass(frozen=True)
class SettlementConfig:
    """Settlement runs (docs/settlement.md); the section is optional."""

    interval: float = 3600.0  # seconds between runs (and one at start)
    max_per_run: int = 10_000  # settlements one run creates at most; the next run goes on
    workers: int = 2  # billers settled at once on PostgreSQL (SQLite: one)


@dataclass(frozen=True)
class RetentionConfig:
    """The purge of customers' personal data (docs/settlement.md); the section is optional."""

    months: int = 3  # bills paid, expired or cancelled longer ago than this are purged
    interval: float = 86400.0  # seconds between runs (and one at start)


@dataclass(frozen=True)
class Config:
    source: Path | None
    database: DatabaseConfig
    api: ApiConfig
    metrics: MetricsConfig
    tls: TLSConfig | None
    bills: BillsConfig
    cvs: CvsConfig | None
    mpn: MpnConfig | None
    zengin: ZenginConfig | None
    mail: MailConfig | None = None  # customer e-mails (the page URL of a new bill); off if absent
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)  # defaults when absent
    bulk: BulkConfig | None = None  # the billers' watched folder of bulk files; off if absent
    settlement: SettlementConfig = field(default_factory=SettlementConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    # [secrets] key or GATEWAY_SECRET_KEY (gateway.infra.secretbox): page tokens, webhook secrets
    secret_key: bytes | None = field(default=None, repr=False)

    @property
    def channels(self) -> frozenset[Channel]:
        """The payment channels whose network section is present."""
        on = {Channel.CVS: self.cvs, Channel.PAYEASY: self.mpn, Channel.TRANSFER: self.zengin}
        return frozenset(channel for channel, section in on.items() if section is not None)
