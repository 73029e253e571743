"""The watched folders of the networks' files, as an operator looks at them: files waiting, the
newest file taken, and the files refused with their reports. ``gateway-admin status`` and the
console's network screen (docs/console.md) read them here.

A folder's files are taken by gateway.protocols.inbox: each moves to ``done/`` or
``rejected/`` with ``NAME.report.txt`` beside it. Nothing here follows a symbolic link (a
refused link is moved as it is) or reads more than :data:`REPORT_MAX` bytes of a report.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.infra import safe_files
from gateway.infra.safe_files import Refused

REPORT_SUFFIX = ".report.txt"  # gateway.protocols.inbox's
REPORT_MAX = 64 * 1024  # bytes of a report shown at most


def watched(config: Config) -> dict[str, Path]:
    """The networks' inboxes: ``cvs:<agency>`` (確報 result files) and ``zengin`` (transfer
    results), as configured."""
    found: dict[str, Path] = {}
    if config.cvs is not None:
        for agency in config.cvs.agencies:
            if agency.files is not None:
                found[f"cvs:{agency.id}"] = agency.files.inbox
    if config.zengin is not None:
        found["zengin"] = config.zengin.inbox
    return found


def _taken(path: Path) -> list[tuple[float, str, str]]:
    """(mtime, name, result) of every file taken from ``path`` (no report, no link followed)."""
    taken = []
    for sub in ("done", "rejected"):
        folder = path / sub
        if not folder.is_dir() or folder.is_symlink():
            continue
        with os.scandir(folder) as entries:
            for e in entries:
                if e.name.endswith(REPORT_SUFFIX) or e.name.startswith("."):
                    continue
                st = e.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    continue
                taken.append((st.st_mtime, e.name, sub))
    return taken


def _iso(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, UTC).isoformat()


def folder_state(path: Path) -> dict[str, Any]:
    """A watched folder: files waiting, and the newest file taken (done/ or rejected/)."""
    if not path.is_dir():
        return {"path": str(path), "exists": False}
    waiting = sum(1 for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    taken = _taken(path)
    last = None
    if taken:
        at, name, result = max(taken)
        last = {"name": name, "result": result, "at": _iso(at)}
    return {"path": str(path), "exists": True, "waiting": waiting, "last_file": last}


def inbox_states(config: Config) -> dict[str, Any]:
    """:func:`folder_state` of each of :func:`watched`'s folders."""
    return {name: folder_state(path) for name, path in watched(config).items()}


@dataclass(frozen=True)
class Rejected:
    inbox: str
    name: str
    at: datetime
    report: str  # the report's text (cut at REPORT_MAX bytes)


def _report(path: Path, name: str) -> str:
    try:
        with safe_files.folder(path / "rejected", follow=False) as fd:
            data = safe_files.read_regular(fd, name + REPORT_SUFFIX, REPORT_MAX)
    except Refused as e:
        return f"(the report is not shown: {e.detail})"
    except FileNotFoundError:
        return "(no report)"
    except OSError as e:
        return f"(the report cannot be read: {type(e).__name__})"
    return data.decode("utf-8", "replace")


def rejected_files(config: Config, limit: int = 20) -> list[Rejected]:
    """The newest files refused, across the inboxes, each with its report."""
    found = []
    for inbox, path in watched(config).items():
        if not path.is_dir():
            continue
        found += [(at, inbox, name) for at, name, sub in _taken(path) if sub == "rejected"]
    found.sort(reverse=True)
    paths = watched(config)
    return [
        Rejected(inbox, name, datetime.fromtimestamp(at, UTC), _report(paths[inbox], name))
        for at, inbox, name in found[:limit]
    ]
