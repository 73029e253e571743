"""What one webhook attempt gives the delivery log: a :class:`PostResult`, and when there was no
response, one of a few fixed texts — what a biller needs to fix their receiver (timeout,
connection refused, TLS failure, refused address…) and nothing more: no URL (a biller may put a
token in it), no resolved address, no exception text.

The client that makes the attempts (gateway.protocols.webhook_client) is a :class:`Poster`,
handed to the delivery service by the composition root (gateway.app.service)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred

# What the delivery log says of an attempt without a response: this set, nothing else.
TIMEOUT = "timeout: no complete response within {timeout:g}s"
REFUSED_ADDRESS = "refused address: the host is not a public address"
CONNECTION_REFUSED = "connection refused"
DNS_FAILED = "DNS lookup failed"
TLS_FAILED = "TLS error: the receiver's certificate or handshake was refused"
CLOSED = "connection closed before a complete response"
CANNOT_CONNECT = "cannot connect"
CANCELLED = "cancelled: the daemon stopped during the attempt"
UNSUPPORTED = "unsupported URL scheme"
FAILED = "the attempt failed"
# Written by the delivery service itself.
NOT_SENT = "not sent: the daemon stopped"
LEASE_LOST = "no outcome before the lease ran out"


@dataclass(frozen=True)
class PostResult:
    status_code: int | None  # None: no response
    error: str | None  # why there is no response

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Poster(Protocol):
    """What the delivery service needs of a webhook client."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Deferred[PostResult]: ...

    def close(self) -> Deferred[None]: ...


def shown_error(stored: str | None) -> str | None:
    """A logged reason as a biller may see it: one of the fixed texts (rows written by older
    versions, which named exception classes, show as the generic one)."""
    if stored is None:
        return None
    fixed = {
        REFUSED_ADDRESS,
        CONNECTION_REFUSED,
        DNS_FAILED,
        TLS_FAILED,
        CLOSED,
        CANNOT_CONNECT,
        CANCELLED,
        UNSUPPORTED,
        FAILED,
        NOT_SENT,
        LEASE_LOST,
    }
    if stored in fixed or stored.startswith(TIMEOUT.split("{", 1)[0]):
        return stored
    return CANNOT_CONNECT if stored.startswith("cannot connect") else FAILED
