"""The billers' watched folder for bulk bill files: ``<inbox>/<biller_id>/NAME.csv``.

Each biller folder is an :class:`~gateway.protocols.inbox.InboxWatcher` (not started on its own:
this service scans them all on its timer). A file is registered as ``POST /v1/bills/batch``
would register it, for the biller the folder is named after; then ``NAME.result.csv`` (stored:
the issued identifiers) or ``NAME.errors.csv`` (refused, nothing stored: every bad row and field)
is written beside it (temporary name, then rename), and the file moves to ``done/`` or
``rejected/`` with its ``NAME.csv.report.txt``. Only ``*.csv`` names are taken (not the
gateway's own ``.result.csv`` and ``.errors.csv``); hidden names and ``.tmp`` / ``.part`` are left
alone until renamed. A folder that names no biller is ignored, with one log line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, Protocol

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway.protocols.inbox import FileResult, InboxWatcher

log = Logger()

RESULT_SUFFIX = ".result.csv"
ERRORS_SUFFIX = ".errors.csv"


class Outcome(Protocol):
    accepted: bool
    report: str
    output: bytes


def takes(name: str) -> bool:
    """A bulk file: ``*.csv``, but not a file the gateway wrote."""
    lower = name.lower()
    return lower.endswith(".csv") and not lower.endswith((RESULT_SUFFIX, ERRORS_SUFFIX))


def output_name(name: str, accepted: bool) -> str:
    stem = name[: -len(".csv")] if name.lower().endswith(".csv") else name
    return stem + (RESULT_SUFFIX if accepted else ERRORS_SUFFIX)


def write_atomically(path: Path, data: bytes) -> None:
    """The file appears whole or not at all (written as ``.NAME.tmp``, synced, renamed)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


Register = Callable[[str, str, bytes], "Deferred[Any]"]  # (biller_id, name, data) -> Outcome
BillerExists = Callable[[str], "Deferred[bool]"]


class BillInbox(TimerService):
    def __init__(
        self,
        folder: Path,
        register: Register,
        biller_exists: BillerExists,
        clock: IReactorTime,
        interval: float = 5.0,
    ) -> None:
        super().__init__(interval, self.scan)
        self.clock = self.reactor_time = clock
        self.folder = folder
        self.register = register
        self.biller_exists = biller_exists
        self.watchers: dict[str, InboxWatcher] = {}
        self.known: set[str] = set()  # billers are never deleted: asked once
        self.ignored: set[str] = set()  # folders already logged as naming no biller

    def startService(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        super().startService()

    def _watcher(self, biller_id: str, folder: Path) -> InboxWatcher:
        watcher = self.watchers.get(biller_id)
        if watcher is None:

            def handler(name: str, data: bytes) -> Deferred[FileResult]:
                d = self.register(biller_id, name, data)
                return d.addCallback(self._settled, folder, name)

            watcher = InboxWatcher("bills", folder, handler, self.reactor_time, accept=takes)
            self.watchers[biller_id] = watcher
        return watcher

    def _settled(self, outcome: Outcome, folder: Path, name: str) -> FileResult:
        target = folder / output_name(name, outcome.accepted)
        write_atomically(target, outcome.output)
        return FileResult(outcome.accepted, f"{outcome.report}\nwritten: {target.name}")

    @inlineCallbacks
    def scan(self) -> Generator[Deferred[Any], Any, None]:
        """Every biller folder with waiting files, one after another; in each, its files in
        name order. A folder that cannot be read is logged and skipped: a failing scan would
        stop the timer for good."""
        try:
            folders = sorted(
                p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")
            )
        except OSError as e:
            log.error(
                "bills inbox: cannot list {folder}: {error}", folder=str(self.folder), error=e
            )
            return
        for folder in folders:
            biller_id = folder.name
            watcher = self._watcher(biller_id, folder)
            try:
                waiting = watcher.candidates()
            except OSError as e:
                log.error("bills inbox: cannot list {folder}: {error}", folder=str(folder), error=e)
                continue
            if not waiting:
                continue
            if biller_id not in self.known:
                try:
                    exists = yield self.biller_exists(biller_id)
                except Exception as e:  # the store is down: try again at the next scan
                    log.error(
                        "bills inbox: cannot look up biller {biller}: {error}",
                        biller=biller_id,
                        error=e,
                    )
                    return
                if not exists:
                    if biller_id not in self.ignored:
                        self.ignored.add(biller_id)
                        log.warn(
                            "bills inbox: folder {folder} names no biller; its files are ignored",
                            folder=str(folder),
                        )
                    continue
                self.known.add(biller_id)
                self.ignored.discard(biller_id)
            try:
                yield watcher.scan()
            except OSError as e:  # e.g. the file could not be moved: tried again next time
                log.error("bills inbox: {folder}: {error}", folder=str(folder), error=e)
