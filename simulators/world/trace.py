"""A readable trace of one seed: every step of the workload, every fault, every crash.

Each line is ``+SECONDS  JST-TIME  WHO  WHAT``: the simulated seconds since the start, the
simulated wall time in Japan, who acted (``world``, ``agency``, ``center``, ``bank``,
``gateway#N`` for the N-th life of the process, ``fault``, ``check``) and what happened. Kept in
memory; written out for a failing seed or when ``--trace`` asks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from gateway.model import JST


class Trace:
    def __init__(self, start: float, keep: bool = True, limit: int = 200_000) -> None:
        self.start = start
        self.keep = keep
        self.limit = limit
        self.lines: list[str] = []
        self.clock: Callable[[], float] = lambda: start
        self.dropped = 0

    def __call__(self, who: str, what: str) -> None:
        if not self.keep:
            return
        if len(self.lines) >= self.limit:
            self.dropped += 1
            return
        now = self.clock()
        at = datetime.fromtimestamp(now, JST).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        self.lines.append(f"+{now - self.start:12.3f}  {at}  {who:<10} {what}")

    def text(self) -> str:
        tail = [f"... {self.dropped} more lines not kept"] if self.dropped else []
        return "\n".join([*self.lines, *tail]) + "\n"

    def write(self, path: Path) -> None:
        path.write_text(self.text(), encoding="utf-8")
