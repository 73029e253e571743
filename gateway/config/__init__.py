"""The daemon's configuration: TOML (spec/operator.md) parsed once into frozen objects.

Every key is checked: an unknown key, a wrong type or a bad value raises :class:`ConfigError`
with the key's dotted path, before anything listens. Relative paths (and a relative SQLite
database file) are taken relative to the configuration file. ``docs/config.md`` documents every
option; keep the two in step.
"""

from gateway.config.parse import load_config, parse_config
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
)

__all__ = [
    "ApiConfig",
    "AssignedBy",
    "BillsConfig",
    "BulkConfig",
    "Config",
    "CvsAgency",
    "CvsConfig",
    "CvsFilesConfig",
    "CvsLinkConfig",
    "CvsPullConfig",
    "DatabaseConfig",
    "MailConfig",
    "MetricsConfig",
    "MpnConfig",
    "RetentionConfig",
    "SettlementConfig",
    "TLSConfig",
    "WebhooksConfig",
    "ZenginConfig",
    "load_config",
    "parse_config",
]
