"""The operator's HTTP listener: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.twisted import MetricsResource
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web import resource, server

# The check's answer: "store" (and any other top-level string) must be "ok" to be ready;
# "detail" is shown as it is and does not decide readiness.
ReadyCheck = Callable[[], Deferred[dict[str, Any]]]


class _Request(server.Request):
    """A request whose response names no server software (twisted.web sends TwistedWeb/…)."""

    def write(self, data: bytes) -> None:
        if not self.startedWriting:
            self.responseHeaders.removeHeader(b"server")
        super().write(data)


class _Json(resource.Resource):
    isLeaf = True

    def _send(self, request: server.Request, status: int, doc: Any) -> bytes:
        request.setResponseCode(status)
        request.setHeader("Content-Type", "application/json")
        request.setHeader("Cache-Control", "no-store")
        return json.dumps(doc).encode()


class Health(_Json):
    """The process is up and its reactor turns."""

    def render_GET(self, request: server.Request) -> bytes:
        return self._send(request, 200, {"status": "ok"})


class Ready(_Json):
    """Ready to take traffic: every check answers "ok" within the timeout."""

    def __init__(self, check: ReadyCheck, clock: IReactorTime, timeout: float = 3.0) -> None:
        super().__init__()
        self.check = check
        self.clock = clock
        self.timeout = timeout

    def render_GET(self, request: server.Request) -> Any:
        d = self.check()
        d.addTimeout(self.timeout, self.clock)

        def answer(checks: dict[str, Any]) -> None:
            ok = all(v == "ok" for k, v in checks.items() if k != "detail")
            body = self._send(request, 200 if ok else 503, {"ready": ok, "checks": checks})
            if not request.finished:
                request.write(body)
                request.finish()

        def failed(_: Any) -> None:
            answer({"store": "no answer"})

        d.addCallbacks(answer, failed)
        return server.NOT_DONE_YET


def ops_site(
    check: ReadyCheck, clock: IReactorTime, registry: CollectorRegistry = REGISTRY
) -> server.Site:
    root = resource.Resource()
    root.putChild(b"metrics", MetricsResource(registry=registry))
    root.putChild(b"healthz", Health())
    root.putChild(b"readyz", Ready(check, clock))
    site = server.Site(root)
    site.requestFactory = _Request
    site.displayTracebacks = False
    return site
