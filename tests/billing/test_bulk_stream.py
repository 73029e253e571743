"""A large bulk file is read, checked and stored as a stream (issue 18): its peak memory stays
bounded whatever its size, and a wrong row at its very end, after chunks of it were written,
still refuses the whole file, naming the row, and leaves nothing stored."""

from __future__ import annotations

import tempfile
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import func, select

from gateway.billing.bills import BillService
from gateway.billing.bulk import INSERT_CHUNK, BulkService
from gateway.errors import InvalidRequest
from gateway.networks.issuer import Issuer
from gateway.store import Store
from gateway.store.schema import bill_batch_items, bill_batches, bill_slips, bills, events
from tests.billing.test_bulk_api import HEADER, line, post_csv
from tests.conftest import Running

MiB = 1024 * 1024


@pytest_twisted.async_yield_fixture
async def store(gateway: Running) -> AsyncIterator[Store]:
    from twisted.internet import reactor  # noqa: TID251 - the store's threads need the reactor

    s = Store.from_url(gateway.config.database.url, reactor, 2)
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def bulk(gateway: Running, store: Store) -> BulkService:
    from twisted.internet import reactor  # noqa: TID251 - the service's clock and threads

    return BulkService(BillService(store, reactor, gateway.config, Issuer(gateway.config)), reactor)


def counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (bills, bill_slips, bill_batches, bill_batch_items, events)
        }


def big_file(rows: int, prefix: str, last: str | None = None) -> Any:
    """A temporary file of ``rows`` bill rows (the last one ``last`` when given)."""
    f = tempfile.TemporaryFile()  # noqa: SIM115 - the caller's ``with`` closes it
    f.write((HEADER + "\r\n").encode())
    template = line("@@@@@@") + "\r\n"
    block = []
    for i in range(rows - (last is not None)):
        block.append(template.replace("@@@@@@", f"{prefix}{i:06d}"))
        if len(block) == 5000:
            f.write("".join(block).encode())
            block = []
    if last is not None:
        block.append(last + "\r\n")
    f.write("".join(block).encode())
    f.seek(0)
    return f


@pytest_twisted.ensureDeferred
async def test_a_large_file_is_stored_in_bounded_memory(
    gateway: Running, store: Store, bulk: BulkService
) -> None:
    acme = gateway.onboard("acme")
    rows = 20_000
    with big_file(rows, "BIG-") as f:
        tracemalloc.start()
        try:
            stored = await bulk.register(acme.biller_id, f, "utf-8", None)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert stored.body and f'"created":{rows}' in stored.body
    assert counts(store) == {
        "bills": rows,
        "bill_slips": rows,
        "bill_batches": 1,
        "bill_batch_items": rows,
        "events": rows,
    }
    # Held whole (bytes, text, rows, terms, every event's JSON), 50,000 rows took 248 MiB here
    # (20,000 about 100 MiB); streamed, what remains is a chunk's worth (about 27 MiB) plus
    # what is kept per row, a bill_no seen and a batch row (about 0.5 KiB): 37 MiB, 54 MiB
    # for 50,000 rows.
    assert peak < 64 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("wrong", ["amount", "existing"])
@pytest_twisted.ensureDeferred
async def test_a_wrong_last_row_refuses_the_whole_file_and_stores_nothing(
    gateway: Running, store: Store, wrong: str
) -> None:
    acme = gateway.onboard("acme")
    status, _, _ = await post_csv(
        gateway, acme, (HEADER + "\r\n" + line("TAKEN", amount="1000") + "\r\n").encode()
    )
    assert status == 201
    before = counts(store)
    rows = 2 * INSERT_CHUNK + 10  # two chunks written before the last row is read
    # A row the file check refuses, or one only the store can refuse (a bill_no the biller
    # has with other fields), found after two chunks of the file were written.
    last = line("END", amount="12x") if wrong == "amount" else line("TAKEN", amount="2000")
    with big_file(rows, "END-", last) as f:
        status, problem, _ = await post_csv(gateway, acme, f.read())
    assert status == 422, problem
    column = "amount" if wrong == "amount" else "bill_no"
    assert [e["field"] for e in problem["errors"]] == [f"row {rows + 1}: {column}"]
    assert "nothing of the file was stored" in problem["detail"]
    assert counts(store) == before


@pytest_twisted.ensureDeferred
async def test_the_service_refuses_a_wrong_last_row_of_a_stream(
    gateway: Running, store: Store, bulk: BulkService
) -> None:
    acme = gateway.onboard("acme")
    before = counts(store)
    rows = INSERT_CHUNK + 1
    last = line("S-LAST", due_date="2020-01-01")
    with big_file(rows, "S-", last) as f, pytest.raises(InvalidRequest) as e:
        await bulk.register(acme.biller_id, f, None, None)
    assert [x.field for x in e.value.errors] == [f"row {rows + 1}: due_date"]
    assert counts(store) == before
