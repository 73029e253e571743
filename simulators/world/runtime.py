"""One thread, one simulated clock: the deterministic reactor the gateway runs on.

:class:`Sim` holds the one ``task.Clock`` every party shares: the gateway, the simulated
networks and the wires between them. Calls due at the same instant run in the order they were
scheduled, so a run is a pure function of its seed.

:class:`Process` is one life of the gateway process: an ``IReactorTime`` (and the
``callFromThread`` of ``IReactorThreads``) over the shared clock that remembers every call it
scheduled, so that :meth:`Process.kill` can drop them all at once — a crash: no timer of the
dead process fires again, no result of its store reaches its Deferreds.

:class:`SimPool` is the store's thread pool (``gateway.store.Store(pool=...)``): each job runs as
one step of the clock, a seed-drawn moment after it was queued, and its result reaches the
reactor (``callFromThread``) a seed-drawn moment after that. A transaction is atomic in this
world (one step), so a crash falls before a job, or between its commit and the reactor
learning of it — the two places that matter.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any

from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from simulators.world.trace import Trace


@implementer(IReactorTime)
class HeapClock:
    """``task.Clock`` on a heap: the same calls in the same order (by time, then in the order
    they were scheduled), without sorting the whole list at every call."""

    def __init__(self, start: float = 0.0) -> None:
        self.rightNow = start
        self._heap: list[tuple[float, int, DelayedCall]] = []
        self._seq = 0

    def seconds(self) -> float:
        return self.rightNow

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> IDelayedCall:
        call = DelayedCall(
            self.rightNow + delay, callable, args, kw, self._cancelled, self._push, self.seconds
        )
        self._push(call)
        return call

    def _push(self, call: DelayedCall) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (call.getTime(), self._seq, call))

    def _cancelled(self, call: DelayedCall) -> None:
        pass  # left in the heap, skipped when it comes up

    def getDelayedCalls(self) -> list[IDelayedCall]:
        return [c for _, _, c in self._heap if c.active()]

    def next_time(self) -> float | None:
        heap = self._heap
        while heap:
            when, _, call = heap[0]
            if call.cancelled or call.called or call.getTime() != when:
                heapq.heappop(heap)
                continue
            return when
        return None

    def advance(self, amount: float) -> None:
        """Move time on by ``amount`` and run every call due by then (at the new time)."""
        self.rightNow += amount
        heap = self._heap
        while heap and heap[0][0] <= self.rightNow:
            when, _, call = heapq.heappop(heap)
            if call.cancelled or call.called or call.getTime() != when:
                continue
            call.called = 1
            call.func(*call.args, **call.kw)


class Sim:
    """The shared clock and the run's trace."""

    def __init__(self, start: float, trace: Trace) -> None:
        self.clock = HeapClock(start)
        self.trace = trace

    def seconds(self) -> float:
        return self.clock.seconds()

    def call_later(
        self, delay: float, f: Callable[..., object], *a: Any, **kw: Any
    ) -> IDelayedCall:
        return self.clock.callLater(max(0.0, delay), f, *a, **kw)

    def run_until(self, when: float) -> None:
        """Run every call due up to ``when``, each at its own time; the clock then reads
        ``when``."""
        clock = self.clock
        while (due := clock.next_time()) is not None and due <= when:
            clock.advance(max(0.0, due - clock.seconds()))
        if when > clock.seconds():
            clock.advance(when - clock.seconds())

    def jump(self, seconds: float) -> None:
        """The clock jumps: every call due meanwhile runs at once, late (at the new time)."""
        self.clock.advance(seconds)


class _DeadCall:
    """What a dead process gets for a callLater: a call that never runs."""

    def __init__(self, when: float) -> None:
        self.when = when

    def getTime(self) -> float:
        return self.when

    def cancel(self) -> None:
        pass

    def delay(self, secondsLater: float) -> None:
        pass

    def reset(self, secondsFromNow: float) -> None:
        pass

    def active(self) -> bool:
        return False


@implementer(IReactorTime)
class Process:
    """One life of the gateway process on the shared clock (``IReactorTime``, and
    ``callFromThread`` for ``deferToThreadPool``)."""

    def __init__(self, sim: Sim, life: int, rng: random.Random) -> None:
        self.sim = sim
        self.life = life
        self.rng = rng
        self.alive = True
        self._calls: list[IDelayedCall] = []

    # IReactorTime

    def seconds(self) -> float:
        return self.sim.seconds()

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: object, **kwargs: object
    ) -> IDelayedCall:
        if not self.alive:
            return _DeadCall(self.seconds() + delay)  # type: ignore[return-value]
        call = self.sim.call_later(delay, callable, *args, **kwargs)
        self._calls.append(call)
        if len(self._calls) > 256:
            self._calls = [c for c in self._calls if c.active()]
        return call

    def getDelayedCalls(self) -> list[IDelayedCall]:
        return [c for c in self._calls if c.active()]

    # IReactorThreads, as deferToThreadPool uses it

    def callFromThread(self, f: Callable[..., object], *a: Any, **kw: Any) -> None:
        self.callLater(self.rng.choice((0.0, 0.0, 0.0005, 0.002)), f, *a, **kw)

    def kill(self) -> None:
        """The process dies: none of its scheduled calls will run."""
        self.alive = False
        for call in self._calls:
            if call.active():
                call.cancel()
        self._calls = []


Hook = Callable[[str, str], bool]  # (desc, stage "before"/"after") -> crash now?


class SimPool(ThreadPool):
    """The store's "thread pool": every job is a step of the shared clock.

    ``hook(desc, stage)`` is asked before a job runs and after it has run (committed or not);
    when it answers True the process has been killed at that point and the job (or the delivery
    of its result) is dropped.
    """

    def __init__(self, process: Process, hook: Hook | None = None) -> None:
        super().__init__(0, 1, name="sim-store")
        self.process = process
        self.hook = hook
        self.jobs = 0

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, Any], object] | None,
        func: Callable[..., Any],
        *args: Any,
        **kw: Any,
    ) -> None:
        delay = self.process.rng.choice((0.0, 0.0005, 0.001, 0.003))
        self.process.callLater(delay, self._job, onResult, func, args, kw)

    def _job(
        self,
        onResult: Callable[[bool, Any], object] | None,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kw: dict[str, Any],
    ) -> None:
        desc = str(args[0]) if args else getattr(func, "__name__", "?")
        if self.hook is not None and self.hook(desc, "before"):
            return
        self.jobs += 1
        try:
            result: Any = func(*args, **kw)
            ok = True
        except BaseException:
            result, ok = Failure(), False
        if self.hook is not None and self.hook(desc, "after"):
            return
        if onResult is not None and self.process.alive:
            onResult(ok, result)


__all__ = ["DelayedCall", "Process", "Sim", "SimPool"]
