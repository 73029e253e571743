"""A small JSON HTTP framework on twisted.web: routes, auth, limits, problems, metrics.

* A request body over its route's limit is refused with 413 as soon as its ``Content-Length``
  is known (or as soon as a chunked body passes it), without reading the rest
  (:mod:`gateway.protocols.api.limits`); only the routes marked ``takes_file`` take more than
  ``api.max_body_bytes``.
* Every path parameter is checked against its pattern (:mod:`gateway.protocols.api.params`)
  before the handler; a JSON body deeper than :data:`MAX_JSON_DEPTH` or with a NUL character in
  a string is refused with 400 naming it.
* Requests are limited per API key and failed authentications per client address (429).
* Every error is ``application/problem+json`` (RFC 9457) naming the field.
* Handlers are coroutines; each request is counted and timed by route template and status.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from itertools import accumulate
from typing import Any
from urllib.parse import unquote

from prometheus_client import Counter, Histogram
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

from gateway.billing.keys import Authenticator
from gateway.errors import Conflict, FieldError, InvalidRequest, NotFound, StoreError
from gateway.model import IdempotencyClaim, Principal, StoredResponse
from gateway.protocols.api.access_log import mask_path, masked_log_formatter
from gateway.protocols.api.limits import GuardedChannel, HttpLimits, TokenBucket, refused
from gateway.protocols.api.params import PATH_PARAMS
from gateway.protocols.api.statuses import STATUS

log = Logger()

IDEMPOTENCY_KEY = re.compile(r"[!-~](?:[ -~]{0,253}[!-~])?")
MAX_JSON_DEPTH = 32  # arrays and objects within one another; deeper is 400 before parsing

HTTP_REQUESTS = Counter(
    "gateway_http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "gateway_http_request_duration_seconds",
    "Time from a request's arrival to its response, by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class ApiRequest(server.Request):
    """A request that refuses an oversized body early instead of buffering it, and whose
    response names no server software.

    ``limit`` is set by the channel (:class:`GuardedChannel`) from the route before the body
    arrives; the channel answers 413 itself when the declared length is over it.
    """

    too_large = False
    limit = HttpLimits.max_body_bytes

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.limit:
            self.too_large = True
            self.content = BytesIO()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        assert self.content is not None
        if self.content.tell() + len(data) > self.limit:
            # A chunked body (no Content-Length) that passed the limit: stop reading it.
            self.too_large = True
            self.content = BytesIO()
            if isinstance(self.channel, GuardedChannel):
                self.channel.refuse_body(self.limit)
            return
        super().handleContentChunk(data)

    def write(self, data: bytes) -> None:
        if not self.startedWriting:
            self.responseHeaders.removeHeader(b"server")  # twisted.web sets TwistedWeb/<version>
        super().write(data)


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, doc: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode())

    @classmethod
    def stored(cls, stored: StoredResponse) -> Response:
        headers = {"Idempotent-Replayed": "true"} if stored.replayed else {}
        return cls(STATUS[stored.outcome], stored.body.encode(), headers=headers)


class Problem(Exception):
    """An error answer: RFC 9457 problem details."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = tuple(errors)
        self.headers = dict(headers or {})

    def response(self) -> Response:
        doc: dict[str, Any] = {
            "type": f"https://gateway.invalid/problems/{self.status}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail or self.title,
        }
        if self.errors:
            doc["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        resp = Response.json(doc, self.status)
        resp.content_type = "application/problem+json"
        resp.headers.update(self.headers)
        return resp


def problem_for(error: BaseException) -> Problem | None:
    """Map the core's typed errors to HTTP problems; None for an unexpected error."""
    if isinstance(error, Problem):
        return error
    if isinstance(error, InvalidRequest):
        return Problem(STATUS[error.kind], error.title, str(error), error.errors)
    if isinstance(error, NotFound):
        return Problem(404, "Not found", f"{error.what} not found")
    if isinstance(error, Conflict):
        errors = [FieldError(error.field, error.detail)] if error.field else []
        return Problem(409, "Conflict", error.detail, errors)
    if isinstance(error, StoreError):
        return Problem(503, "Service unavailable", str(error), headers={"Retry-After": "5"})
    return None


@dataclass
class Call:
    """One request as a handler sees it."""

    request: ApiRequest
    params: dict[str, str]
    principal: Principal | None
    body: bytes

    def query(self, name: str) -> str | None:
        values = self.request.args.get(name.encode())
        return values[0].decode("utf-8", "replace") if values else None

    def json_body(self, required: bool = True) -> object:
        if not self.body.strip():
            if required:
                raise Problem(
                    400,
                    "The request is malformed",
                    "a JSON body is required",
                    [FieldError("body", "is required")],
                )
            return None
        ctype = (self.request.getHeader("content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise Problem(415, "Unsupported media type", "send Content-Type: application/json")
        if json_depth(self.body) > MAX_JSON_DEPTH:
            raise Problem(
                400,
                "The request is malformed",
                f"the body nests arrays and objects deeper than {MAX_JSON_DEPTH}",
                [FieldError("body", f"nests deeper than {MAX_JSON_DEPTH} levels")],
            )
        try:
            doc = json.loads(self.body.decode("utf-8"), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise Problem(
                400,
                "The request is malformed",
                f"the body is not valid JSON: {e}",
                [FieldError("body", "is not valid JSON")],
            ) from None
        where = _nul_in(doc, "")
        if where is not None:
            # PostgreSQL's text columns cannot hold NUL: whatever field it is in, it never
            # reaches the store (the answer of gateway.validation for a control character).
            raise InvalidRequest(
                [FieldError(where or "body", "must not contain control characters")]
            )
        if doc is None:  # a JSON null is a body, and not an object (not "no body")
            raise Problem(
                400,
                "The request is malformed",
                "the body must be a JSON object",
                [FieldError("body", "must be a JSON object")],
            )
        return doc

    def idempotency(self) -> IdempotencyClaim | None:
        key = self.request.getHeader("idempotency-key")
        if key is None:
            return None
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise Problem(
                400,
                "The request is malformed",
                "bad Idempotency-Key",
                [FieldError("Idempotency-Key", "must be 1-255 printable ASCII characters")],
            )
        assert self.principal is not None
        digest = hashlib.sha256()
        for part in (self.request.method, self.request.path, self.body):
            digest.update(part)
            digest.update(b"\x00")
        return IdempotencyClaim(self.principal.scope, key, digest.hexdigest())


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# A JSON string (to its closing quote, or to the end of an unterminated one: linear, never
# backtracking), and every byte that is not a bracket.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in ``body`` (a JSON text or not), without parsing."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(_DEPTH_STEP[b] for b in brackets), default=0)


def _nul_in(doc: object, where: str) -> str | None:
    """The path (``customer.name``, ``items[2]``) of the first string with a NUL, or None."""
    if isinstance(doc, str):
        return where if "\x00" in doc else None
    if isinstance(doc, dict):
        for key, value in doc.items():
            inner = f"{where}.{key}" if where else str(key)
            if "\x00" in key:
                return inner.replace("\x00", "\\u0000")
            found = _nul_in(value, inner)
            if found is not None:
                return found
    if isinstance(doc, list):
        for i, value in enumerate(doc):
            found = _nul_in(value, f"{where}[{i}]")
            if found is not None:
                return found
    return None


Handler = Callable[[Call], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    method: bytes
    template: str  # "/v1/bills/{bill_no}": the metric label
    handler: Handler
    auth: bool = True
    takes_file: bool = False  # a file upload: api.max_file_bytes instead of api.max_body_bytes
    not_found: Response | None = None  # the answer to a bad path parameter (default: problem)
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        for name in re.findall(r"\{(\w+)\}", self.template):
            if name not in PATH_PARAMS:
                raise ValueError(f"{self.template}: {{{name}}} has no pattern in PATH_PARAMS")
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        object.__setattr__(self, "regex", re.compile(pattern + "$"))


class Router(resource.Resource):
    """Dispatches every path itself (isLeaf) so that unknown paths are problem+json too."""

    isLeaf = True

    def __init__(
        self,
        routes: Sequence[Route],
        authenticator: Authenticator | None,
        limits: HttpLimits | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        super().__init__()
        self.routes = list(routes)
        self.authenticator = authenticator
        self.limits = limits or HttpLimits()
        self.per_key: TokenBucket | None = None
        self.auth_failures: TokenBucket | None = None
        if clock is not None:
            lim = self.limits
            self.per_key = TokenBucket(clock, lim.requests_per_second, lim.request_burst)
            self.auth_failures = TokenBucket(
                clock, lim.auth_failures_per_second, lim.auth_failure_burst
            )

    def body_limit(self, method: bytes, uri: bytes) -> int:
        """The largest body the route of ``method uri`` takes (headers just received)."""
        path = uri.split(b"?", 1)[0].decode("ascii", "replace")
        for route in self.routes:
            if route.takes_file and route.method == method and route.regex.match(path):
                return self.limits.max_file_bytes
        return self.limits.max_body_bytes

    def render(self, request: server.Request) -> Any:
        assert isinstance(request, ApiRequest)
        started = time.perf_counter()
        d = ensureDeferred(self._dispatch(request))
        d.addErrback(self._unexpected, request)
        d.addCallback(self._write, request, started)
        return server.NOT_DONE_YET

    def _match(self, request: ApiRequest) -> tuple[Route | None, dict[str, str], str]:
        path = request.path.decode("ascii", "replace")
        allowed = []
        # As OpenAPI matches paths: a literal one (/v1/bills/batch) before a template that would
        # also match it (/v1/bills/{bill_no}).
        literal = any("{" not in r.template and r.regex.match(path) for r in self.routes)
        for route in self.routes:
            if literal and "{" in route.template:
                continue
            m = route.regex.match(path)
            if m:
                if route.method == request.method or (
                    request.method == b"HEAD" and route.method == b"GET"
                ):
                    return route, {k: unquote(v) for k, v in m.groupdict().items()}, path
                allowed.append(route)
        if allowed:
            methods = ", ".join(sorted({r.method.decode() for r in allowed}))
            raise Problem(405, "Method not allowed", f"use {methods}", headers={"Allow": methods})
        return None, {}, path

    async def _dispatch(self, request: ApiRequest) -> tuple[str, Response]:
        label = "unmatched"
        try:
            route, params, path = self._match(request)
            if route is None:
                raise Problem(404, "Not found", f"no resource at {path}")
            label = route.template
            if request.too_large:
                raise Problem(
                    413, "Payload too large", f"the body is larger than {request.limit} bytes"
                )
            principal = await self._authenticate(request) if route.auth else None
            if principal is not None and self.per_key is not None:
                wait = self.per_key.take(principal.key_id)
                if wait is not None:
                    refused("requests_per_key")
                    raise _too_many(wait, "too many requests with this API key")
            bad = self._bad_param(route, params)
            if bad is not None:
                return label, bad
            _refuse_nul_in_query(request)
            assert request.content is not None
            request.content.seek(0)
            call = Call(request, params, principal, request.content.read())
            return label, await route.handler(call)
        except Exception as e:
            problem = problem_for(e)
            if problem is None:
                raise
            return label, problem.response()

    async def _authenticate(self, request: ApiRequest) -> Principal:
        """The key's principal; 401 without one, 429 for an address that failed too often."""
        address = str(getattr(request.getClientAddress(), "host", "unknown"))
        if self.auth_failures is not None:
            wait = self.auth_failures.retry_after(address)
            if wait is not None:
                refused("auth_failures_per_address")
                raise _too_many(wait, "too many failed authentications from this address")
        try:
            return await self._principal(request)
        except Problem:
            if self.auth_failures is not None:
                self.auth_failures.take(address)
            raise

    def _bad_param(self, route: Route, params: dict[str, str]) -> Response | None:
        for name, value in params.items():
            param = PATH_PARAMS[name]
            if param.regex.fullmatch(value):
                continue
            if route.not_found is not None:
                return route.not_found
            shown = value[:64].replace("\x00", "\\u0000")
            if param.status == 404:
                return Problem(404, "Not found", f"{param.what} {shown} not found").response()
            return Problem(
                400,
                "The request is malformed",
                f"{name} must match {param.pattern}",
                [FieldError(name, f"must match {param.pattern}")],
            ).response()
        return None

    async def _principal(self, request: ApiRequest) -> Principal:
        header = request.getHeader("authorization") or ""
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Problem(
                401,
                "Unauthorized",
                "send Authorization: Bearer <API key>",
                headers={"WWW-Authenticate": 'Bearer realm="gateway"'},
            )
        assert self.authenticator is not None
        principal = await self.authenticator.authenticate(key.strip())
        if principal is None:
            raise Problem(
                401,
                "Unauthorized",
                "the API key is unknown or revoked",
                headers={"WWW-Authenticate": 'Bearer realm="gateway"'},
            )
        if principal.suspended:  # the operator suspended its biller (gateway.billing.billers)
            raise Problem(403, "Forbidden", "the biller is suspended: ask the operator")
        return principal

    def _unexpected(self, failure: Failure, request: ApiRequest) -> tuple[str, Response]:
        log.failure(
            "Unhandled error answering {method} {route}",
            failure,
            method=request.method.decode(),
            route=mask_path(request.path.decode()[:100]),
        )
        return "unmatched", Problem(
            500, "Internal server error", "the error was logged; try again later"
        ).response()

    def _write(self, result: tuple[str, Response], request: ApiRequest, started: float) -> None:
        label, response = result
        method = request.method.decode("ascii", "replace")
        HTTP_REQUESTS.labels(
            label, method if label != "unmatched" else "other", str(response.status)
        ).inc()
        HTTP_SECONDS.labels(label, method if label != "unmatched" else "other").observe(
            time.perf_counter() - started
        )
        if request.finished or request._disconnected:
            # The client went away; its transaction (if any) committed or rolled back on its
            # own, and a retry with the same Idempotency-Key gets the stored answer.
            return
        request.setResponseCode(response.status)
        request.setHeader(
            "Content-Type",
            response.content_type + "; charset=utf-8"
            if response.content_type.endswith("json")
            else response.content_type,
        )
        request.setHeader("Cache-Control", "no-store")
        request.setHeader("X-Content-Type-Options", "nosniff")
        for name, value in response.headers.items():
            request.setHeader(name, value)
        if response.status == 413:
            request.setHeader("Connection", "close")
        request.write(response.body)
        request.finish()


def _too_many(wait: int, detail: str) -> Problem:
    return Problem(429, "Too many requests", detail, headers={"Retry-After": str(wait)})


def _refuse_nul_in_query(request: ApiRequest) -> None:
    for name, values in request.args.items():
        if b"\x00" in name or any(b"\x00" in v for v in values):
            shown = name.decode("utf-8", "replace").replace("\x00", "\\u0000")[:64]
            raise Problem(
                400,
                "The request is malformed",
                f"the query parameter {shown} contains a NUL character",
                [FieldError(shown, "must not contain a NUL character")],
            )


class ApiSite(server.Site):
    """The API listener: HTTP/1.1 channels with the limits of :class:`GuardedChannel`."""

    protocol = GuardedChannel  # type: ignore[assignment]

    def __init__(
        self, root: resource.Resource, limits: HttpLimits, clock: IReactorTime, timeout: float
    ) -> None:
        super().__init__(root, timeout=timeout, logFormatter=masked_log_formatter, reactor=clock)
        self.limits = limits
        self.clock = clock
        self.connections: dict[str, int] = {}
        self.requestFactory = ApiRequest
        self.displayTracebacks = False

    def body_limit(self, method: bytes, uri: bytes) -> int:
        if isinstance(self.resource, Router):
            return self.resource.body_limit(method, uri)
        return self.limits.max_body_bytes

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        assert isinstance(channel, GuardedChannel)
        channel.limits = self.limits
        channel.clock = self.clock
        channel.body_limit = self.body_limit
        channel.connections = self.connections
        return channel


def make_site(
    root: resource.Resource,
    limits: HttpLimits | None = None,
    clock: IReactorTime | None = None,
    timeout: float = 60.0,
) -> server.Site:
    """The API's site; without a clock (unit tests), twisted.web's plain channel."""
    if clock is not None:
        return ApiSite(root, limits or HttpLimits(), clock, timeout)
    site = server.Site(root, timeout=timeout, logFormatter=masked_log_formatter)
    site.requestFactory = ApiRequest
    site.displayTracebacks = False
    return site


def as_deferred(coro: Awaitable[Any]) -> Deferred[Any]:
    return ensureDeferred(coro)  # type: ignore[arg-type]
