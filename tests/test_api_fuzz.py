"""No input makes the API answer 500 (issue 14, finding 6): Hypothesis sends random bytes, random
JSON (nested beyond the cap too) and random path segments and query strings (NUL bytes,
unicode, slashes) to every route of the real daemon, with a biller's key, an admin key, a wrong
key or none, and never sees a 5xx.

Runs on SQLite, and on PostgreSQL with GATEWAY_TEST_DATABASE_URL set. The CI profile keeps the
example count moderate; run it longer with the ``fuzz-long`` profile::

    GATEWAY_FUZZ_PROFILE=fuzz-long .venv/bin/python -m pytest tests/test_api_fuzz.py -q
    GATEWAY_FUZZ_PROFILE=fuzz-long GATEWAY_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest ...
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.protocols.api.openapi import openapi_document
from gateway.protocols.api.params import PATH_PARAMS
from tests.conftest import on_postgres, onboard, server_database
from tests.daemon import Daemon, admin_cli, start_daemon, write_config

pytestmark = pytest.mark.e2e

settings.register_profile(
    "fuzz-ci",
    max_examples=40,  # per route: about 1,500 requests in all
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "fuzz-long",
    max_examples=int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = settings.get_profile(os.environ.get("GATEWAY_FUZZ_PROFILE", "fuzz-ci"))

# The limits would answer 429 to most of a fuzzer's requests: lift them for this daemon.
NO_LIMITS = """
requests_per_second = 1000000
request_burst = 100000
auth_failures_per_second = 1000000
auth_failure_burst = 100000
"""

ROUTES = [
    ("GET", "/v1/openapi.json"),
    *sorted(
        (method.upper(), path)
        for path, ops in openapi_document("http://127.0.0.1").get("paths", {}).items()
        for method in ops
        if method in ("get", "put", "post", "delete", "patch")
    ),
]


@dataclass
class Fuzzed:
    daemon: Daemon
    port: int
    keys: dict[str, str]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    with contextlib.ExitStack() as stack:
        if on_postgres():
            url = stack.enter_context(server_database())
        else:
            url = f"sqlite:///{tmp}/gateway.sqlite3"
        config, api_port, metrics_port = write_config(tmp, url, api_extra=NO_LIMITS)
        admin_cli(config, "migrate")
        biller = onboard(config, "fuzz")
        admin = json.loads(admin_cli(config, "key", "create", "--admin").stdout)["key"]
        daemon = start_daemon(config, api_port, metrics_port)
        try:
            daemon.wait()
            yield Fuzzed(daemon, api_port, {"biller": biller.key, "admin": admin})
        finally:
            assert daemon.stop() == 0
        assert "Unhandled error" not in daemon.output(), daemon.output()[-4000:]


# --- strategies -------------------------------------------------------------------------------

TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from("\x00/%?#[]{}.\\"),
    max_size=80,
)


def segment(name: str) -> st.SearchStrategy[str]:
    """A path parameter: of its pattern's shape, or anything (NUL, '/', unicode), quoted."""
    shaped = st.from_regex(PATH_PARAMS[name].regex, fullmatch=True) if name in PATH_PARAMS else TEXT
    nul = shaped.map(lambda s: s[: len(s) // 2] + "\x00" + s[len(s) // 2 :])
    return st.one_of(shaped, nul, TEXT, st.just("a" * 300)).map(
        lambda s: urllib.parse.quote(s, safe="") or "x"
    )


JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
# Around the cap (32), and past the recursion limit of Python's parser (about 1,000).
DEEP = (st.integers(20, 40) | st.sampled_from([1000, 5000, 100_000])).map(
    lambda n: b"[" * n + b"]" * n
)
BODY = st.one_of(
    st.none(),
    st.binary(max_size=2048),
    JSON.map(lambda doc: json.dumps(doc, ensure_ascii=False).encode()),
    st.dictionaries(TEXT, JSON, max_size=6).map(lambda doc: json.dumps(doc).encode()),
    DEEP,
    DEEP,
)
# Mostly what the route takes, so that the bytes get past the media-type check.
CONTENT_TYPE = st.sampled_from(
    ["application/json"] * 4
    + [None, "text/csv", "text/csv; charset=shift_jis", "text/plain", "\x7f"]
)
CSV_TYPE = st.sampled_from(
    ["text/csv"] * 3 + ["text/csv; charset=shift_jis", "text/csv; charset=x", "application/json"]
)
QUERY = st.lists(st.tuples(TEXT, TEXT), max_size=4).map(urllib.parse.urlencode)


@st.composite
def requests(draw: st.DrawFn, method: str, template: str) -> dict[str, Any]:
    path = template
    for name in [part.split("}")[0] for part in template.split("{")[1:]]:
        path = path.replace("{" + name + "}", draw(segment(name)), 1)
    query = draw(QUERY)
    csv = template == "/v1/bills/batch"
    return {
        "method": draw(st.sampled_from([method] * 6 + ["PATCH", "GET", "HEAD"])),
        "path": path + ("?" + query if query else ""),
        "body": draw(BODY),
        "content_type": draw(CSV_TYPE if csv else CONTENT_TYPE),
        "who": draw(st.sampled_from(["biller"] * 5 + ["admin"] * 2 + ["wrong", None])),
        "idempotency_key": draw(st.none() | TEXT),
    }


def send(fuzzed: Fuzzed, request: dict[str, Any]) -> tuple[int, bytes]:
    headers: dict[str, str] = {}
    who = request["who"]
    if who is not None:
        key = fuzzed.keys.get(who, "gw_not_a_key")
        headers["Authorization"] = f"Bearer {key}"
    if request["content_type"] is not None:
        headers["Content-Type"] = request["content_type"]
    idem = request["idempotency_key"]
    if idem is not None and idem.isascii() and idem.isprintable():
        headers["Idempotency-Key"] = idem
    connection = http.client.HTTPConnection("127.0.0.1", fuzzed.port, timeout=30)
    try:
        connection.request(request["method"], request["path"], request["body"], headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_no_input_is_answered_with_a_server_error(
    fuzzed: Fuzzed, method: str, template: str
) -> None:
    @PROFILE
    @given(request=requests(method, template))
    def never_5xx(request: dict[str, Any]) -> None:
        status, body = send(fuzzed, request)
        assert status < 500, (status, body[:500])

    never_5xx()


def test_every_route_of_the_router_is_fuzzed() -> None:
    """The routes come from the OpenAPI document: it names every route the router has."""
    from gateway.protocols.api.biller_routes import biller_routes
    from gateway.protocols.api.bulk_routes import bulk_routes
    from gateway.protocols.api.notice_routes import notice_routes
    from gateway.protocols.api.pages import page_routes
    from gateway.protocols.api.payer_routes import payer_routes
    from gateway.protocols.api.payout_routes import payout_routes
    from gateway.protocols.api.recon_routes import recon_routes
    from gateway.protocols.api.routes import api_routes
    from gateway.protocols.api.settlement_routes import settlement_routes
    from gateway.protocols.api.slip_routes import slip_routes
    from gateway.protocols.api.support_routes import support_routes
    from gateway.protocols.api.webhook_routes import webhook_routes

    class Anything:
        public_url = "http://127.0.0.1"

        def __getattr__(self, name: str) -> Any:
            return self

    nothing: Any = Anything()
    routes = api_routes(nothing, nothing, nothing, 100)
    routes += webhook_routes(nothing, 100)
    routes += page_routes(nothing)
    routes += bulk_routes(nothing)
    routes += settlement_routes(nothing, 100)
    routes += biller_routes(nothing, 100)
    routes += support_routes(nothing, nothing, 100)
    routes += notice_routes(nothing, 100)
    routes += payer_routes(nothing)
    routes += payout_routes(nothing)
    routes += recon_routes(nothing)
    routes += slip_routes(nothing)
    assert sorted((r.method.decode(), r.template) for r in routes) == sorted(ROUTES)
