"""Outbound webhook POSTs: one attempt, bounded in time, on the injected reactor.

An attempt is the request and the whole response, within ``timeout`` seconds; a hung receiver
is cut off then (the connection is aborted). Redirects are not followed. The response body is
read (so the connection can be reused) and thrown away after 64 KiB. Connections are kept per
host, at most ``per_host`` of them.

Where it connects: the host is resolved **at every attempt** (a literal address is taken as
it is), every resolved address is checked against the :class:`AddressPolicy` (public
addresses and ``webhooks.allowed_networks``), and the connection is made to one of the
addresses that passed — the very ones checked, never a second lookup — so a name that resolves
to a private address, at once or after a DNS rebinding, reaches nothing: the attempt fails as
``refused address`` before any connection is tried.

What a failed attempt says (:func:`describe`) is one of the fixed texts of
:mod:`gateway.webhooks.attempts` — what a biller needs to fix their receiver (timeout, connection
refused, TLS failure, refused address…) and nothing more: no URL (a biller may put a token in
it), no resolved address, no exception text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import treq
from hyperlink import EncodedURL
from prometheus_client import Counter
from twisted.internet import error as net_error
from twisted.internet.address import IPv4Address as TwistedIPv4
from twisted.internet.address import IPv6Address as TwistedIPv6
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IHostnameResolver,
    IHostResolution,
    IProtocol,
    IProtocolFactory,
    IReactorTCP,
    IResolutionReceiver,
    IStreamClientEndpoint,
)
from twisted.python.failure import Failure
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer, IPolicyForHTTPS
from zope.interface import implementer

from gateway.config import WebhooksConfig
from gateway.infra.reactor import IClientReactor
from gateway.webhooks.address import Address, AddressPolicy, normalize, parse_literal
from gateway.webhooks.attempts import (
    CANCELLED,
    CANNOT_CONNECT,
    CLOSED,
    CONNECTION_REFUSED,
    DNS_FAILED,
    FAILED,
    REFUSED_ADDRESS,
    TIMEOUT,
    TLS_FAILED,
    UNSUPPORTED,
    PostResult,
)
from gateway.webhooks.attempts import shown_error as shown_error  # re-exported

BODY_LIMIT = 64 * 1024

REFUSED = Counter(
    "gateway_webhook_refused_addresses_total",
    "Webhook attempts refused before connecting: the host is (or resolves only to) an address "
    "that is not public and not in webhooks.allowed_networks.",
)


class RefusedAddress(net_error.ConnectError):
    """Every address of the host is refused by the policy: nothing was connected to."""


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
    """A short, URL-free reason for a failed attempt, from the fixed set above."""
    if isinstance(exc, TimeoutError | net_error.TimeoutError):
        return TIMEOUT.format(timeout=timeout)
    reasons = [r.value for r in getattr(exc, "reasons", [])]
    if isinstance(exc, CancelledError | net_error.ConnectingCancelledError) or any(
        isinstance(r, CancelledError) for r in reasons
    ):
        return CANCELLED
    if isinstance(exc, RefusedAddress):
        return REFUSED_ADDRESS
    if isinstance(exc, net_error.ConnectionRefusedError):
        return CONNECTION_REFUSED
    if isinstance(exc, net_error.DNSLookupError):
        return DNS_FAILED
    if isinstance(exc, SchemeNotSupported):
        return UNSUPPORTED
    if isinstance(exc, ResponseNeverReceived | ResponseFailed):
        if any(type(r).__module__.startswith("OpenSSL") for r in reasons):
            return TLS_FAILED
        return CLOSED
    if isinstance(exc, net_error.ConnectError):
        return CANNOT_CONNECT
    return FAILED


# --- where to connect -----------------------------------------------------------------------


def _resolve(resolver: IHostnameResolver, host: str, port: int) -> Deferred[list[Address]]:
    """Every address ``host`` resolves to now (IPv4 and IPv6), in the resolver's order."""
    found: list[Address] = []
    done: Deferred[list[Address]] = Deferred()

    @implementer(IResolutionReceiver)
    class Receiver:
        def resolutionBegan(self, resolution: IHostResolution) -> None:
            pass

        def addressResolved(self, address: IAddress) -> None:
            if isinstance(address, TwistedIPv4 | TwistedIPv6):
                literal = parse_literal(address.host.split("%", 1)[0])
                if literal is not None:
                    found.append(literal)

        def resolutionComplete(self) -> None:
            if not done.called:  # not cancelled meanwhile
                done.callback(found)

    resolver.resolveHostName(
        Receiver(),
        host,
        portNumber=port,
        addressTypes=[TwistedIPv4, TwistedIPv6],
        transportSemantics="TCP",
    )
    return done


