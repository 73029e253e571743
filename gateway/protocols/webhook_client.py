"""Outbound webhook POSTs: one attempt, bounded in time, on the injected reactor (treq).

An attempt is the request and the whole response, within ``timeout`` seconds; a hung receiver
is cut off then (the connection is aborted). Redirects are not followed. The response body is
read (so the connection can be reused) and thrown away after 64 KiB. Connections are kept per
host, at most ``per_host`` of them. Errors come back as a short text that names no URL, so the
log and the delivery log never show a token a biller put in one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.error import SchemeNotSupported

BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class PostResult:
    status_code: int | None  # None: no response
    error: str | None  # why there is no response

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _BodyTooLarge(Exception):
    pass


def _sink() -> Any:
    seen = [0]

    def collect(chunk: bytes) -> None:
        seen[0] += len(chunk)
        if seen[0] > BODY_LIMIT:
            raise _BodyTooLarge()

    return collect


def describe(exc: BaseException, timeout: float) -> str:
    """A short, URL-free reason for a failed attempt."""
    if isinstance(exc, TimeoutError | net_error.TimeoutError):
        return f"timeout: no complete response within {timeout:g}s"
    reasons = [r.value for r in getattr(exc, "reasons", [])]
    if isinstance(exc, CancelledError | net_error.ConnectingCancelledError) or any(
        isinstance(r, CancelledError) for r in reasons
    ):
        return "cancelled: the daemon stopped during the attempt"
    if isinstance(exc, net_error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, net_error.DNSLookupError):
        return "DNS lookup failed"
    if isinstance(exc, SchemeNotSupported):
        return "unsupported URL scheme"
    if isinstance(exc, ResponseNeverReceived | ResponseFailed):
        if any(type(r).__module__.startswith("OpenSSL") for r in reasons):
            return "TLS error: the receiver's certificate or handshake was refused"
        return "connection closed before a complete response"
    if isinstance(exc, net_error.ConnectError):
        return f"cannot connect: {type(exc).__name__}"
    return f"error: {type(exc).__name__}"


class WebhookClient:
    def __init__(self, reactor: Any, timeout: float, per_host: int) -> None:
        self.reactor = reactor
        self.timeout = timeout
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = per_host
        self.pool.cachedConnectionTimeout = 60
        self.pool.retryAutomatically = False  # a POST is never sent twice by the pool
        self.http = HTTPClient(Agent(reactor, connectTimeout=timeout, pool=self.pool))

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Deferred[PostResult]:
        """POST ``body``; never fails: a :class:`PostResult` with a status or an error. Cancel
        the Deferred to abandon the attempt."""
        d = Deferred.fromCoroutine(self._post(url, body, headers))

        def timed_out(result: object, timeout: float) -> PostResult:
            # Whatever the cancelled request failed with (ResponseNeverReceived…), it was the
            # timeout that cut it off.
            return PostResult(None, describe(TimeoutError(), timeout))

        d.addTimeout(self.timeout, self.reactor, onTimeoutCancel=timed_out)

        def failed(failure: Failure) -> PostResult:
            return PostResult(None, describe(failure.value or Exception(), self.timeout))

        return d.addErrback(failed)

    async def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> PostResult:
        sent: dict[bytes | str, bytes | str] = dict(headers.items())
        response = await self.http.post(url, data=body, headers=sent)
        try:
            await treq.collect(response, _sink())
        except _BodyTooLarge:
            pass  # the status is the answer; the connection is closed
        return PostResult(response.code, None)

    def close(self) -> Deferred[None]:
        return self.pool.closeCachedConnections()
