"""Crash points: a test-only switch that kills the daemon at a chosen place of its commit path.

:func:`crash_point` does nothing unless the environment variable ``GATEWAY_TEST_CRASH_AT``
(read once, when this module is imported) names the point: ``cvs.after_commit`` kills the
process at its first pass, ``cvs.after_commit:37`` at its 37th; several points may be armed,
separated by commas. The kill is ``SIGKILL`` sent to the process itself: no ``finally``, no
shutdown, no flush of what is buffered, as when the OOM killer or a power cut takes it.

It exists so that a test can kill the real daemon (a ``twistd`` subprocess) exactly in the few
milliseconds between a commit and its ack, which a kill from outside hits only by luck
(tests/test_crash_points.py, docs/testing.md "Crash points"). No configuration file sets it and
an operator has no use for it. A name that is not in :data:`POINTS` or a count that is not a
positive integer stops the import with a ``ValueError``: a misspelt point would otherwise
never fire and the test using it would prove nothing.

The points:

- ``ingest.before_commit``: a link's group commit (``gateway.store.group.GroupCommitter``, as
  gateway.ingest sets it up) has made every write of its group; the COMMIT is not sent yet.
- ``cvs.after_commit``: a 速報 of the CVS link is committed (``gateway.networks.cvs``); its
  ``AK 00`` is not written yet.
- ``payout.after_file``: a payout file (総合振込) is in the outbox (``gateway.money.payouts``);
  the transaction that marks it written is not committed (tests/test_payout_crash.py).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Final

__all__ = ["ENV", "POINTS", "arm", "crash_point", "parse"]

ENV: Final = "GATEWAY_TEST_CRASH_AT"
POINTS: Final = frozenset({"ingest.before_commit", "cvs.after_commit", "payout.after_file"})


def parse(spec: str) -> dict[str, int]:
    """``"a.b:3,c.d"`` -> ``{"a.b": 3, "c.d": 1}``: each point and the pass that kills."""
    armed: dict[str, int] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, count = item.partition(":")
        if name not in POINTS:
            raise ValueError(f"{ENV}: unknown crash point {name!r}; known: {sorted(POINTS)}")
        if count and not (count.isdigit() and int(count) >= 1):
            raise ValueError(f"{ENV}: {item!r}: the count must be a positive integer")
        armed[name] = int(count) if count else 1
    return armed


def _sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


_armed: dict[str, int] = parse(os.environ.get(ENV, ""))
_passes: dict[str, int] = {}
_lock = threading.Lock()
_kill: Callable[[], None] = _sigkill


def arm(spec: str, kill: Callable[[], None] = _sigkill) -> None:
    """Arm the points of ``spec`` in this process (counts start again from zero); ``kill``
    replaces the SIGKILL (for a test of this module). ``arm("")`` disarms every point."""
    global _armed, _kill
    armed = parse(spec)
    with _lock:
        _armed, _kill = armed, kill
        _passes.clear()


def crash_point(name: str) -> None:
    """Kill the process here if ``name`` is armed and this is the pass it is armed for."""
    if not _armed:  # the daemon's case: one dict test per call
        return
    with _lock:
        at = _armed.get(name)
        if at is None:
            return
        passes = _passes[name] = _passes.get(name, 0) + 1
        if passes != at:
            return
    sys.stderr.write(f"crash point {name}: pass {passes}, killing the process ({ENV})\n")
    sys.stderr.flush()
    _kill()
