"""Files in folders that others can write to: the inboxes, the outbox, done/ and rejected/.

A peer (or anyone who can write to a watched folder) may leave there a symbolic link to a file
the daemon can read or write, a FIFO, a device or a huge file. Every read and write of the
daemon in such a folder goes through this module, so that none of them

* follows a symbolic link: entries are opened with ``O_NOFOLLOW`` relative to the folder's
  descriptor, ``done/`` and ``rejected/`` with ``O_DIRECTORY | O_NOFOLLOW``, and moves are
  ``rename`` (which moves a link, never what it points to);
* reads anything but a regular file (``fstat`` after the open; FIFOs are opened non-blocking,
  so one never hangs the daemon), or more than a limit (the size is checked before reading,
  and at most ``limit + 1`` bytes are ever read);
* writes through a name someone could have planted: a new file is created exclusively under a
  random hidden name (``O_CREAT | O_EXCL | O_NOFOLLOW``), written, synced and renamed over the
  target (a link at the target's name is replaced, not followed), then the folder is synced.

An entry that may not be read raises :class:`Refused`, whose ``reason`` is one of
:data:`REASONS` (a metric label) and whose ``detail`` says what it is, never what it holds.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)

FILE_MODE = 0o600  # everything the daemon creates is its user's only (as its umask 077 makes it)
DIR_MODE = 0o700
REASONS = ("symlink", "not_regular", "too_large")


class Refused(Exception):
    """An entry of a watched folder that is not read (a link, not a regular file, too large)."""

    def __init__(self, name: str, reason: str, detail: str) -> None:
        assert reason in REASONS
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.reason = reason
        self.detail = detail


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def open_folder(path: Path, *, follow: bool = True, dir_fd: int | None = None) -> int:
    """A descriptor of the folder ``path``. With ``follow=False`` its last component may not
    be a symbolic link (for folders that are themselves entries of a watched folder)."""
    flags = os.O_RDONLY | _DIRECTORY | _CLOEXEC | (0 if follow else _NOFOLLOW)
    return os.open(path, flags, dir_fd=dir_fd)


@contextlib.contextmanager
def folder(path: Path, *, follow: bool = True, create: bool = False) -> Iterator[int]:
    """:func:`open_folder` as a context; ``create`` makes it (and its parents) if missing."""
    if create:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd = open_folder(path, follow=follow)
    try:
        yield fd
    finally:
        os.close(fd)


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """The entry ``name`` itself (a link is not followed); None if there is none."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def subfolder(dir_fd: int, name: str) -> int:
    """A descriptor of ``name`` in the folder, made if missing. Anything else already there
    under that name (a symbolic link, a file) is renamed aside, hidden, and never followed."""
    st = lstat_at(dir_fd, name)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        aside = f".{name}.refused-{secrets.token_hex(6)}"
        os.rename(name, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        st = None
    if st is None:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, DIR_MODE, dir_fd=dir_fd)
    # O_NOFOLLOW: a link swapped in since the check makes this fail (ELOOP), it is not followed.
    return open_folder(Path(name), follow=False, dir_fd=dir_fd)


def read_regular(dir_fd: int, name: str, limit: int) -> bytes:
    """The content of the regular file ``name`` of the folder, at most ``limit`` bytes.

    Raises :class:`Refused` for a symbolic link, anything but a regular file, or a file over
    ``limit`` bytes (from its size before reading, or when it grows while being read)."""
    first = lstat_at(dir_fd, name)  # not even opened when it is plainly no regular file
    if first is not None and stat.S_ISLNK(first.st_mode):
        raise Refused(name, "symlink", "a symbolic link: not followed, not read")
    if first is not None and not stat.S_ISREG(first.st_mode):
        raise Refused(name, "not_regular", f"{_kind(first.st_mode)}, not a regular file: not read")
    try:  # and checked again on what was opened: the entry may have been swapped meanwhile
        fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise Refused(name, "symlink", "a symbolic link: not followed, not read") from None
        if e.errno in (errno.ENXIO, errno.EISDIR):  # a socket; a directory opened for writing
            st = lstat_at(dir_fd, name)
            kind = _kind(st.st_mode) if st is not None else "not a regular file"
            raise Refused(name, "not_regular", f"{kind}: not read") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(name, "not_regular", f"{_kind(st.st_mode)}, not a regular file: not read")
        if st.st_size > limit:
            raise Refused(
                name, "too_large", f"{st.st_size:,} bytes, over the limit of {limit:,}: not read"
            )
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:
            raise Refused(name, "too_large", f"grew over the limit of {limit:,} bytes: not read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_at(dir_fd: int, name: str, data: bytes, mode: int = FILE_MODE) -> None:
    """``name`` in the folder appears whole or not at all: a new file under a random hidden
    name (exclusive, never through a link), synced, renamed over ``name``, folder synced."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    while True:
        tmp = f".{name}.{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(tmp, flags, mode, dir_fd=dir_fd)
        except FileExistsError:  # 64 random bits: only someone guessing
            continue
        break
    try:
        with open(fd, "wb", closefd=True) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)  # the rename itself survives a crash


def write_atomically(
    path: Path, data: bytes, mode: int = FILE_MODE, *, follow_folder: bool = True
) -> Path:
    """:func:`write_at` for ``path`` (its folder made if missing when ``follow_folder``; with
    ``follow_folder=False`` the folder must exist and may not be a symbolic link)."""
    with folder(path.parent, follow=follow_folder, create=follow_folder) as fd:
        write_at(fd, path.name, data, mode)
    return path


def staged_name(name: str) -> str:
    """The hidden name a file waits under before it is published (no reader takes a name that
    starts with a dot)."""
    return f".{name}.staged"


def stage(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Write ``data`` whole under :func:`staged_name` next to ``path`` (:func:`write_at`: a
    link planted at that name is replaced, never followed); :func:`publish` makes it ``path``."""
    with folder(path.parent, create=True) as fd:
        write_at(fd, staged_name(path.name), data, mode)


def publish(path: Path) -> bool:
    """Rename the staged file to ``path`` (one atomic step, synced); False when there is no
    staged file (published already)."""
    with folder(path.parent, create=True) as fd:
        try:
            os.rename(staged_name(path.name), path.name, src_dir_fd=fd, dst_dir_fd=fd)
        except FileNotFoundError:
            return False
        os.fsync(fd)
    return True


def free_name(dir_fd: int, name: str, suffixes: tuple[str, ...] = ()) -> str:
    """``name``, or ``name.1``, ``name.2`` ...: the first that is not in the folder (neither
    it nor it with any of ``suffixes``). Links count as taken, and are never followed."""
    candidate, n = name, 1
    while any(lstat_at(dir_fd, candidate + s) is not None for s in ("", *suffixes)):
        candidate = f"{name}.{n}"
        n += 1
    return candidate


def move(src_fd: int, name: str, dst_fd: int, new_name: str) -> None:
    """Rename the entry itself (a link moves as a link) from one folder to another."""
    os.rename(name, new_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
