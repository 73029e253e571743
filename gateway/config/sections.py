"""The sections of the configuration: one frozen class a TOML table, and :class:`Config`, the
whole (read by :mod:`gateway.config.parse`)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import time as dt_time
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from gateway.config.console import ConsoleConfig
from gateway.config.notices import NoticesConfig, SmsConfig
from gateway.config.payouts import PayoutsConfig
from gateway.config.reconciliation import ReconciliationConfig
from gateway.errors import Conflict
from gateway.mappers.cvs.barcode import FreeFieldLayout
from gateway.mappers.cvs.stamp import DEFAULT_STAMP_THRESHOLDS, StampThreshold
from gateway.model import Biller, Channel


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
    reuse_port: bool = False  # several daemons of one host on this port (SO_REUSEPORT)


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
    reuse_port: bool = False  # several daemons of one host on this port (SO_REUSEPORT)


@dataclass(frozen=True)
class CvsFilesConfig:
    inbox: Path
    poll_interval: float


@dataclass(frozen=True)
class CvsPullConfig:
    """The agency's CSV of payments, pulled over HTTPS (spec/cvs.md §6)."""

    url: str
    user_id: str
    password: str = field(repr=False)
    interval: float = 300.0
    lookback_days: int = 7
    margin_days: int = 2
    max_backoff: float = 3600.0
    timeout: float = 30.0


class AssignedBy(StrEnum):
    """Who gives a biller the 5 digits after the agency's company code in its barcodes."""

    GATEWAY = "gateway"  # the gateway mints them (the biller's own 5-digit code)
    AGENCY = "agency"  # the agency: per biller (--cvs-code), or once for the center (center_code)


@dataclass(frozen=True)
class CvsAgency:
    """One collection agency the center has a contract with (``[[cvs.agencies]]``, or the
    single ``[cvs]`` of older files as the agency ``default``): its maker (company) code, how
    its billers' codes are obtained, its rules, and its own link, inbox and CSV pull."""

    id: str
    company_code: str
    assigned_by: AssignedBy = AssignedBy.GATEWAY
    # assigned_by = "agency" with one code for the whole center: the center's 5-digit code; the
    # biller is then identified within the 16 free digits after it (gateway.mappers.cvs.barcode.
    # FreeFieldLayout). None: each biller's own 5 digits follow the company code.
    center_code: str | None = None
    ceiling: int = 300_000
    stamp_thresholds: tuple[StampThreshold, ...] = DEFAULT_STAMP_THRESHOLDS
    no_deadline: bool = False  # slips without a deadline (999999) may be issued
    link: CvsLinkConfig | None = None
    files: CvsFilesConfig | None = None
    pull: CvsPullConfig | None = None

    @property
    def codes_per_biller(self) -> bool:
        """Whether the agency gives each biller under it a code of its own (``--cvs-code``)."""
        return self.assigned_by is AssignedBy.AGENCY and self.center_code is None

    @property
    def layout(self) -> FreeFieldLayout:
        """How the 21 free digits of this agency's barcodes are spent."""
        return FreeFieldLayout(self.center_code)

    def code_of(self, biller: Biller) -> str:
        """The 5 digits that name ``biller`` in this agency's free field (after the center
        code, if any): the code the agency assigned to it, or its own gateway code."""
        if not self.codes_per_biller:
            return biller.code
        if biller.cvs_code is None:
            raise Conflict(
                f"biller {biller.biller_id} has no code from agency {self.id}, which assigns"
                " each biller its own: it cannot be issued slips of this agency",
                field="cvs_code",
            )
        return biller.cvs_code

    def prefix_of(self, biller: Biller) -> str:
        """What follows the company code in every barcode of ``biller``."""
        field = self.layout.free_field(self.code_of(biller), 0)
        return field[: len(field) - self.layout.serial_length]


@dataclass(frozen=True)
class CvsConfig:
    """The convenience-store channel: its agencies, and the one a biller is put under when it
    is created without naming one (billers created before agencies existed belong to it too)."""

    agencies: tuple[CvsAgency, ...]
    default_agency: str

    def agency(self, agency_id: str | None) -> CvsAgency:
        """The agency ``agency_id`` (None: the default one). ``KeyError`` for an unknown id."""
        wanted = self.default_agency if agency_id is None else agency_id
        for agency in self.agencies:
            if agency.id == wanted:
                return agency
        raise KeyError(wanted)

    def agency_of_code(self, company_code: str) -> CvsAgency | None:
        """The agency whose maker code this is (company codes are unique across agencies)."""
        for agency in self.agencies:
            if agency.company_code == company_code:
                return agency
        return None

    @property
    def ceiling(self) -> int:
        """The highest ceiling of any agency: the most the channel can carry at all."""
        return max(agency.ceiling for agency in self.agencies)


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
    payouts: PayoutsConfig | None = None  # [payouts]: 総合振込 files to the billers; off if absent
    # [reconciliation]: the bank statement and the networks' remittances (optional)
    reconciliation: ReconciliationConfig = field(default_factory=ReconciliationConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)  # [console] (optional)
    sms: SmsConfig | None = None  # [sms]: the SMS provider of customer notices; off if absent
    notices: NoticesConfig = field(default_factory=NoticesConfig)  # [notices] (optional)
    # [secrets] key or GATEWAY_SECRET_KEY (gateway.infra.secretbox): page tokens, webhook secrets
    secret_key: bytes | None = field(default=None, repr=False)

    @property
    def channels(self) -> frozenset[Channel]:
        """The payment channels whose network section is present."""
        on = {Channel.CVS: self.cvs, Channel.PAYEASY: self.mpn, Channel.TRANSFER: self.zengin}
        return frozenset(channel for channel, section in on.items() if section is not None)
