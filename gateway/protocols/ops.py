"""The operator's HTTP listener: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

Besides serving the metrics it exports two of its own, both read at each scrape:
``gateway_ready`` (the answer ``/readyz`` would give, as 1 or 0) and the free space of the
folders the daemon reads and writes (:func:`watch_folders`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from prometheus_client.twisted import MetricsResource
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web import resource, server

# The check's answer: "store" (and any other top-level string) must be "ok" to be ready;
# "detail" is shown as it is and does not decide readiness.
ReadyCheck = Callable[[], Deferred[dict[str, Any]]]

READY = Gauge(
    "gateway_ready",
    "1 when the daemon is ready to take traffic (what /readyz answers 200 for), else 0; "
    "checked at each scrape.",
)
FOLDER_FREE = Gauge(
    "gateway_folder_free_bytes",
    "Space left for the daemon's user on the file system of a configured folder, by folder "
    "(cvs.inbox or cvs-<agency>.inbox, zengin.inbox, zengin.outbox, bulk.inbox, database).",
    ["folder"],
)
FOLDER_SIZE = Gauge(
    "gateway_folder_size_bytes",
    "Size of the file system of a configured folder, by folder.",
    ["folder"],
)


def _statvfs(path: Path) -> os.statvfs_result | None:
    """The file system of ``path``, or of its nearest existing parent (a folder not made yet
    will be made there)."""
    for candidate in (path, *path.parents):
        try:
            return os.statvfs(candidate)
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return None


def _free_bytes(path: Path) -> float:
    st = _statvfs(path)
    return math.nan if st is None else float(st.f_bavail * st.f_frsize)


def _size_bytes(path: Path) -> float:
    st = _statvfs(path)
    return math.nan if st is None else float(st.f_blocks * st.f_frsize)


def watch_folders(folders: Mapping[str, Path]) -> None:
    """Export the free space and size of each folder (by its name) at every scrape."""
    for name, path in folders.items():
        FOLDER_FREE.labels(name).set_function(partial(_free_bytes, path))
        FOLDER_SIZE.labels(name).set_function(partial(_size_bytes, path))


def _checked(check: ReadyCheck, clock: IReactorTime, timeout: float) -> Deferred[dict[str, Any]]:
    """The checks' answer within ``timeout`` (``store: no answer`` past it); sets READY."""
    d = check()
    d.addTimeout(timeout, clock)

    def judged(checks: dict[str, Any]) -> dict[str, Any]:
        READY.set(1 if _ready(checks) else 0)
        return checks

    def failed(_: Any) -> dict[str, Any]:
        return judged({"store": "no answer"})

    return d.addCallbacks(judged, failed)


def _ready(checks: dict[str, Any]) -> bool:
    return all(v == "ok" for k, v in checks.items() if k != "detail")


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
        def answer(checks: dict[str, Any]) -> None:
            ok = _ready(checks)
            body = self._send(request, 200 if ok else 503, {"ready": ok, "checks": checks})
            if not request.finished:
                request.write(body)
                request.finish()

        _checked(self.check, self.clock, self.timeout).addCallback(answer)
        return server.NOT_DONE_YET


class Metrics(resource.Resource):
    """The registry in Prometheus text format, ``gateway_ready`` checked just before."""

    isLeaf = True

    def __init__(
        self,
        check: ReadyCheck,
        clock: IReactorTime,
        registry: CollectorRegistry,
        timeout: float = 3.0,
    ) -> None:
        super().__init__()
        self.check = check
        self.clock = clock
        self.timeout = timeout
        self.metrics = MetricsResource(registry=registry)

    def render_GET(self, request: server.Request) -> Any:
        def render(_: Any) -> None:
            if not request.finished:  # prometheus_client's WSGI app, on the reactor's threads
                self.metrics.render(request)

        _checked(self.check, self.clock, self.timeout).addBoth(render)
        return server.NOT_DONE_YET


def ops_site(
    check: ReadyCheck, clock: IReactorTime, registry: CollectorRegistry = REGISTRY
) -> server.Site:
    root = resource.Resource()
    root.putChild(b"metrics", Metrics(check, clock, registry))
    root.putChild(b"healthz", Health())
    root.putChild(b"readyz", Ready(check, clock))
    site = server.Site(root)
    site.requestFactory = _Request
    site.displayTracebacks = False
    return site
