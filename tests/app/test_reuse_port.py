"""Several daemons on one host share a listening port (``reuse_port``, SO_REUSEPORT).

Two real daemons (``twistd -n gateway``) on one PostgreSQL bound to the same API port: both
answer, the kernel spreads the connections, and each daemon's own ``/metrics`` counts its share.
Without ``reuse_port`` a daemon cannot take a port another one holds (the "cannot listen" exit).
The two-daemon tests are PostgreSQL's (SQLite has one writer: one daemon per database file).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from gateway.app.process import free_port
from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.infra.listen import listen_reuse_port
from tests.conftest import due, on_postgres
from tests.daemon import Daemon, admin_cli, http, start_daemon, write_config

pytestmark = pytest.mark.e2e

on_postgres_only = pytest.mark.skipif(
    not on_postgres(), reason="several daemons share a PostgreSQL database, not an SQLite file"
)


def test_reuse_port_needs_a_tcp_endpoint() -> None:
    api = {"listen": "unix:/run/gateway/api.sock", "public_url": "https://pay.example.jp"}
    raw = {"api": {**api, "reuse_port": True}, "metrics": {"listen": "tcp:9464"}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, Path("/etc/gateway"))
    assert str(info.value) == (
        "api.reuse_port: needs a tcp: or tcp6: listen endpoint, not 'unix:/run/gateway/api.sock'"
    )
    raw["api"] = {**api, "listen": "tcp:8080:interface=127.0.0.1", "reuse_port": True}
    assert parse_config(raw, Path("/etc/gateway")).api.reuse_port


def test_a_port_shared_with_reuse_port_only() -> None:
    """The socket this module makes: a second one with the option binds the same port; a plain
    socket cannot take it (Twisted's ``failure`` is what ListenerService logs)."""

    class Reactor:
        def adoptStreamPort(self, fd: int, family: int, factory: object) -> socket.socket:
            return socket.socket(fileno=socket.dup(fd))

    port = free_port()
    description = f"tcp:{port}:interface=127.0.0.1"
    got: list[socket.socket] = []
    for _ in range(2):
        listen_reuse_port(Reactor(), description, object()).addCallback(got.append)  # type: ignore[arg-type]
    try:
        assert [s.getsockname() for s in got] == [("127.0.0.1", port)] * 2
        with socket.socket() as plain, pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    finally:
        for s in got:
            s.close()


def onboard(config: Path) -> dict[str, str]:
    admin_cli(config, "biller", "create", "--id", "shared", "--name", "共有", "--kana", "ｷﾖｳﾕｳ")
    key = json.loads(admin_cli(config, "key", "create", "--biller", "shared").stdout)["key"]
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def requests_answered(daemon: Daemon) -> int:
    """What this daemon's /metrics counts of bill creations answered 201."""
    status, text, _ = http("GET", daemon.metrics + "/metrics")
    assert status == 200
    total = 0.0
    for line in str(text).splitlines():
        if line.startswith("gateway_http_requests_total{") and all(
            label in line for label in ('method="POST"', 'status="201"', 'route="/v1/bills"')
        ):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


@pytest.fixture
def two_daemons(tmp_path: Path, database_url: str) -> Iterator[tuple[int, list[Daemon]]]:
    """Two daemons on one database, each with its own config and metrics port, sharing one API
    port with ``reuse_port = true``."""
    port = free_port()
    daemons: list[Daemon] = []
    with ExitStack() as stack:
        for name in ("a", "b"):
            home = tmp_path / name
            home.mkdir()
            config, _, metrics_port = write_config(
                home,
                database_url,
                api=f"tcp:{port}:interface=127.0.0.1",
                api_extra="reuse_port = true",
            )
            if name == "a":
                admin_cli(config, "migrate")
            daemon = start_daemon(config, port, metrics_port)
            stack.callback(daemon.stop)
            daemon.wait("/readyz")
            daemons.append(daemon)
        yield port, daemons
        for daemon in daemons:
            assert daemon.stop() == 0, daemon.output()


@on_postgres_only
def test_two_daemons_answer_on_one_port(two_daemons: tuple[int, list[Daemon]]) -> None:
    port, daemons = two_daemons
    headers = onboard(daemons[0].config)
    made = 60
    for i in range(made):  # a new connection each: the kernel picks a daemon for each
        body = {
            "bill_no": f"R{i:04d}",
            "amount": 1000 + i,
            "due_date": due(20),
            "channels": ["cvs"],
            "customer": {"customer_no": f"C{i}", "name": "山田"},
        }
        status, answer, _ = http("POST", f"http://127.0.0.1:{port}/v1/bills", body, headers)
        assert status == 201, answer
    shares = [requests_answered(d) for d in daemons]
    assert sum(shares) == made
    assert all(share > 0 for share in shares), shares  # 1 chance in 2**59 of a false failure
    # Every bill is there once, whichever daemon took it.
    status, listing, _ = http("GET", f"http://127.0.0.1:{port}/v1/bills?limit=100", None, headers)
    assert status == 200
    assert sorted(b["bill_no"] for b in listing["data"]) == [f"R{i:04d}" for i in range(made)]


@on_postgres_only
def test_without_reuse_port_a_shared_port_cannot_be_taken(
    two_daemons: tuple[int, list[Daemon]], tmp_path: Path, database_url: str
) -> None:
    port, _ = two_daemons
    home = tmp_path / "plain"
    home.mkdir()
    config, _, metrics_port = write_config(
        home, database_url, api=f"tcp:{port}:interface=127.0.0.1"
    )
    daemon = start_daemon(config, port, metrics_port)
    assert daemon.proc is not None
    assert daemon.proc.wait(30) == 1
    assert "api cannot listen" in daemon.output()


def test_reuse_port_cannot_take_a_port_held_without_it(tmp_path: Path, database_url: str) -> None:
    """The option shares a port only with sockets that set it too: a port another program
    holds stays its own, and the daemon exits as with any port in use."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config, _, metrics_port = write_config(
            tmp_path,
            database_url,
            api=f"tcp:{port}:interface=127.0.0.1",
            api_extra="reuse_port = true",
        )
        daemon = start_daemon(config, port, metrics_port)
        assert daemon.proc is not None
        assert daemon.proc.wait(30) == 1
        assert "api cannot listen" in daemon.output()
