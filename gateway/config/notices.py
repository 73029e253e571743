"""``[sms]`` and ``[notices]``: the SMS provider, and the notice job (docs/notices.md).

``[sms]`` names the provider's REST endpoint that takes one message (``POST``, JSON, the key as
``Authorization: Bearer``), as Japanese SMS gateways offer. The endpoint is an attack surface
like a webhook URL: ``https://`` (plain http only on a loopback host), no credentials in it, and
every address it resolves to must be public or in ``allowed_networks``
(gateway.webhooks.address, checked at each connection). The key comes from ``api_key`` or the
``GATEWAY_SMS_API_KEY`` environment variable; it is never logged nor shown in a repr. Absent:
no SMS.

``[notices]`` (optional): how often the notice job reads the events (page-URL notices, receipt
notices, fallbacks after failed debits) and when (JST) it queues the day's reminders.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from datetime import time as dt_time

from gateway.config.table import Table, at_most, require_https, split_url
from gateway.errors import ConfigError

SMS_KEY_ENV = "GATEWAY_SMS_API_KEY"
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SmsConfig:
    endpoint: str = field(repr=False)  # the provider's URL (may hold an account id: not shown)
    api_key: str = field(repr=False)
    sender: str | None  # the sender id the provider shows, if it takes one
    timeout: float  # seconds for one attempt: connect, send, response
    poll_interval: float
    max_attempts: int
    retry_base: float  # seconds before the 2nd attempt; doubled each time, up to retry_cap
    retry_cap: float
    allowed_networks: tuple[_Network, ...] = ()  # non-public networks the endpoint may be on


@dataclass(frozen=True)
class NoticesConfig:
    poll_interval: float = 2.0  # seconds between runs of the notice job
    reminder_at: dt_time = dt_time(9, 0)  # JST: reminders are queued once a day from then


def _networks(t: Table, name: str) -> tuple[_Network, ...]:
    value = t._get(name, list, "a list of networks (CIDR strings)", [])
    found = []
    for i, item in enumerate(value):
        key = f"{t.key(name)}[{i}]"
        if not isinstance(item, str):
            raise ConfigError(key, f"must be a CIDR string (10.0.0.0/8), not {type(item).__name__}")
        try:
            found.append(ipaddress.ip_network(item.strip(), strict=True))
        except ValueError as e:
            raise ConfigError(key, f"{item!r} is not a network in CIDR notation: {e}") from None
    return tuple(found)


def parse_sms(t: Table) -> SmsConfig:
    endpoint = t.string("endpoint")
    parts = split_url(t.key("endpoint"), endpoint, "a URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(t.key("endpoint"), "must be an https:// URL of the provider")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(t.key("endpoint"), "must not hold credentials: give them as api_key")
    require_https(t.key("endpoint"), endpoint)
    api_key = t.string("api_key", None) or os.environ.get(SMS_KEY_ENV)
    if not api_key:
        raise ConfigError(t.key("api_key"), f"is required (or the environment's {SMS_KEY_ENV})")
    if any(c in api_key for c in "\r\n\x00") or len(api_key) > 512:
        raise ConfigError(t.key("api_key"), "must be one line of at most 512 characters")
    base = at_most(t, "retry_base", t.number("retry_base", 60.0), 86400)
    cap = at_most(t, "retry_cap", t.number("retry_cap", 3600.0), 86400)
    if cap < base:
        raise ConfigError(t.key("retry_cap"), f"{cap:g} is below retry_base ({base:g})")
    return SmsConfig(
        endpoint=endpoint,
        api_key=api_key,
        sender=t.string(
            "sender",
            None,
            pattern=r"[A-Za-z0-9 ._\-]{1,11}|[0-9]{10,11}",
            hint="1-11 letters and digits, or a phone number",
        ),
        timeout=at_most(t, "timeout", t.number("timeout", 10.0, low=0.1), 300),
        poll_interval=at_most(t, "poll_interval", t.number("poll_interval", 5.0), 3600),
        max_attempts=t.integer("max_attempts", 6, low=1, high=50),
        retry_base=base,
        retry_cap=cap,
        allowed_networks=_networks(t, "allowed_networks"),
    )


def parse_notices(t: Table) -> NoticesConfig:
    at = t.string(
        "reminder_at", "09:00", pattern=r"([01][0-9]|2[0-3]):[0-5][0-9]", hint="a time HH:MM"
    )
    return NoticesConfig(
        poll_interval=at_most(t, "poll_interval", t.number("poll_interval", 2.0, low=0.05), 3600),
        reminder_at=dt_time(int(at[:2]), int(at[3:])),
    )


__all__ = ["NoticesConfig", "SmsConfig", "parse_notices", "parse_sms"]
