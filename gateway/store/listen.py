"""A PostgreSQL ``LISTEN`` connection in a thread of its own: the other daemons' commits.

One :class:`ChannelListener` per topic a Store's listeners wait for (``gateway.store.signals``).
It holds a connection of its own (not one of the pool's: it is idle for as long as nothing is
written), in autocommit, runs ``LISTEN gateway_<topic>`` and waits with psycopg's
``notifies()``. Rules:

- Each notification whose payload is not this Store's token (the Store has told its own
  listeners already) wakes the listeners on the reactor thread; notifications that arrive
  while a wake is still queued there are folded into it.
- After every (re)connection the listeners are woken once: whatever was committed while no
  connection listened is read as if a notification had come.
- A lost connection (the server restarted, the network cut: the pool's keepalive and
  ``tcp_user_timeout`` settings apply here too) is logged and opened again after 0.5 s, then
  doubling up to 30 s; the listeners' own polls cover the gap.
- :meth:`ChannelListener.stop` lets the thread end within ``WAIT`` seconds; :meth:`join` waits
  for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger

from gateway.store.signals import channel

log = Logger()

WAIT = 0.5  # seconds between two looks at the stop flag while no notification comes
RETRY_FIRST = 0.5
RETRY_MAX = 30.0


def _reason(e: Exception) -> str:
    """The error's type and first line (libpq names the host and port, never a password)."""
    first = str(e).strip().splitlines()[:1]
    return f"{type(e).__name__}: {first[0][:200]}" if first else type(e).__name__


class ChannelListener:
    def __init__(
        self,
        engine: Engine,
        reactor: IReactorThreads,
        topic: str,
        token: str,
        wake: Callable[[], None],
        connect_args: dict[str, Any],
    ) -> None:
        self.engine = engine
        self.reactor = reactor
        self.topic = topic
        self.token = token
        self.wake = wake
        self.connect_args = connect_args
        self.connected = threading.Event()  # set while LISTEN is in force (for tests, health)
        self._stopping = threading.Event()
        self._queued = False  # a wake is waiting on the reactor thread
        self._thread = threading.Thread(
            target=self._run, name=f"gateway-listen-{topic}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    # -- the thread ------------------------------------------------------------------------------

    def _connect(self) -> Any:
        cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
        # Named in pg_stat_activity (unless the URL names its connections itself).
        named = {"application_name": f"gateway listen {self.topic}"}
        conn = self.engine.dialect.loaded_dbapi.connect(
            *cargs, **{**self.connect_args, **named, **cparams}, autocommit=True
        )
        try:
            conn.execute(f'LISTEN "{channel(self.topic)}"')
        except Exception:
            conn.close()
            raise
        return conn

    def _run(self) -> None:
        delay = RETRY_FIRST
        while not self._stopping.is_set():
            try:
                conn = self._connect()
            except Exception as e:
                log.warn(
                    "cannot LISTEN for {topic}: {error}; trying again in {delay}s",
                    topic=self.topic,
                    error=_reason(e),
                    delay=delay,
                )
                self._stopping.wait(delay)
                delay = min(RETRY_MAX, delay * 2)
                continue
            delay = RETRY_FIRST
            self.connected.set()
            self._queue_wake()  # what was committed while nobody listened
            try:
                while not self._stopping.is_set():
                    for note in conn.notifies(timeout=WAIT):
                        if note.payload != self.token:
                            self._queue_wake()
            except Exception as e:
                if not self._stopping.is_set():
                    log.warn(
                        "lost the LISTEN connection for {topic}: {error}; opening another",
                        topic=self.topic,
                        error=_reason(e),
                    )
            finally:
                self.connected.clear()
                try:
                    conn.close()
                except Exception:  # already broken
                    pass

    def _queue_wake(self) -> None:
        if self._queued:
            return
        self._queued = True
        self.reactor.callFromThread(self._fire)

    def _fire(self) -> None:
        self._queued = False
        if not self._stopping.is_set():
            self.wake()
