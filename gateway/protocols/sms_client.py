"""The HTTP SMS provider: one ``POST`` of JSON per message to the provider's REST endpoint
(``[sms] endpoint``), the key as ``Authorization: Bearer`` (docs/notices.md).

The request::

    POST <endpoint>
    Authorization: Bearer <api_key>
    Content-Type: application/json

    {"to": "09012345678", "text": "…", "sender": "GATEWAY", "reference": "notice-17"}

``reference`` is the notice's own id (a provider that deduplicates on it sends a retried message
once). A ``2xx`` answer is taken (its JSON ``id``, if any, is kept as the provider's message id);
``408``, ``429`` and ``5xx`` are "not now" (retried); any other status refuses the message for
good (a number it does not serve, a text it refuses). No answer within ``timeout`` seconds, a
refused connection, a TLS failure: retried.

The endpoint is an attack surface like a webhook URL (gateway.webhooks.address): it is resolved
at every attempt and every address checked (public, or in ``[sms] allowed_networks``), the
connection made to an address that passed — never a second lookup; a literal address the
policy refuses stops the daemon at start (:class:`ConfigError` naming ``sms.endpoint``).
Redirects are not followed; the answer is read up to 64 KiB. What a failure says is a fixed text
(gateway.webhooks.attempts): never the URL, the number, the text or the key.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import treq
from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.internet.interfaces import IConsumer, IHostnameResolver
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IPolicyForHTTPS
from zope.interface import implementer

from gateway.billing.sms import SmsResult
from gateway.config.notices import SmsConfig
from gateway.errors import ConfigError
from gateway.infra.reactor import IClientReactor
from gateway.protocols.webhook_client import CheckedEndpointFactory, describe, request_uri
from gateway.webhooks.address import AddressPolicy

ANSWER_LIMIT = 64 * 1024
RETRIED_STATUSES = frozenset({408, 425, 429})


@implementer(IBodyProducer)
class _Body:
    """The request body, written at once (a few hundred bytes of JSON)."""

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


class _TooLarge(Exception):
    pass


def _collector(into: bytearray) -> Any:
    def collect(chunk: bytes) -> None:
        if len(into) + len(chunk) > ANSWER_LIMIT:
            raise _TooLarge()
        into.extend(chunk)

    return collect


def provider_id(answer: bytes) -> str | None:
    """The message id in a provider's JSON answer (``id`` or ``message_id``), if any."""
    try:
        doc = json.loads(answer.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    found = doc.get("id", doc.get("message_id"))
    if isinstance(found, str | int) and not isinstance(found, bool):
        text = str(found)
        return text[:64] if text.isprintable() else None
    return None


def result_of(status: int, answer: bytes) -> SmsResult:
    """What an HTTP status (and answer) of the provider means for the message."""
    if 200 <= status < 300:
        return SmsResult(True, provider_id(answer))
    if status in RETRIED_STATUSES or status >= 500:
        return SmsResult(False, error=f"provider not available (HTTP {status})")
    return SmsResult(False, permanent=True, error=f"refused by the provider (HTTP {status})")


class HttpSmsProvider:
    """:class:`gateway.billing.sms.SmsProvider` over the provider's REST endpoint."""

    def __init__(
        self,
        reactor: IClientReactor,
        config: SmsConfig,
        *,
        resolver: IHostnameResolver | None = None,
        tls: IPolicyForHTTPS | None = None,
    ) -> None:
        self.reactor = reactor
        self.config = config
        self.policy = AddressPolicy(config.allowed_networks)
        host = urlsplit(config.endpoint).hostname or ""
        if not self.policy.permits_host(host):
            raise ConfigError(
                "sms.endpoint",
                "is on an address that is not public and not in sms.allowed_networks",
            )
        self.uri = request_uri(config.endpoint)
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 4
        self.pool.cachedConnectionTimeout = 60
        self.pool.retryAutomatically = False  # a POST is never sent twice by the pool
        endpoints = CheckedEndpointFactory(
            reactor,
            resolver if resolver is not None else reactor.nameResolver,
            self.policy,
            config.timeout,
            tls,
        )
        self.agent = Agent.usingEndpointFactory(reactor, endpoints, pool=self.pool)

    def send(self, to: str, text: str, sender: str | None, reference: str) -> Deferred[SmsResult]:
        doc: dict[str, str] = {"to": to, "text": text, "reference": reference}
        if sender is not None:
            doc["sender"] = sender
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        d = Deferred.fromCoroutine(self._post(body))
        timeout = self.config.timeout

        def timed_out(result: object, timeout: float) -> SmsResult:
            return SmsResult(False, error=describe(TimeoutError(), timeout))

        d.addTimeout(timeout, self.reactor, onTimeoutCancel=timed_out)

        def failed(failure: Failure) -> SmsResult:
            return SmsResult(False, error=describe(failure.value or Exception(), timeout))

        return d.addErrback(failed)

    async def _post(self, body: bytes) -> SmsResult:
        headers = Headers(
            {
                b"Authorization": [f"Bearer {self.config.api_key}".encode()],
                b"Content-Type": [b"application/json; charset=utf-8"],
                b"Accept": [b"application/json"],
                b"User-Agent": [b"collection-gateway"],
            }
        )
        response = await self.agent.request(b"POST", self.uri, headers, _Body(body))
        answer = bytearray()
        try:
            await treq.collect(response, _collector(answer))
        except _TooLarge:
            answer.clear()
        return result_of(response.code, bytes(answer))

    def close(self) -> Deferred[None]:
        return self.pool.closeCachedConnections()
