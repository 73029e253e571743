"""HTTP before authentication, and 500s for bad input (issue 14, findings 5 and 6), attacked
against the real daemon: a 10 GB declared body, a 2 MiB console form and an oversized console
upload, slow headers, a slow body, too many connections, a burst over the per-key rate, a run
of wrong keys, deeply nested JSON, NUL bytes in ids, query parameters and JSON strings; and no
``Server`` header anywhere.
"""

from __future__ import annotations

import contextlib
import http.client as http_client
import json
import select
import socket
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Biller, on_postgres, onboard, server_database
from tests.daemon import Daemon, admin_cli, http, start_daemon, write_config

pytestmark = pytest.mark.e2e

# Small limits, so that an attack needs few bytes and little time to cross them.
LIMITS = """
header_timeout = 2
request_timeout = 4
max_connections_per_address = 4
"""
# A daemon whose keys and failed authentications are limited tightly.
STRICT = """
requests_per_second = 0.05
request_burst = 3
auth_failures_per_second = 0.05
auth_failure_burst = 3
"""


@dataclass
class Api:
    daemon: Daemon
    port: int
    biller: Biller

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        key: str | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {"Content-Type": "application/json"}
        headers["Authorization"] = f"Bearer {key or self.biller.key}"
        if raw is None:
            return http(method, self.daemon.api + path, body, headers)
        connection = http_client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            connection.request(method, path, raw, headers)
            response = connection.getresponse()
            data = response.read()
            ctype = response.getheader("Content-Type") or ""
            doc = json.loads(data) if "json" in ctype else data
            return response.status, doc, dict(response.getheaders())
        finally:
            connection.close()


@contextlib.contextmanager
def connect(port: int) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    try:
        yield sock
    finally:
        sock.close()


def parse(data: bytes) -> tuple[int, Any, dict[str, str]]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    ctype = headers.get("Content-Type", "")
    return int(lines[0].split()[1]), json.loads(body) if "json" in ctype else body, headers


