"""A PostgreSQL server that stops answering makes the store fail, not hang.

``create_db_engine`` gives every PostgreSQL connection a connect timeout, TCP keepalives and a
TCP user timeout (``gateway.store.POSTGRESQL_CONNECT_ARGS``). The first test needs no server:
a listening socket that never answers (the kernel completes the handshake, nobody reads) stands
for a server host that hangs, and connecting to it fails within its timeout. The second checks,
on the suite's PostgreSQL, that libpq took the settings for the connections the daemon uses.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError

from gateway.store import POSTGRESQL_CONNECT_ARGS, create_db_engine
from tests.conftest import on_postgres


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections into its backlog and never says a word."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_connecting_to_a_server_that_never_answers_fails_within_the_timeout(
    silent_server: int,
) -> None:
    engine = create_db_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/test?connect_timeout=2",
        pool_size=1,
    )
    started = time.monotonic()
    with pytest.raises(OperationalError, match="timeout"):
        engine.connect()
    # The bound, not a timing figure: without a connect timeout this call never returns.
    assert time.monotonic() - started < 30
    engine.dispose()


@pytest.mark.skipif(
    not on_postgres(), reason="PostgreSQL only (GATEWAY_TEST_DATABASE_URL); .ci/run runs it"
)
def test_every_postgresql_connection_carries_the_timeouts_and_keepalives(database_url: str) -> None:
    engine = create_db_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            parameters = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
            fd = conn.connection.dbapi_connection.pgconn.socket  # type: ignore[union-attr]
            sock = socket.socket(fileno=socket.dup(fd))
            try:
                keepalive = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
                user_timeout = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
            finally:
                sock.close()
    finally:
        engine.dispose()
    for name, value in POSTGRESQL_CONNECT_ARGS.items():
        assert parameters[name] == str(value), name
    assert keepalive == 1
    assert user_timeout == POSTGRESQL_CONNECT_ARGS["tcp_user_timeout"]
