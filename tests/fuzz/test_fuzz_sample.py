"""The fuzz targets in the normal suite (docs/testing.md, "Fuzzing").

- Every target fuzzed briefly with atheris, in a process of its own (atheris exits the process
  when it is done): a few thousand inputs each, from the committed corpus. Any finding fails.
- Every committed corpus input replayed through its target's check, in this process.
- Every input that once found a bug (tests/fuzz/regressions/<target>/, named after what it
  found) replayed as a test of its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.registry import TARGETS

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_RUNS = 3000


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_short_fuzz_run_finds_nothing(name: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    command = [sys.executable, "-m", "tests.fuzz", "run", name, "--runs", str(SAMPLE_RUNS)]
    done = subprocess.run(
        [*command, "--work", str(tmp_path)], cwd=ROOT, capture_output=True, timeout=300
    )
    output = done.stderr.decode("utf-8", "replace")
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert done.returncode == 0 and not crashes, f"{name}: {crashes}\n{output[-6000:]}"
    assert f"Done {SAMPLE_RUNS} runs" in output, output[-2000:]


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_the_committed_corpus_passes_its_check(name: str) -> None:
    target = TARGETS[name]
    check = target.load()
    files = _files(target.corpus)
    assert files, f"{target.corpus} is empty"
    for path in files:
        check(path.read_bytes())


REGRESSIONS = [
    pytest.param(name, path, id=f"{name}/{path.name}")
    for name in sorted(TARGETS)
    for path in _files(TARGETS[name].regressions)
]


@pytest.mark.parametrize(("name", "path"), REGRESSIONS)
def test_an_input_that_found_a_bug(name: str, path: Path) -> None:
    TARGETS[name].load()(path.read_bytes())


def test_every_target_has_seeds_from_the_vectors_and_fixtures() -> None:
    for target in TARGETS.values():
        assert any(p.name.startswith("seed-") for p in _files(target.corpus)), target.name