def closed_by_server(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it sent nothing and is
    still open after ``within`` seconds (the client sends nothing meanwhile); once an answer
    has begun, it is read to the end."""
    data = b""
    end = time.monotonic() + within
    while (left := end - time.monotonic()) > 0 or data:
        ready, _, _ = select.select([sock], [], [], max(left, 0) if not data else 10)
        if not ready:
            if data:
                return data  # an answer, and the connection left open: the caller sees it
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


@contextlib.contextmanager
def running(tmp: Path, limits: str) -> Iterator[Api]:
    with contextlib.ExitStack() as stack:
        if on_postgres():
            url = stack.enter_context(server_database())
        else:
            url = f"sqlite:///{tmp}/gateway.sqlite3"
        config, api_port, metrics_port = write_config(tmp, url, api_extra=limits)
        admin_cli(config, "migrate")
        biller = onboard(config, "acme")
        daemon = start_daemon(config, api_port, metrics_port)
        try:
            daemon.wait()
            yield Api(daemon, api_port, biller)
        finally:
            assert daemon.stop() == 0
        # No request was answered 500 ("Unhandled error answering …" with its traceback).
        assert "Unhandled error" not in daemon.output(), daemon.output()[-3000:]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running(tmp_path_factory.mktemp("limits"), LIMITS) as api:
        yield api


# --- finding 5: HTTP before authentication ----------------------------------------------------


def test_a_declared_10_gb_body_is_refused_at_once_without_sending_it(api: Api) -> None:
    with connect(api.port) as sock:
        sock.sendall(
            b"POST /v1/bills HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + api.biller.key.encode() + b"\r\n"
            b"Content-Length: 10000000000\r\n\r\n"
        )
        answer = closed_by_server(sock, within=10)
    assert answer is not None, "the server waited for the 10 GB body"
    status, doc, headers = parse(answer)
    assert status == 413
    assert headers["Content-Type"].startswith("application/problem+json")
    assert doc["status"] == 413 and "1048576 bytes" in doc["detail"]


def test_only_the_file_routes_take_more_than_1_mib(api: Api) -> None:
    two_mib = 2 * 1024 * 1024
    for path, ctype, length, refused in [
        ("/v1/bills", "application/json", two_mib, True),
        ("/v1/webhook-endpoints", "text/csv", two_mib, True),  # a CSV type opens no route
        ("/v1/bills/batch", "text/csv", two_mib, False),
        ("/v1/bills/batch", "text/csv", 64 * 1024 * 1024 + 1, True),
        # the console: a form takes what a JSON body takes, the upload what the bulk API takes
        ("/console/login", "application/x-www-form-urlencoded", two_mib, True),
        ("/console/bills/new", "application/x-www-form-urlencoded", two_mib, True),
        ("/console/bulk", "multipart/form-data; boundary=b", two_mib, False),
        ("/console/bulk", "multipart/form-data; boundary=b", 64 * 1024 * 1024 + 1, True),
    ]:
        with connect(api.port) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                f"Authorization: Bearer {api.biller.key}\r\n"
                f"Content-Length: {length}\r\n\r\n".encode()
            )
            answer = closed_by_server(sock, within=1.5 if not refused else 10)
        if refused:
            assert answer is not None and parse(answer)[0] == 413, path
        else:
            # Still waiting for the body it may take (closed later, at request_timeout).
            assert answer is None, (path, answer)


def test_slow_headers_are_closed_at_the_header_deadline(api: Api) -> None:
    request = b"GET /v1/bills HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40 + b"\r\n\r\n"
    with connect(api.port) as sock:
        closed = False
        for byte in request[:-4]:  # one byte a second, never the end of the headers
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if closed_by_server(sock, within=1.0) is not None:
                closed = True
                break
    assert closed, "a connection sending one header byte a second was kept open"


def test_a_slow_body_is_answered_408_and_closed_at_the_request_deadline(api: Api) -> None:
    with connect(api.port) as sock:
        sock.sendall(
            b"POST /v1/bills HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + api.biller.key.encode() + b"\r\n"
            b"Content-Length: 100\r\n\r\n"
        )
        answer = None
        for _ in range(20):  # one body byte a second, never the whole body
            try:
                sock.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                break
            answer = closed_by_server(sock, within=1.0)
            if answer is not None:
                break
    assert answer is not None, "a body trickling in one byte a second was waited for"
    assert answer, api.daemon.output()[-3000:]
    assert parse(answer)[0] == 408


def test_too_many_connections_from_one_address_are_refused(api: Api) -> None:
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(connect(api.port)) for _ in range(4)]
        for sock in held:  # each connection is accepted and answers
            sock.sendall(b"GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(12) == b"HTTP/1.1 200"
        extra = stack.enter_context(connect(api.port))
        answer = closed_by_server(extra, within=10)
        assert answer is not None
        status, doc, headers = parse(answer)
        assert status == 429 and "Retry-After" in headers
        assert "at most 4 connections" in doc["detail"]
    # The held ones closed: a new connection is served again.
    for _ in range(50):
        status = http("GET", api.daemon.api + "/v1/openapi.json")[0]
        if status == 200:
            break
        time.sleep(0.1)
    assert status == 200
    assert 'gateway_http_refused_total{reason="connections_per_address"} 1.0' in metrics(api)


def test_no_response_names_the_server_software(api: Api) -> None:
    key = {"Authorization": f"Bearer {api.biller.key}"}
    answers = [
        http("GET", api.daemon.api + "/v1/openapi.json"),
        http("GET", api.daemon.api + "/v1/bills", headers=key),
        http("GET", api.daemon.api + "/v1/bills"),  # 401
        http("GET", api.daemon.api + "/nowhere"),  # 404
        http("GET", api.daemon.api + "/p/" + "x" * 22),  # the customers' page
        head(api.port, "/v1/openapi.json"),
        http("GET", api.daemon.metrics + "/metrics"),
        http("GET", api.daemon.metrics + "/healthz"),
        http("GET", api.daemon.metrics + "/nowhere"),
    ]
    assert [status for status, _, _ in answers] == [200, 200, 401, 404, 404, 200, 200, 200, 404]
    for _, _, headers in answers:
        assert "Server" not in headers, headers["Server"]


def head(port: int, path: str) -> tuple[int, Any, dict[str, str]]:
    connection = http_client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("HEAD", path)
        response = connection.getresponse()
        return response.status, b"", dict(response.getheaders())
    finally:
        connection.close()


def metrics(api: Api) -> str:
    text: str = http("GET", api.daemon.metrics + "/metrics")[1]
    return text


def test_a_burst_over_the_per_key_rate_is_429_and_other_keys_go_on(tmp_path: Path) -> None:
    with running(tmp_path, STRICT) as api:
        other = onboard(api.daemon.config, "other")
        statuses = [api.request("GET", "/v1/bills")[0] for _ in range(3)]
        assert statuses == [200, 200, 200]
        status, doc, headers = api.request("GET", "/v1/bills")
        assert status == 429
        assert headers["Content-Type"].startswith("application/problem+json")
        assert doc["title"] == "Too many requests"
        assert 1 <= int(headers["Retry-After"]) <= 20
        # Keyed by the key: another biller's key is not slowed by this one's burst.
        assert api.request("GET", "/v1/bills", key=other.key)[0] == 200
        text = metrics(api)
        assert 'gateway_http_refused_total{reason="requests_per_key"} 1.0' in text


def test_wrong_keys_from_one_address_are_limited_before_the_lookup(tmp_path: Path) -> None:
    with running(tmp_path, STRICT) as api:
        wrong = [api.request("GET", "/v1/bills", key=f"gw_wrong{i}")[0] for i in range(3)]
        assert wrong == [401, 401, 401]
        status, doc, headers = api.request("GET", "/v1/bills", key="gw_wrong4")
        assert status == 429 and int(headers["Retry-After"]) >= 1
        assert "failed authentications" in doc["detail"]
        assert 'gateway_http_refused_total{reason="auth_failures_per_address"} 1.0' in metrics(api)


# --- finding 6: 500s for bad input ------------------------------------------------------------


def test_deeply_nested_json_is_400_not_500(api: Api) -> None:
    for body in [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000]:
        status, doc, _ = api.request("POST", "/v1/bills", raw=body)
        assert status == 400, doc
        assert doc["errors"] == [{"field": "body", "message": "nests deeper than 32 levels"}]
    # Brackets inside strings are text, not nesting.
    text = json.dumps({"bill_no": "[" * 40, "customer": {"name": "{" * 40}}).encode()
    status, doc, _ = api.request("POST", "/v1/bills", raw=text)
    assert status == 400, doc
    assert "bill_no" in {e["field"] for e in doc["errors"]}
    assert "body" not in {e["field"] for e in doc["errors"]}


def test_nul_bytes_in_path_ids_are_404_before_the_database(api: Api) -> None:
    nul = urllib.parse.quote("\x00")
    for method, path in [
        ("GET", f"/v1/webhook-endpoints/we_{nul}"),
        ("DELETE", f"/v1/webhook-endpoints/we_{nul}"),
        ("GET", f"/v1/webhook-endpoints/we_{nul}/deliveries"),
        ("POST", f"/v1/events/evt_{nul}/redeliver"),
        ("POST", f"/v1/refund-cases/rc_{nul}/resolve"),
        ("GET", f"/v1/bills/INV{nul}1"),
        ("PUT", f"/v1/mandates/C{nul}1"),
        ("GET", f"/v1/settlements/stl_{nul}"),
        ("GET", f"/v1/bills/batch/bat_{nul}/result.csv"),
    ]:
        status, doc, headers = api.request(method, path, body={"resolution": "refunded"})
        assert status == 404, (method, path, doc)
        assert headers["Content-Type"].startswith("application/problem+json")
        assert "\x00" not in doc["detail"]
    # A customer's page answers its HTML 404 page.
    status, _, headers = http("GET", api.daemon.api + f"/p/{'A' * 20}{nul}")
    assert status == 404 and headers["Content-Type"].startswith("text/html")


def test_nul_bytes_in_json_strings_and_queries_never_reach_the_store(api: Api) -> None:
    bill = {
        "bill_no": "INV-1",
        "amount": 1000,
        "due_date": "2099-01-01",
        "channels": ["cvs"],
        "customer": {"name": "山田\x00太郎"},
    }
    # In a field the service checks, in a list, in an unknown field, in a key: 422 naming it.
    for path, body, field in [
        ("/v1/bills", bill, "customer.name"),
        ("/v1/webhook-endpoints", {"url": "https://a.example/", "events": ["\x00"]}, "events[0]"),
        ("/v1/bills/INV-1/cancel", {"reason": "\x00"}, "reason"),
        ("/v1/bills", {**bill, "customer": {"na\x00me": "x"}}, "customer.na\\u0000me"),
    ]:
        status, doc, _ = api.request("POST", path, body)
        assert status == 422, doc
        assert doc["errors"] == [{"field": field, "message": "must not contain control characters"}]
    for query in ["cursor=%00", "status=%00", "x%00=1"]:
        status, doc, _ = api.request("GET", "/v1/bills?" + query)
        assert status == 400, doc
        assert doc["errors"][0]["message"] == "must not contain a NUL character"


# --- the channel and the buckets on a fake clock (no sockets) ---------------------------------


def _site(clock: Any) -> Any:
    from gateway.protocols.api.http import Response, Route, Router, make_site
    from gateway.protocols.api.limits import HttpLimits

    async def echo(call: Any) -> Response:
        return Response.json({"bytes": len(call.body)})

    limits = HttpLimits(max_body_bytes=1024, max_file_bytes=4096, header_timeout=5)
    routes = [
        Route(b"POST", "/small", echo, auth=False),
        Route(b"POST", "/file", echo, auth=False, takes_file=True),
    ]
    return make_site(Router(routes, None, limits, clock), limits, clock)


def _connect(site: Any) -> tuple[Any, Any]:
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 40000))
    channel = site.buildProtocol(None)
    channel.makeConnection(transport)
    return channel, transport


def _chunked(path: bytes, size: int, step: int = 512) -> list[bytes]:
    parts = [b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"]
    parts += [b"%x\r\n%s\r\n" % (step, b"a" * step) for _ in range(size // step)]
    return [*parts, b"0\r\n\r\n"]


def test_a_chunked_body_is_cut_off_once_it_passes_the_routes_limit() -> None:
    from twisted.internet.task import Clock

    site = _site(Clock())
    channel, transport = _connect(site)
    parts = _chunked(b"/small", 4096)
    for part in parts[:4]:  # 1.5 KiB of a 1 KiB route
        channel.dataReceived(part)
    assert transport.value().startswith(b"HTTP/1.1 413 Payload Too Large\r\n")
    assert b"larger than 1024 bytes" in transport.value()
    sent = transport.value()
    for part in parts[4:]:  # the rest is read and dropped, nothing more is answered
        channel.dataReceived(part)
    assert transport.value() == sent
    # The file route takes the same body whole.
    channel, transport = _connect(site)
    for part in _chunked(b"/file", 4096):
        channel.dataReceived(part)
    assert transport.value().startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'{"bytes":4096}' in transport.value()


def test_the_header_deadline_counts_from_the_first_byte_not_the_last() -> None:
    from twisted.internet.task import Clock

    clock = Clock()
    channel, transport = _connect(_site(clock))
    for byte in b"GET /small HTTP/1.1\r\nHost: x\r\n":
        channel.dataReceived(bytes([byte]))
        clock.advance(0.1)  # well within any idle timeout, byte after byte
    assert not transport.disconnecting
    clock.advance(5)  # 5 s (header_timeout) after the first byte
    assert transport.disconnecting
    assert transport.value() == b""  # closed, nothing answered


def test_the_token_bucket_refills_at_its_rate_and_names_the_wait() -> None:
    from twisted.internet.task import Clock

    from gateway.protocols.api.limits import TokenBucket

    clock = Clock()
    bucket = TokenBucket(clock, rate=0.5, burst=2, max_keys=2)
    assert [bucket.take("key_a"), bucket.take("key_a")] == [None, None]
    assert bucket.take("key_a") == 2  # one token in 2 s at 0.5 a second
    assert bucket.take("key_b") is None  # another key has its own bucket
    clock.advance(2)
    assert bucket.take("key_a") is None
    assert bucket.take("key_a") == 2


@pytest.mark.parametrize(
    ("line", "path", "says"),
    [
        ("max_body_bytes = 100", "api.max_body_bytes", "below the minimum 1024"),
        ("max_file_bytes = 2048\nmax_body_bytes = 4096", "api.max_file_bytes", "at least"),
        ("header_timeout = 0", "api.header_timeout", "greater than 0"),
        ("header_timeout = 30\nrequest_timeout = 10", "api.request_timeout", "at least"),
        ("max_connections_per_address = -1", "api.max_connections_per_address", "minimum 0"),
        ("requests_per_second = 0", "api.requests_per_second", "greater than 0"),
        ("request_burst = 0", "api.request_burst", "below the minimum 1"),
        ("auth_failure_burst = true", "api.auth_failure_burst", "not a boolean"),
    ],
)
def test_a_bad_limit_is_refused_naming_it(tmp_path: Path, line: str, path: str, says: str) -> None:
    from gateway.config import load_config
    from gateway.errors import ConfigError
    from tests.conftest import config_text

    text = config_text(f"sqlite:///{tmp_path}/g.sqlite3")
    config = tmp_path / "gateway.toml"
    config.write_text(text.replace("auth_cache_seconds = 0", "auth_cache_seconds = 0\n" + line))
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert raised.value.path == path
    assert says in str(raised.value)
