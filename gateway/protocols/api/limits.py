"""What the API listener refuses before a request reaches its handler (docs/operations.md,
"HTTP limits").

* :class:`GuardedChannel` (one per connection): at most ``max_connections_per_address``
  connections from one client address; an absolute deadline for a request's headers
  (``header_timeout``, from its first byte) and for the whole request (``request_timeout``,
  headers and body); 413 as soon as the headers declare a body over the route's limit, or a
  chunked body passes it, without reading the rest.
* :class:`TokenBucket`: requests per API key per second (keyed by the key id, never the secret)
  and failed authentications per client address.

Every refusal is counted in ``gateway_http_refused_total{reason}``; times come from the
injected clock.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.web import http

log = Logger()

HTTP_REFUSED = Counter(
    "gateway_http_refused_total",
    "Requests and connections the API listener refused before a handler saw them, by reason.",
    ["reason"],
)
REASONS = (
    "body_too_large",
    "header_timeout",
    "request_timeout",
    "connections_per_address",
    "requests_per_key",
    "auth_failures_per_address",
)
for _reason in REASONS:
    HTTP_REFUSED.labels(_reason)


LINGER = 2.0  # seconds a refused connection's input is still read (and dropped) before it closes


def refused(reason: str) -> None:
    assert reason in REASONS, reason
    HTTP_REFUSED.labels(reason).inc()


@dataclass(frozen=True)
class HttpLimits:
    """The API listener's limits (``[api]`` of the configuration)."""

    max_body_bytes: int = 1024 * 1024
    max_file_bytes: int = 64 * 1024 * 1024
    header_timeout: float = 10.0
    request_timeout: float = 120.0
    max_connections_per_address: int = 64  # 0: no limit
    requests_per_second: float = 50.0
    request_burst: int = 100
    auth_failures_per_second: float = 1.0
    auth_failure_burst: int = 20


def raw_problem(status: int, reason: bytes, detail: str, headers: dict[str, str]) -> bytes:
    """A whole HTTP/1.1 problem+json response, for answers written before a request exists
    (the connection is closed after it)."""
    title = reason.decode("ascii")
    body = json.dumps(
        {
            "type": f"https://gateway.invalid/problems/{status}",
            "title": title,
            "status": status,
            "detail": detail,
        }
    ).encode()
    lines = [
        b"HTTP/1.1 %d %s" % (status, reason),
        b"Content-Type: application/problem+json; charset=utf-8",
        b"Content-Length: %d" % len(body),
        b"Cache-Control: no-store",
        b"X-Content-Type-Options: nosniff",
        b"Connection: close",
        *(f"{name}: {value}".encode("ascii") for name, value in headers.items()),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class TokenBucket:
    """``rate`` tokens a second up to ``burst``, one bucket per key; at most ``max_keys`` kept
    (the least recently used go first: a forgotten key starts again with a full bucket)."""

    def __init__(
        self, clock: IReactorTime, rate: float, burst: int, max_keys: int = 10_000
    ) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _level(self, key: str) -> float:
        now = self.clock.seconds()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def _store(self, key: str, tokens: float) -> None:
        self._buckets[key] = (tokens, self.clock.seconds())
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)

    def retry_after(self, key: str) -> int | None:
        """Seconds until a token is there (at least 1), or None when one is there now."""
        tokens = self._level(key)
        if tokens >= 1.0:
            return None
        return max(1, math.ceil((1.0 - tokens) / self.rate))

    def take(self, key: str) -> int | None:
        """Take a token: None when taken, else the seconds to wait (nothing is taken)."""
        wait = self.retry_after(key)
        if wait is None:
            self._store(key, self._level(key) - 1.0)
        return wait


class GuardedChannel(http.HTTPChannel):
    """An HTTP/1.1 channel with the listener's limits (see the module's docstring).

    ``body_limit(method, path)`` (from the site) gives the largest body the route takes.
    """

    limits: HttpLimits
    clock: IReactorTime
    body_limit: Callable[[bytes, bytes], int]
    connections: dict[str, int]
    _started = 0.0
    _address: str | None = None
    _deadline: IDelayedCall | None = None
    _reading: str = ""  # "headers", "body" or "" (between requests, or handling one)
    _refused = False
    _linger: IDelayedCall | None = None

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        address = getattr(peer, "host", None)
        cap = self.limits.max_connections_per_address
        if isinstance(address, str) and cap:
            if self.connections.get(address, 0) >= cap:
                refused("connections_per_address")
                log.info("Refused a connection: too many from {address}", address=address)
                self._close(
                    raw_problem(
                        429,
                        b"Too Many Requests",
                        f"at most {cap} connections from one address",
                        {"Retry-After": "1"},
                    )
                )
                return
            self.connections[address] = self.connections.get(address, 0) + 1
            self._address = address
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._reading and not self._handlingRequest:
            # The first byte of a request: its headers are due within header_timeout and the
            # whole of it within request_timeout, however slowly its bytes come.
            self._reading = "headers"
            self._started = self.clock.seconds()
            self._arm(self.limits.header_timeout)
        super().dataReceived(data)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.clock.callLater(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        reason = "header_timeout" if self._reading == "headers" else "request_timeout"
        refused(reason)
        log.info(
            "Closed a connection: its request was not received in time ({reason})",
            reason=reason,
        )
        self._close(
            raw_problem(408, b"Request Timeout", "the request was not received in time", {})
            if reason == "request_timeout"
            else b""
        )

    def allHeadersReceived(self) -> None:
        request = self.requests[-1]
        limit = self.body_limit(self._command, self._path)
        request.limit = limit
        if self.length is not None and self.length > limit:
            request.too_large = True
            self.refuse_body(limit)
            return
        if self._reading == "headers":
            self._reading = "body"
            elapsed = self.clock.seconds() - self._started
            self._arm(max(0.0, self.limits.request_timeout - elapsed))
        super().allHeadersReceived()

    def allContentReceived(self) -> None:
        self._reading = ""
        self._disarm()
        super().allContentReceived()

    def refuse_body(self, limit: int) -> None:
        """413 now, and close: the rest of the body is never read."""
        refused("body_too_large")
        self._close(
            raw_problem(413, b"Payload Too Large", f"the body is larger than {limit} bytes", {})
        )

    def _close(self, response: bytes) -> None:
        """Send ``response`` (if any) and close, reading and dropping what the client still
        sends for a moment (a "lingering close": closing a socket with unread data resets it,
        and the client would lose the response), then aborting."""
        self._refused = True
        self._reading = ""
        self._disarm()
        self.setTimeout(None)
        transport: Any = self.transport
        if response:
            transport.write(response)
        if hasattr(transport, "loseWriteConnection"):
            transport.loseWriteConnection()
            self._linger = self.clock.callLater(LINGER, transport.abortConnection)
        else:
            transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self._disarm()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        if self._address is not None:
            left = self.connections.get(self._address, 1) - 1
            if left > 0:
                self.connections[self._address] = left
            else:
                self.connections.pop(self._address, None)
            self._address = None
        super().connectionLost(reason)


def http_limits(api: Any) -> HttpLimits:
    """The limits of ``[api]`` (a :class:`gateway.config.ApiConfig`)."""
    return HttpLimits(
        max_body_bytes=api.max_body_bytes,
        max_file_bytes=api.max_file_bytes,
        header_timeout=api.header_timeout,
        request_timeout=api.request_timeout,
        max_connections_per_address=api.max_connections_per_address,
        requests_per_second=api.requests_per_second,
        request_burst=api.request_burst,
        auth_failures_per_second=api.auth_failures_per_second,
        auth_failure_burst=api.auth_failure_burst,
    )
