"""What every simulator command shares: run on the reactor, print a JSON summary, exit."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater, react


def run_command(
    name: str,
    run: Callable[[Any], Awaitable[dict[str, Any]]],
    failed: Callable[[dict[str, Any]], bool] = lambda summary: False,
) -> None:
    """``run(reactor)`` on the reactor; print its summary as one JSON line and exit 0, or exit 1
    with a one-line reason when it raises or ``failed(summary)`` says so."""

    async def _main(reactor: Any) -> None:
        # ``react`` calls this before the reactor runs, i.e. before it installs its SIGTERM and
        # SIGINT handlers: work done now (a simulator answering a file at once) could be seen,
        # and the process signalled, while a signal still kills it without its summary.
        await deferLater(reactor, 0, lambda: None)
        try:
            summary = await run(reactor)
        except Exception as e:
            print(f"{name}: {type(e).__name__}: {e}", file=sys.stderr)
            raise SystemExit(1) from None
        print(json.dumps(summary, ensure_ascii=False, sort_keys=True))
        if failed(summary):
            raise SystemExit(1)

    react(lambda reactor: Deferred.fromCoroutine(_main(reactor)))
