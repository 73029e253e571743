"""What the periodic jobs (expiry, settlement, retention) share: one scheduled run whose
failure is logged and counted instead of stopping the timer, and the timer itself."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from prometheus_client import Counter
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway.errors import StoreStopped

T = TypeVar("T")
log = Logger()


def logged_run(
    run: Coroutine[Any, Any, T], failures: Counter, what: str, failed_result: T
) -> tuple[Deferred[T], Deferred[T]]:
    """Start ``run``: (the Deferred the timer waits on, a Deferred of its own result).

    A failure is logged as "``what`` failed; the next run tries again", counted in
    ``failures`` and gives ``failed_result``: a TimerService stops for good on a failure. The
    second Deferred fires with the same result for whoever watches (tests); the timer consumes
    the first one's.
    """

    def failed(failure: Any) -> T:
        if failure.check(StoreStopped):  # the daemon is stopping: the next life runs it again
            log.info("{what} stopped with the store; the next run tries again", what=what)
            return failed_result
        failures.inc()
        log.failure("{what} failed; the next run tries again", failure, what=what)
        return failed_result

    d = Deferred.fromCoroutine(run)
    d.addErrback(failed)
    watched: Deferred[T] = Deferred()

    def done(result: T) -> T:
        watched.callback(result)
        return result

    d.addCallback(done)
    return d, watched


def timer(name: str, interval: float, tick: Callable[[], Any], clock: IReactorTime) -> TimerService:
    """Runs ``tick`` now and then every ``interval`` seconds on ``clock``."""
    service = TimerService(interval, tick)
    service.clock = clock
    service.setName(name)
    return service
