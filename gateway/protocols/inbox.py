"""A watched folder: files dropped by a network peer are handed over one at a time.

Each file is read whole and given to ``handler(name, data)``; when the handler's Deferred fires,
the file moves to ``done/`` (accepted) or ``rejected/`` (refused), with ``NAME.report.txt``
beside it saying what happened. Hidden files and names ending in ``.tmp`` or ``.part`` are left
alone (peers should upload under such a name and rename when complete). Nothing here knows the
file's format or the store. Polling runs on the injected clock.

Anyone who can write to the folder is not trusted with what else the daemon can read or write
(:mod:`gateway.infra.safe_files`): an entry that is a symbolic link, not a regular file (a FIFO, a
directory, a device) or over ``max_bytes`` is not read; it moves to ``rejected/`` as it is (a
link stays a link), with a report saying what it was, and is counted in
``gateway_inbox_refused_files_total``. ``done/`` and ``rejected/`` are never followed if they
are links (such a link is renamed aside, hidden, and a real folder made).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Counter
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from gateway.infra import safe_files
from gateway.infra.safe_files import Refused

log = Logger()

MAX_FILE_BYTES = 64 * 1024 * 1024  # a larger entry is refused unread (its size, from fstat)
REPORT_SUFFIX = ".report.txt"
OWN_FOLDERS = ("done", "rejected")

FILES = Counter(
    "gateway_inbox_files_total",
    "Files taken from a watched folder, by network and result (done, rejected).",
    ["network", "result"],
)
REFUSED = Counter(
    "gateway_inbox_refused_files_total",
    "Entries of a watched folder set aside unread, by network and reason"
    " (symlink, not_regular, too_large).",
    ["network", "reason"],
)


@dataclass(frozen=True)
class FileResult:
    accepted: bool
    report: str


Handler = Callable[[str, bytes], Deferred[FileResult]]
OnRefused = Callable[[str, Refused], "str | None"]  # (name, why) -> a line for the report


def _settle(dir_fd: int, name: str, result: FileResult) -> str:
    """Move ``name`` into done/ or rejected/ beside its report; its path there."""
    sub = "done" if result.accepted else "rejected"
    sub_fd = safe_files.subfolder(dir_fd, sub)
    try:
        target = safe_files.free_name(sub_fd, name, (REPORT_SUFFIX,))
        report = (result.report.rstrip("\n") + "\n").encode("utf-8")
        safe_files.write_at(sub_fd, target + REPORT_SUFFIX, report)
        safe_files.move(dir_fd, name, sub_fd, target)
    finally:
        os.close(sub_fd)
    return f"{sub}/{target}"


class InboxWatcher(TimerService):
    def __init__(
        self,
        network: str,
        folder: Path,
        handler: Handler,
        clock: IReactorTime,
        interval: float = 5.0,
        accept: Callable[[str], bool] | None = None,
        *,
        max_bytes: int = MAX_FILE_BYTES,
        follow_folder: bool = True,
        on_refused: OnRefused | None = None,
    ) -> None:
        super().__init__(interval, self.scan)
        self.clock = clock
        self.network = network
        self.folder = folder
        self.handler = handler
        self.accept = accept  # which names to take, besides the rules above (None: all)
        self.max_bytes = max_bytes
        # False: the folder is itself an entry of a watched folder (a biller's): never a link.
        self.follow_folder = follow_folder
        self.on_refused = on_refused
        # Every series from the start, so that an alert on increase() sees the first rejection.
        for result in ("done", "rejected"):
            FILES.labels(network, result)
        for reason in ("symlink", "not_regular", "too_large"):
            REFUSED.labels(network, reason)

    def startService(self) -> None:
        if self.follow_folder:
            self.folder.mkdir(parents=True, exist_ok=True)
        super().startService()

    def _takes(self, name: str) -> bool:
        return (
            not name.startswith(".")
            and name not in OWN_FOLDERS
            and not name.endswith((".tmp", ".part", REPORT_SUFFIX))
            and (self.accept is None or self.accept(name))
        )

    def _names(self, dir_fd: int) -> list[str]:
        """The entries to take, whatever they are (what is not a regular file is refused)."""
        with os.scandir(dir_fd) as entries:
            return sorted(e.name for e in entries if self._takes(e.name))

    def candidates(self) -> list[Path]:
        dir_fd = safe_files.open_folder(self.folder, follow=self.follow_folder)
        try:
            return [self.folder / name for name in self._names(dir_fd)]
        finally:
            os.close(dir_fd)

    @inlineCallbacks
    def scan(self) -> Generator[Deferred[FileResult], FileResult, None]:
        """Take every waiting file, one after another (files apply in name order). A folder
        that cannot be read or an entry that cannot be moved is logged and tried again at the
        next scan: a failing scan would stop the timer for good."""
        try:
            dir_fd = safe_files.open_folder(self.folder, follow=self.follow_folder)
        except OSError as e:
            log.error(
                "{network} inbox: cannot open {folder}: {error}",
                network=self.network,
                folder=str(self.folder),
                error=e,
            )
            return
        try:
            for name in self._names(dir_fd):
                try:
                    data = safe_files.read_regular(dir_fd, name, self.max_bytes)
                except Refused as refused:
                    self._refuse(dir_fd, refused)
                    continue
                except FileNotFoundError:  # taken away since the listing
                    continue
                try:
                    result = yield self.handler(name, data)
                except Exception as e:  # the store is down: leave the file for the next scan
                    log.error(
                        "{network} inbox: {name} not applied, will retry: {error}",
                        network=self.network,
                        name=name,
                        error=e,
                    )
                    return
                target = _settle(dir_fd, name, result)
                FILES.labels(self.network, "done" if result.accepted else "rejected").inc()
                log.info(
                    "{network} inbox: {name} -> {target}",
                    network=self.network,
                    name=name,
                    target=str(self.folder / target),
                )
        except OSError as e:
            log.error(
                "{network} inbox: {folder}: {error}; tried again at the next scan",
                network=self.network,
                folder=str(self.folder),
                error=e,
            )
        finally:
            os.close(dir_fd)

    def _refuse(self, dir_fd: int, refused: Refused) -> None:
        """Set an entry aside unread (moved as it is: a link stays a link) and say why."""
        report = f"refused, not read: {refused.detail}"
        extra = self.on_refused(refused.name, refused) if self.on_refused else None
        if extra:
            report += "\n" + extra
        target = _settle(dir_fd, refused.name, FileResult(False, report))
        REFUSED.labels(self.network, refused.reason).inc()
        FILES.labels(self.network, "rejected").inc()
        log.warn(
            "{network} inbox: {name} refused unread ({reason}): {detail} -> {target}",
            network=self.network,
            name=refused.name,
            reason=refused.reason,
            detail=refused.detail,
            target=str(self.folder / target),
        )
