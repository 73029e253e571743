"""The billers' watched folder for bulk bill files: ``<inbox>/<biller_id>/NAME.csv``.

Each biller folder is an :class:`~gateway.protocols.inbox.InboxWatcher` (not started on its own:
this service scans them all on its timer). A file is registered as ``POST /v1/bills/batch``
would register it, for the biller the folder is named after; then ``NAME.result.csv`` (stored:
the issued identifiers) or ``NAME.errors.csv`` (refused, nothing stored: every bad row and field)
is written beside it (temporary name, then rename), and the file moves to ``done/`` or
``rejected/`` with its ``NAME.csv.report.txt``. Only ``*.csv`` names are taken (not the
gateway's own ``.result.csv`` and ``.errors.csv``); hidden names and ``.tmp`` / ``.part`` are left
alone until renamed. A folder that names no biller is ignored, with one log line.

Nothing is followed through a symbolic link (:mod:`gateway.infra.safe_files`): a biller folder that
is a link is ignored (one log line); in a biller folder a ``*.csv`` entry that is a link, not a
regular file or over :data:`gateway.billing.bulk.MAX_BYTES` is moved to ``rejected/`` unread,
with an
``NAME.errors.csv`` saying why; the answers are written under a random temporary name created
exclusively, then renamed over (a link planted at the answer's name is replaced, not followed).
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

from gateway.infra.safe_files import Refused, write_atomically
from gateway.protocols.inbox import MAX_FILE_BYTES, FileResult, InboxWatcher

log = Logger()

RESULT_SUFFIX = ".result.csv"
ERRORS_SUFFIX = ".errors.csv"


class FileOutcome(Protocol):
    """What the watched folder writes for one file (gateway.billing.bulk.FileOutcome)."""

    @property
    def accepted(self) -> bool: ...
    @property
    def report(self) -> str: ...
    @property
    def output(self) -> bytes: ...


def takes(name: str) -> bool:
    """A bulk file: ``*.csv``, but not a file the gateway wrote."""
    lower = name.lower()
    return lower.endswith(".csv") and not lower.endswith((RESULT_SUFFIX, ERRORS_SUFFIX))


def output_name(name: str, accepted: bool) -> str:
    stem = name[: -len(".csv")] if name.lower().endswith(".csv") else name
    return stem + (RESULT_SUFFIX if accepted else ERRORS_SUFFIX)


Register = Callable[[str, str, bytes], "Deferred[Any]"]  # (biller_id, name, data) -> FileOutcome
BillerExists = Callable[[str], "Deferred[bool]"]
Refuse = Callable[[str, str], FileOutcome]  # (name, why) -> the errors file of an unread entry


class BillInbox(TimerService):
    def __init__(
        self,
        folder: Path,
        register: Register,
        biller_exists: BillerExists,
        clock: IReactorTime,
        interval: float = 5.0,
        *,
        refuse: Refuse | None = None,
        max_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        super().__init__(interval, self.scan)
        self.clock = self.reactor_time = clock
        self.folder = folder
        self.register = register
        self.biller_exists = biller_exists
        self.refuse = refuse
        self.max_bytes = max_bytes
        self.watchers: dict[str, InboxWatcher] = {}
        self.known: set[str] = set()  # billers are never deleted: asked once
        self.ignored: set[str] = set()  # folders already logged as naming no biller
        self.links: set[str] = set()  # symbolic links already logged (never followed)

    def startService(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        super().startService()

    def _watcher(self, biller_id: str, folder: Path) -> InboxWatcher:
        watcher = self.watchers.get(biller_id)
        if watcher is None:

            def handler(name: str, data: bytes) -> Deferred[FileResult]:
                d = self.register(biller_id, name, data)
                return d.addCallback(self._settled, folder, name)

            def refused(name: str, why: Refused) -> str | None:
                if self.refuse is None:
                    return None
                return self._written(folder, name, self.refuse(name, why.detail))

            watcher = InboxWatcher(
                "bills",
                folder,
                handler,
                self.reactor_time,
                accept=takes,
                max_bytes=self.max_bytes,
                follow_folder=False,  # a biller's folder is an entry of the inbox: never a link
                on_refused=refused,
            )
            self.watchers[biller_id] = watcher
        return watcher

    def _settled(self, outcome: FileOutcome, folder: Path, name: str) -> FileResult:
        return FileResult(
            outcome.accepted, f"{outcome.report}\n{self._written(folder, name, outcome)}"
        )

    def _written(self, folder: Path, name: str, outcome: FileOutcome) -> str:
        target = folder / output_name(name, outcome.accepted)
        write_atomically(target, outcome.output, follow_folder=False)
        return f"written: {target.name}"

    @inlineCallbacks
    def scan(self) -> Generator[Deferred[Any], Any, None]:
        """Every biller folder with waiting files, one after another; in each, its files in
        name order. A folder that cannot be read is logged and skipped: a failing scan would
        stop the timer for good."""
        try:
            folders = []
            for entry in sorted(os.scandir(self.folder), key=lambda e: e.name):
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                elif entry.is_symlink() and entry.name not in self.links:
                    self.links.add(entry.name)
                    log.warn(
                        "bills inbox: {name} is a symbolic link, not a folder: ignored",
                        name=entry.path,
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