@implementer(IStreamClientEndpoint)
class CheckedEndpoint:
    """TCP to ``host``:``port`` through the policy: resolve, keep the permitted addresses, and
    connect to them in turn (the first that accepts)."""

    def __init__(
        self,
        reactor: IReactorTCP,
        resolver: IHostnameResolver,
        policy: AddressPolicy,
        host: str,
        port: int,
        timeout: float,
    ) -> None:
        self.reactor = reactor
        self.resolver = resolver
        self.policy = policy
        self.host = host
        self.port = port
        self.timeout = timeout

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        return Deferred.fromCoroutine(self._connect(factory))

    async def _connect(self, factory: IProtocolFactory) -> IProtocol:
        literal = parse_literal(self.host)
        if literal is not None:
            addresses = [literal]
        else:
            addresses = await _resolve(self.resolver, self.host, self.port)
            if not addresses:
                raise net_error.DNSLookupError("no address")
        permitted = [normalize(a) for a in addresses if self.policy.permits(a)]
        if not permitted:
            REFUSED.inc()
            raise RefusedAddress()
        last: Exception = net_error.ConnectError()
        for address in dict.fromkeys(permitted):  # unique, in order
            kind = TCP4ClientEndpoint if address.version == 4 else TCP6ClientEndpoint
            endpoint = kind(self.reactor, str(address), self.port, timeout=self.timeout)
            try:
                protocol: IProtocol = await endpoint.connect(factory)
                return protocol
            except net_error.ConnectError as e:  # refused, no route…: the next address
                last = e
        raise last


@implementer(IAgentEndpointFactory)
class CheckedEndpointFactory:
    """The Agent's endpoints: :class:`CheckedEndpoint`, wrapped in TLS for ``https``."""

    def __init__(
        self,
        reactor: IReactorTCP,
        resolver: IHostnameResolver,
        policy: AddressPolicy,
        timeout: float,
        tls: IPolicyForHTTPS | None = None,
    ) -> None:
        self.reactor = reactor
        self.resolver = resolver
        self.policy = policy
        self.timeout = timeout
        self.tls = tls or BrowserLikePolicyForHTTPS()

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        # URI.host keeps an IPv6 literal's brackets (the Host header wants them).
        host = uri.host.decode("ascii").removeprefix("[").removesuffix("]")
        endpoint = CheckedEndpoint(
            self.reactor, self.resolver, self.policy, host, uri.port, self.timeout
        )
        if uri.scheme == b"http":
            return endpoint
        if uri.scheme == b"https":
            # Certificate checked for the URL's host (a name, or an IP address SAN).
            return wrapClientTLS(self.tls.creatorForNetloc(host.encode(), uri.port), endpoint)
        raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")


def request_uri(url: str) -> bytes:
    """``url`` as the ASCII bytes the Agent takes: an international host in IDNA form, the path
    and query percent-encoded; an IPv6 literal kept as it is (treq's IDNA encoding of the host
    refuses ``[2001:db8::1]`` with InvalidCodepoint)."""
    parsed = EncodedURL.from_text(url)
    host = parsed.host
    if parse_literal(host) is not None:
        encoded = parsed.replace(host="ip.invalid").to_uri().replace(host=host)
    else:
        encoded = parsed.to_uri()
    return str(encoded.to_text()).encode("ascii")


@implementer(IBodyProducer)
class _Body:
    """The request body, written at once (it is a few KiB of JSON)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class WebhookClient:
    def __init__(
        self,
        reactor: IClientReactor,
        timeout: float,
        per_host: int,
        *,
        policy: AddressPolicy | None = None,
        resolver: IHostnameResolver | None = None,
        tls: IPolicyForHTTPS | None = None,
    ) -> None:
        """``policy``: where attempts may connect (default: public addresses only);
        ``resolver``: the reactor's name resolver unless given (tests give a fake one)."""
        self.reactor = reactor
        self.timeout = timeout
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = per_host
        self.pool.cachedConnectionTimeout = 60
        self.pool.retryAutomatically = False  # a POST is never sent twice by the pool
        endpoints = CheckedEndpointFactory(
            reactor,
            resolver if resolver is not None else reactor.nameResolver,
            policy if policy is not None else AddressPolicy(),
            timeout,
            tls,
        )
        self.agent = Agent.usingEndpointFactory(reactor, endpoints, pool=self.pool)

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
        try:
            uri = request_uri(url)
        except Exception:  # not a URL the Agent can take (registration refuses them)
            return PostResult(None, FAILED)
        sent = Headers({k.encode(): [v.encode()] for k, v in headers.items()})
        response = await self.agent.request(b"POST", uri, sent, _Body(body))
        try:
            await treq.collect(response, _sink())
        except _BodyTooLarge:
            pass  # the status is the answer; the connection is closed
        return PostResult(response.code, None)

    def close(self) -> Deferred[None]:
        return self.pool.closeCachedConnections()


def client_for(reactor: IClientReactor, config: WebhooksConfig) -> WebhookClient:
    """The client the delivery service posts with: ``webhooks.timeout``, ``per_endpoint``
    connections per host, and ``allowed_networks`` beside the public addresses."""
    return WebhookClient(
        reactor,
        config.timeout,
        config.per_endpoint,
        policy=AddressPolicy(config.allowed_networks),
    )
