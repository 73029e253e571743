"""照会 answered in a group whose store connection is cut (tests/faults/pgproxy.py): every 照会
of the group fails, so the link answers each ``9001`` (temporarily unable: the center asks
again), as it answers one 照会 whose interaction fails; none is answered from a half-done
group, no guard count of it is kept, and the next group, on a fresh connection, answers.

PostgreSQL only (skipped on SQLite, which has no connection to cut).
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from gateway.mappers.mpn.mapper import Inquiry, Message, build_message, parse_message
from gateway.networks.mpn import MpnNetwork
from gateway.protocols.mpn import MpnLinkProtocol
from gateway.store import Store, create_db_engine
from gateway.store.schema import mpn_guard
from tests.conftest import on_postgres
from tests.faults.pgproxy import PgProxy
from tests.networks.test_mpn_answers import TODAY, Desk, desk  # noqa: F401 (the fixture)

pytestmark = pytest.mark.skipif(
    not on_postgres(),
    reason="PostgreSQL only (GATEWAY_TEST_DATABASE_URL): a TCP proxy cuts the store's "
    "connection; SQLite has no connection to cut",
)


def link_answers(network: MpnNetwork, requests: list[Message]) -> tuple[list[Message], Any]:
    """The link's protocol, opened, handed ``requests``; (what it wrote, a Deferred that fires
    once every request is answered)."""
    written: list[Message] = []
    protocol = MpnLinkProtocol(
        network.answer,
        Clock(),
        institution_code="58191",
        center_code="0001",
        business_date=lambda: TODAY,
    )
    protocol.transport = StringTransport()
    protocol._peer = "mpn-center"
    protocol._connected = protocol.open = True  # 開局 answered: requests go to the store
    done: Deferred[None] = Deferred()

    def write(message: Message) -> None:
        written.append(message)
        if len(written) == len(requests) and not done.called:
            done.callback(None)

    protocol._send = write  # type: ignore[method-assign]
    for request in requests:
        protocol._center_request(request)
    return written, done


@pytest_twisted.ensureDeferred
async def test_a_cut_group_answers_every_inquiry_9001_and_the_next_answers(
    desk: Desk,  # noqa: F811
) -> None:
    from twisted.internet import reactor  # noqa: TID251 - tests drive the real reactor

    bills = [desk.bill(f"C-{n}") for n in range(4)]
    server = make_url(desk.engine.url.render_as_string(hide_password=False))
    proxy = PgProxy(reactor, server.host or "127.0.0.1", server.port or 5432)
    port = await proxy.start()
    url = server.set(host="127.0.0.1", port=port).update_query_dict({"sslmode": "disable"})
    store = Store(create_db_engine(url.render_as_string(hide_password=False), 2), reactor)
    store.start()
    network = MpnNetwork(desk.network.config, store, desk.network.ingest, reactor)
    try:
        first = network.answer(desk.request("1100", Inquiry(desk.key(bills[0]))), "test")
        # The second group (the three that wait for the first) is cut at its guard upsert.
        cut = proxy.cut_on(b"INSERT INTO mpn_guard", nth=2)
        group = [
            desk.request("1100", Inquiry(desk.key(bills[1]))),
            desk.request("1100", Inquiry(desk.key(bills[2], "000000"))),
            desk.request("1100", Inquiry(desk.key(bills[3]))),
        ]
        results = await DeferredList([network.answer(r, "test") for r in group], consumeErrors=True)
        assert (await first).header.response_code == "0000"
        assert cut.called
        for ok, value in results:
            assert not ok and value.check(OperationalError), value

        # The same through the link: each 照会 of a cut group is answered 9001.
        proxy.cut_on(b"INSERT INTO mpn_guard", nth=1)
        written, answered = link_answers(network, group)
        await answered
        assert sorted(m.header.serial for m in written) == sorted(r.header.serial for r in group)
        for message in written:
            again = parse_message(build_message(message))  # as the center reads it
            assert (again.header.type, again.header.response_code) == ("1110", "9001")

        with desk.engine.connect() as conn:  # nothing of the cut groups was kept
            counted = {r.customer_number for r in conn.execute(select(mpn_guard))}
        assert counted == {bills[0].payeasy.customer_number}  # type: ignore[union-attr]

        # The next group, on a fresh connection, answers as alone.
        again = await DeferredList([network.answer(r, "test") for r in group])
        assert [m.header.response_code for _, m in again] == ["0000", "1001", "0000"]
    finally:
        store.stop()
        await proxy.stop()
