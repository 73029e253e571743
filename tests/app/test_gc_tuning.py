"""The daemon tunes the garbage collector once it runs (gateway.app.tap.freeze_startup_heap):
start-up's objects frozen, the youngest generation collected every 50,000 allocations."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gateway.app.tap import freeze_startup_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_startup_heap_is_frozen_and_collections_are_rarer() -> None:
    gc.unfreeze()
    freeze_startup_heap()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (50_000, 20, 20)
