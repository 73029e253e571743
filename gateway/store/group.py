"""Group commit: everything submitted while one transaction runs goes into the next one.

A link of a network (gateway.ingest) and the merchant API's bill creation
(gateway.billing.bills) submit their items here, so that a burst shares one transaction and one
commit (one fsync) instead of paying one each. Each item keeps its own outcome: a bad item
fails alone (it is rolled back to its savepoint), the others are committed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.infra.crashpoints import crash_point
from gateway.store import Store, _retryable

__all__ = ["GroupCommitter"]

T = TypeVar("T")
R = TypeVar("R")

log = Logger()


class GroupCommitter(Generic[T, R]):
    """Commits items in groups: everything submitted while one group's transaction runs goes
    into the next transaction.

    With ``apply(conn, items)`` a whole group is handled at once; if it raises, the group is
    rolled back to a savepoint and applied again one item at a time, each in its own savepoint,
    so one bad item does not take the others down. With ``apply_one(conn, item)`` every item
    runs in its own savepoint from the start (for items whose refusal is an ordinary outcome,
    as a merchant's request). If the commit itself fails, or the connection is lost, every item
    of the group fails; an error the database asks to retry (deadlock, serialization failure)
    in an item runs the whole group again (gateway.store.Store._run).

    ``observe`` is given each group's size (a metric); ``finish(conn)`` runs once the items
    are applied, in the group's transaction (writes shared by the group, as the outbox events
    of bill creations: one lock of the biller row per group, held only up to the commit);
    ``before_commit`` names the crash point (gateway.infra.crashpoints) passed when the group
    is written and its COMMIT not yet sent. ``concurrency``: how many groups may run at once
    (1: the next group gathers while one commits; more on PostgreSQL, where a group's time is
    mostly round trips to the server and the store has several connections)."""

    def __init__(
        self,
        store: Store,
        desc: str,
        apply: Callable[[Connection, list[T]], list[R]] | None = None,
        max_group: int = 1000,
        *,
        apply_one: Callable[[Connection, T], R] | None = None,
        observe: Callable[[int], object] | None = None,
        before_commit: str | None = None,
        finish: Callable[[Connection], object] | None = None,
        concurrency: int = 1,
    ) -> None:
        if (apply is None) == (apply_one is None):
            raise TypeError("GroupCommitter needs exactly one of apply and apply_one")
        self.store = store
        self.desc = desc
        self.apply = apply
        self.apply_one = apply_one
        self.max_group = max_group
        self.observe = observe
        self.before_commit = before_commit
        self.finish = finish
        self.concurrency = concurrency
        self._queue: list[tuple[T, Deferred[R]]] = []
        self._running = 0  # groups whose transaction runs

    def submit(self, item: T) -> Deferred[R]:
        d: Deferred[R] = Deferred()
        self._queue.append((item, d))
        self._kick()
        return d

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _kick(self) -> None:
        while self._running < self.concurrency and self._queue:
            self._start()

    def _start(self) -> None:
        group, self._queue = self._queue[: self.max_group], self._queue[self.max_group :]
        self._running += 1
        if self.observe is not None:
            self.observe(len(group))
        items = [item for item, _ in group]

        def done(results: list[R | Failure]) -> None:
            for (_, d), result in zip(group, results, strict=True):
                if isinstance(result, Failure):
                    d.errback(result)
                else:
                    d.callback(result)

        def failed(failure: Failure) -> None:
            log.failure(
                "{desc}: a group of {n} could not be committed",
                failure,
                desc=self.desc,
                n=len(group),
            )
            for _, d in group:
                d.errback(failure)

        def next_group(_: object) -> None:
            self._running -= 1
            self._kick()

        try:
            d = self.store.run_interaction(self.desc, self._run_group, items)
        except Exception:
            failed(Failure())
            self._running -= 1  # the caller's loop goes on with what is left
            return
        d.addCallbacks(done, failed)
        d.addBoth(next_group)

    def _run_group(self, conn: Connection, items: list[T]) -> list[R | Failure]:
        if self.apply is not None:
            whole = conn.begin_nested()
            try:
                results = self.apply(conn, items)
            except Exception:
                if conn.invalidated:  # the connection is lost, and the transaction with it: no
                    raise  # item can be applied on it; the whole group fails with the cause
                whole.rollback()
            else:
                whole.commit()
                self._finish(conn)
                return list(results)
        one_by_one: list[R | Failure] = []
        for item in items:
            savepoint = conn.begin_nested()
            try:
                result = self._apply_one(conn, item)
            except Exception as e:
                if conn.invalidated or (isinstance(e, DBAPIError) and _retryable(e)):
                    # the connection is lost, or the database asks for the transaction again
                    # (a deadlock, a serialization failure): the whole group fails or is
                    # retried (Store._run), not this item alone
                    raise
                savepoint.rollback()
                one_by_one.append(Failure())
            else:
                savepoint.commit()
                one_by_one.append(result)
        self._finish(conn)
        return one_by_one

    def _apply_one(self, conn: Connection, item: T) -> R:
        if self.apply_one is not None:
            return self.apply_one(conn, item)
        assert self.apply is not None
        (result,) = self.apply(conn, [item])
        return result

    def _finish(self, conn: Connection) -> None:
        if self.finish is not None:
            self.finish(conn)  # raising, it fails (or retries) the whole group
        if self.before_commit is not None:
            crash_point(self.before_commit)  # a test-only switch: does nothing in production
