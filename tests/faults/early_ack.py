"""``python -m tests.faults.early_ack TWISTD-ARGS``: the daemon with a deliberate bug, for the
mutation check of tests/test_crash_points.py.

The bug: the CVS link answers ``AK 00`` as soon as a 速報 is read, and the record is committed
:data:`DELAY` seconds later (acks written before the commit). Everything else is the real
daemon, started as ``twistd`` would start it. A crash point between the ack and the commit
(``ingest.before_commit``) must then lose acknowledged records, and the crash test must say so
every time. Nothing of the gateway itself knows this module.
"""

from __future__ import annotations

import sys
from typing import Final

from twisted.internet.defer import Deferred, succeed
from twisted.scripts.twistd import run

from gateway.networks.cvs import CvsNetwork

DELAY: Final = 0.2  # seconds between the ack and the commit: the agency has read the ack by then

_commit = CvsNetwork.submit


def _ack_first(self: CvsNetwork, record: bytes, source: str) -> Deferred[str]:
    self.reactor.callLater(DELAY, _commit, self, record, source)
    return succeed("00")


def main() -> None:
    CvsNetwork.submit = _ack_first  # type: ignore[method-assign]
    sys.argv = ["twistd", *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()
