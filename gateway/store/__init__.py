"""One Store: synchronous SQLAlchemy Core transactions run on a dedicated thread pool.

Every database access goes through :meth:`Store.run_interaction` (Synapse's pattern): the caller
passes a short ``desc`` (the metric label) and a function ``fn(conn, *args)`` that runs inside
one transaction on a pool thread; the Deferred fires with its result after the commit. A function
that raises rolls the whole transaction back.

SQLite gets one thread (it has one writer anyway) with WAL and ``BEGIN IMMEDIATE``; PostgreSQL
gets ``database.pool_size`` threads and as many connections.

After-commit signals (``gateway.store.signals``): a transaction that raised a topic (the outbox
writer raises ``outbox``) has the Store call that topic's listeners (:meth:`Store.add_listener`)
on the reactor thread once it has committed, before the interaction's own callbacks. On
PostgreSQL the Store also listens on the topic's channel (``gateway.store.listen``), so a commit
of another daemon on the same database wakes the listeners too.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

from prometheus_client import Counter, Histogram
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from gateway.errors import StoreError, StoreStopped
from gateway.store.listen import ChannelListener
from gateway.store.migrate import schema_is_current
from gateway.store.signals import open_signals

P = ParamSpec("P")
R = TypeVar("R")

log = Logger()

INTERACTION_SECONDS = Histogram(
    "gateway_store_interaction_duration_seconds",
    "Time spent in one store interaction (transaction), by description.",
    ["desc"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INTERACTION_ERRORS = Counter(
    "gateway_store_interaction_errors_total",
    "Store interactions that raised (after retries), by description.",
    ["desc"],
)
INTERACTION_RETRIES = Counter(
    "gateway_store_interaction_retries_total",
    "Store interactions retried after a serialization failure, deadlock or busy database.",
    ["desc"],
)

_COUNTED: set[str] = set()  # the descriptions whose error and retry series exist

# PostgreSQL: serialization_failure, deadlock_detected. SQLite: "database is locked".
_RETRYABLE_SQLSTATES = {"40001", "40P01"}
_MAX_ATTEMPTS = 5


def _private_sqlite_file(path: Path) -> None:
    """The database file readable by its owner only: created 0600 (SQLite gives its -wal and
    -shm files the database file's mode), and an existing one of ours made so."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except FileExistsError:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(info.st_mode & 0o700)


def create_db_engine(url: str, pool_size: int = 10) -> Engine:
    """An engine set up for the gateway: durable SQLite (WAL) or pooled PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            _private_sqlite_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" below decide when a transaction starts.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # a committed payment survives a power cut
            cur.execute("PRAGMA foreign_keys=ON")
            # What is deleted or overwritten (purged personal data, a secret replaced by its
            # encrypted form) is zeroed in the file, not left in free space for a copy to read.
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # Take the write lock up front: no deadlock upgrading a read lock later.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        connect_args=_postgresql_connect_args(parsed.query),
    )


# A connection to PostgreSQL that stops answering (a server host gone, a firewall dropping the
# flow) must fail, not hang a store thread forever: libpq gives up connecting after
# connect_timeout seconds, probes an idle connection by TCP keepalive, and drops one whose sent
# data stays unacknowledged for tcp_user_timeout milliseconds. The interaction then fails as on
# any lost connection (docs/testing.md, "Crash points and database faults"), and the pool's
# pre-ping replaces the connection. A URL's own query parameters (?connect_timeout=...) win.
POSTGRESQL_CONNECT_ARGS: Final[Mapping[str, int]] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}


def _postgresql_connect_args(query: Mapping[str, object]) -> dict[str, int]:
    return {k: v for k, v in POSTGRESQL_CONNECT_ARGS.items() if k not in query}


def _retryable(e: DBAPIError) -> bool:
    sqlstate = getattr(e.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    return isinstance(e, OperationalError) and "database is locked" in str(e.orig)


class Store:
    """The one gateway to the database. Start it before use, stop it at shutdown."""

    def __init__(
        self,
        engine: Engine,
        reactor: IReactorThreads,
        threads: int | None = None,
        *,
        pool: ThreadPool | None = None,
        sleep: Callable[[float], None] = time.sleep,
        listen: bool = True,
    ) -> None:
        """``pool`` (a ThreadPool, or a subclass that runs each job as a step of a simulated
        clock), ``sleep`` (the pause before a retry) and ``listen=False`` (no LISTEN thread on
        PostgreSQL: a simulated clock is driven from one thread only) are for the deterministic
        simulation (simulators.world); the daemon leaves them."""
        self.engine = engine
        self.dialect = engine.dialect.name
        self._reactor = reactor
        if threads is None:
            threads = 1 if self.dialect == "sqlite" else engine.pool.size()  # type: ignore[attr-defined]
        self._pool = (
            ThreadPool(minthreads=1, maxthreads=threads, name="gateway-store")
            if pool is None
            else pool
        )
        self._sleep = sleep
        self.running = False
        self.stopped = False  # stop() was called: the daemon is shutting down
        # After-commit signals: this Store's token (the NOTIFY payload its transactions send),
        # the listeners by topic, and on PostgreSQL one LISTEN connection per topic listened to.
        self.token = secrets.token_hex(8)
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._channels: dict[str, ChannelListener] = {}
        self._listen = listen

    @classmethod
    def from_url(cls, url: str, reactor: IReactorThreads, pool_size: int = 10) -> Store:
        return cls(create_db_engine(url, pool_size), reactor)

    def start(self) -> None:
        if not self.running:
            self._pool.start()
            self.running = True

    def stop(self) -> None:
        """Wait for interactions in flight to finish, then close every connection."""
        channels, self._channels = list(self._channels.values()), {}
        for listening in channels:
            listening.stop()
        if self.running:
            self.running = False
            self.stopped = True
            self._pool.stop()
        for listening in channels:
            listening.join()
        self.engine.dispose()

    # -- after-commit signals --------------------------------------------------------------------

    def add_listener(self, topic: str, fn: Callable[[], None]) -> None:
        """Call ``fn()`` on the reactor thread after each committed transaction of this Store that
        raised ``topic`` (several commits may be folded into one call: ``fn`` reads what is new
        itself), and on PostgreSQL after another process's commit that raised it. A hint, not a
        record: a listener polls as well. Call from the reactor thread."""
        self._listeners.setdefault(topic, []).append(fn)
        if self._listen and self.dialect == "postgresql" and topic not in self._channels:
            listening = ChannelListener(
                self.engine,
                self._reactor,
                topic,
                self.token,
                lambda: self._signal({topic}),
                _postgresql_connect_args(self.engine.url.query),
            )
            self._channels[topic] = listening
            listening.start()

    def remove_listener(self, topic: str, fn: Callable[[], None]) -> None:
        """Stop calling ``fn`` (the LISTEN connection closes with the topic's last listener)."""
        listeners = self._listeners.get(topic, [])
        if fn in listeners:
            listeners.remove(fn)
        if not listeners:
            self._listeners.pop(topic, None)
            listening = self._channels.pop(topic, None)
            if listening is not None:
                listening.stop()  # the thread ends by itself within a moment

    def _signal(self, topics: set[str]) -> None:
        for topic in topics:
            for fn in list(self._listeners.get(topic, ())):
                try:
                    fn()
                except Exception:
                    log.failure("a listener of {topic} failed", topic=topic)

    def run_interaction(
        self,
        desc: str,
        fn: Callable[Concatenate[Connection, P], R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Deferred[R]:
        """Run ``fn(conn, *args, **kwargs)`` in one transaction on the store's thread pool."""
        if not self.running:
            if self.stopped:
                raise StoreStopped("the store is not running: it was stopped")
            raise StoreError("the store is not running")
        d: Deferred[tuple[R, set[str]]] = deferToThreadPool(
            self._reactor,
            self._pool,
            self._run,  # type: ignore[arg-type]
            desc,
            fn,
            *args,
            **kwargs,
        )
        return d.addCallback(self._committed)

    def _committed(self, done: tuple[R, set[str]]) -> R:
        result, topics = done
        if topics:
            self._signal(topics)
        return result

    def _run(
        self, desc: str, fn: Callable[..., R], *args: Any, **kwargs: Any
    ) -> tuple[R, set[str]]:
        """``fn`` in a transaction, retried when the database says so; its result, and the
        signals it raised (told once it has committed)."""
        started = time.perf_counter()
        if desc not in _COUNTED:  # its error and retry series from its first run, at 0, so that
            _COUNTED.add(desc)  # an alert on increase() sees the first error
            INTERACTION_ERRORS.labels(desc)
            INTERACTION_RETRIES.labels(desc)
        try:
            for attempt in range(1, _MAX_ATTEMPTS + 1):
                try:
                    with self.engine.begin() as conn:
                        raised = open_signals(conn, self.token)
                        try:
                            result = fn(conn, *args, **kwargs)
                        finally:
                            raised.close()
                    return result, raised.topics
                except DBAPIError as e:
                    if attempt == _MAX_ATTEMPTS or not _retryable(e):
                        raise
                    INTERACTION_RETRIES.labels(desc).inc()
                    self._sleep(0.005 * 2**attempt)
            raise AssertionError("unreachable")
        except Exception:
            INTERACTION_ERRORS.labels(desc).inc()
            raise
        finally:
            INTERACTION_SECONDS.labels(desc).observe(time.perf_counter() - started)

    def ping(self) -> Deferred[bool]:
        """True when the database answers and the schema is at the newest migration."""

        return self.run_interaction("store.ping", schema_is_current)


def ping_sql(conn: Connection) -> None:
    conn.execute(text("SELECT 1"))
