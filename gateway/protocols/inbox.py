"""A watched folder: files dropped by a network peer are handed over one at a time.

Each file is read whole and given to ``handler(name, data)``; when the handler's Deferred fires,
the file moves to ``done/`` (accepted) or ``rejected/`` (refused), with ``NAME.report.txt``
beside it saying what happened. Hidden files and names ending in ``.tmp`` or ``.part`` are left
alone (peers should upload under such a name and rename when complete). Nothing here knows the
file's format or the store. Polling runs on the injected clock.
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

log = Logger()

FILES = Counter(
    "gateway_inbox_files_total",
    "Files taken from a watched folder, by network and result (done, rejected).",
    ["network", "result"],
)


@dataclass(frozen=True)
class FileResult:
    accepted: bool
    report: str


Handler = Callable[[str, bytes], Deferred[FileResult]]


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    n = 1
    while target.exists() or target.with_name(target.name + ".report.txt").exists():
        target = folder / f"{name}.{n}"
        n += 1
    return target


def _settle(path: Path, result: FileResult) -> Path:
    folder = path.parent / ("done" if result.accepted else "rejected")
    folder.mkdir(exist_ok=True)
    target = _free_name(folder, path.name)
    report = target.with_name(target.name + ".report.txt")
    tmp = report.with_name("." + report.name + ".tmp")
    tmp.write_text(result.report.rstrip("\n") + "\n", encoding="utf-8")
    os.replace(tmp, report)
    os.replace(path, target)
    return target


class InboxWatcher(TimerService):
    def __init__(
        self,
        network: str,
        folder: Path,
        handler: Handler,
        clock: IReactorTime,
        interval: float = 5.0,
        accept: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(interval, self.scan)
        self.clock = clock
        self.network = network
        self.folder = folder
        self.handler = handler
        self.accept = accept  # which names to take, besides the rules above (None: all)

    def startService(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        super().startService()

    def candidates(self) -> list[Path]:
        return sorted(
            p
            for p in self.folder.iterdir()
            if p.is_file()
            and not p.name.startswith(".")
            and not p.name.endswith((".tmp", ".part", ".report.txt"))
            and (self.accept is None or self.accept(p.name))
        )

    @inlineCallbacks
    def scan(self) -> Generator[Deferred[FileResult], FileResult, None]:
        """Take every waiting file, one after another (files apply in name order)."""
        for path in self.candidates():
            data = path.read_bytes()
            try:
                result = yield self.handler(path.name, data)
            except Exception as e:  # the store is down: leave the file for the next scan
                log.error(
                    "{network} inbox: {name} not applied, will retry: {error}",
                    network=self.network,
                    name=path.name,
                    error=e,
                )
                return
            target = _settle(path, result)
            FILES.labels(self.network, "done" if result.accepted else "rejected").inc()
            log.info(
                "{network} inbox: {name} -> {target}",
                network=self.network,
                name=path.name,
                target=str(target),
            )
