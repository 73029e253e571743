"""gateway.infra.safe_files: what a folder others can write to cannot make the daemon read or
write."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from gateway.infra import safe_files
from gateway.infra.safe_files import Refused


@pytest.fixture
def folder(tmp_path: Path) -> Any:
    path = tmp_path / "inbox"
    path.mkdir()
    with safe_files.folder(path) as fd:
        yield path, fd


def test_a_regular_file_is_read_whole(folder: Any) -> None:
    path, fd = folder
    (path / "a.txt").write_bytes(b"x" * 100)
    assert safe_files.read_regular(fd, "a.txt", 100) == b"x" * 100


def test_an_oversize_file_is_refused_before_a_byte_is_read(
    folder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, fd = folder
    with (path / "huge.txt").open("wb") as f:
        f.truncate(10**9)  # sparse
    reads: list[int] = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda f, n: reads.append(n) or real_read(f, n))
    with pytest.raises(Refused) as e:
        safe_files.read_regular(fd, "huge.txt", 1000)
    assert e.value.reason == "too_large" and "1,000,000,000 bytes" in e.value.detail
    assert reads == []


def test_a_file_that_grows_past_its_size_is_read_to_the_limit_and_no_further(
    folder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, fd = folder
    (path / "grows.txt").write_bytes(b"y" * 5000)
    real_fstat = os.fstat

    def small(f: int) -> os.stat_result:  # the size it had when it was opened
        st = list(real_fstat(f))
        st[stat.ST_SIZE] = 10
        return os.stat_result(st)

    monkeypatch.setattr(os, "fstat", small)
    read: list[int] = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda f, n: read.append(n) or real_read(f, n))
    with pytest.raises(Refused) as e:
        safe_files.read_regular(fd, "grows.txt", 100)
    assert e.value.reason == "too_large" and sum(read) == 101


@pytest.mark.parametrize(
    ("make", "reason", "kind"),
    [
        (lambda p, t: p.symlink_to(t), "symlink", "a symbolic link"),
        (lambda p, t: os.mkfifo(p), "not_regular", "a FIFO"),
        (lambda p, t: p.mkdir(), "not_regular", "a directory"),
        (lambda p, t: p.symlink_to(t.parent, target_is_directory=True), "symlink", "symbolic"),
    ],
)
def test_what_is_no_regular_file_is_not_read(
    folder: Any, tmp_path: Path, make: Any, reason: str, kind: str
) -> None:
    path, fd = folder
    secret = tmp_path / "secret"
    secret.write_bytes(b"secret")
    make(path / "entry", secret)
    with pytest.raises(Refused) as e:
        safe_files.read_regular(fd, "entry", 1000)
    assert e.value.reason == reason and kind in e.value.detail
    assert "secret" not in str(e.value)


def test_a_write_replaces_a_link_at_its_name_and_never_uses_a_known_temporary_name(
    folder: Any, tmp_path: Path
) -> None:
    path, fd = folder
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (path / "out.csv").symlink_to(victim)
    (path / ".out.csv.tmp").symlink_to(victim)
    safe_files.write_at(fd, "out.csv", b"answer")
    assert victim.read_bytes() == b"precious"
    assert not (path / "out.csv").is_symlink() and (path / "out.csv").read_bytes() == b"answer"
    assert stat.S_IMODE((path / "out.csv").stat().st_mode) & 0o007 == 0  # not for others
    assert sorted(p.name for p in path.iterdir()) == [".out.csv.tmp", "out.csv"]


def test_a_linked_subfolder_is_renamed_aside_and_a_real_one_made(
    folder: Any, tmp_path: Path
) -> None:
    path, fd = folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (path / "done").symlink_to(elsewhere, target_is_directory=True)
    sub = safe_files.subfolder(fd, "done")
    try:
        safe_files.write_at(sub, "x.report.txt", b"report")
    finally:
        os.close(sub)
    assert list(elsewhere.iterdir()) == []
    assert (path / "done").is_dir() and not (path / "done").is_symlink()
    assert (path / "done" / "x.report.txt").read_bytes() == b"report"
    (aside,) = [p for p in path.iterdir() if p.name.startswith(".done.refused-")]
    assert aside.is_symlink()
