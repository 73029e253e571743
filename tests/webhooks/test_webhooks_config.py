"""The [webhooks] section: optional, documented defaults, every bad value named by its key."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from gateway.config import WebhooksConfig, parse_config
from gateway.errors import ConfigError

BASE = Path("/etc/gateway")
MINIMAL: dict[str, Any] = {
    "api": {"listen": "tcp:8080", "public_url": "http://127.0.0.1:8080"},
    "metrics": {"listen": "tcp:9464"},
}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def with_webhooks(**keys: Any) -> dict[str, Any]:
    return {**MINIMAL, "webhooks": keys}


def test_absent_or_empty_section_gives_the_documented_defaults() -> None:
    defaults = WebhooksConfig(
        timeout=10.0,
        max_age=timedelta(hours=72),
        backoff_base=10.0,
        backoff_cap=3600.0,
        poll_interval=1.0,
        concurrency=16,
        per_endpoint=4,
        allow_http=False,
        log_retention_days=30,
        allowed_networks=(),
    )
    assert parse_config(MINIMAL, BASE).webhooks == defaults
    assert parse_config(with_webhooks(), BASE).webhooks == defaults
    docs = DOCS.read_text(encoding="utf-8")
    section = docs[docs.index("## [webhooks]") :]
    for line in (
        "| default | `10` |",
        "| default | `72` (3 days) |",
        "| default | `3600` |",
        "| default | `[]` (public addresses only) |",
    ):
        assert line in section


def test_every_key_is_read() -> None:
    config = parse_config(
        with_webhooks(
            timeout=0.5,
            max_age_hours=0.25,
            backoff_base=0.05,
            backoff_cap=0.2,
            poll_interval=0.05,
            concurrency=8,
            per_endpoint=8,
            allow_http=True,
            log_retention_days=1,
            allowed_networks=["127.0.0.0/8", "10.20.0.0/16", "fd12:3456::/32", "::1"],
        ),
        BASE,
    ).webhooks
    assert config == WebhooksConfig(
        timeout=0.5,
        max_age=timedelta(minutes=15),
        backoff_base=0.05,
        backoff_cap=0.2,
        poll_interval=0.05,
        concurrency=8,
        per_endpoint=8,
        allow_http=True,
        log_retention_days=1,
        allowed_networks=(
            ip_network("127.0.0.0/8"),
            ip_network("10.20.0.0/16"),
            ip_network("fd12:3456::/32"),
            ip_network("::1/128"),
        ),
    )


@pytest.mark.parametrize(
    ("keys", "path"),
    [
        ({"timeout": 0}, "webhooks.timeout"),
        ({"timeout": 301}, "webhooks.timeout"),
        ({"timeout": "10"}, "webhooks.timeout"),
        ({"max_age_hours": 0}, "webhooks.max_age_hours"),
        ({"max_age_hours": 721}, "webhooks.max_age_hours"),
        ({"backoff_base": -1}, "webhooks.backoff_base"),
        ({"backoff_base": 60, "backoff_cap": 30}, "webhooks.backoff_cap"),
        ({"poll_interval": 0}, "webhooks.poll_interval"),
        ({"poll_interval": 61}, "webhooks.poll_interval"),
        ({"poll_interval": float("nan")}, "webhooks.poll_interval"),
        ({"concurrency": 0}, "webhooks.concurrency"),
        ({"concurrency": 2.5}, "webhooks.concurrency"),
        ({"per_endpoint": 0}, "webhooks.per_endpoint"),
        ({"concurrency": 2, "per_endpoint": 3}, "webhooks.per_endpoint"),
        ({"allow_http": "yes"}, "webhooks.allow_http"),
        ({"allow_http": 1}, "webhooks.allow_http"),
        ({"log_retention_days": 0}, "webhooks.log_retention_days"),
        ({"secret": "x"}, "webhooks.secret"),
        ({"allowed_networks": "10.0.0.0/8"}, "webhooks.allowed_networks"),
        ({"allowed_networks": ["10.0.0.0/8", "10.0.0.1/8"]}, "webhooks.allowed_networks[1]"),
        ({"allowed_networks": ["10.0.0.0/33"]}, "webhooks.allowed_networks[0]"),
        ({"allowed_networks": ["intranet"]}, "webhooks.allowed_networks[0]"),
        ({"allowed_networks": [10]}, "webhooks.allowed_networks[0]"),
    ],
)
def test_a_bad_value_names_its_key(keys: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(with_webhooks(**keys), BASE)
    assert info.value.path == path


def test_webhooks_must_be_a_table() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, "webhooks": 5}, BASE)
    assert info.value.path == "webhooks"
