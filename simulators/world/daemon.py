"""One life of the gateway process: the real objects of ``gateway.app.service.make_service``,
built on the simulated process (:class:`~simulators.world.runtime.Process`) and a store whose
thread pool is the simulated one.

What runs is the daemon's own code: the store (SQLAlchemy on the real database, under the
seed's database faults), the ingest and its group committer, the CVS network (its link protocol
and factory, its inbox watcher of 確報 files, its agency CSV handler), the bill service, the
expiry job, the webhook delivery service (with a client that reaches the simulated receivers),
the settlement job on its timer, the MPN network's answers and its day closer, the Zengin
network's scheduled requests and its inbox watcher. Only the listeners are left out: the
simulated peers call the objects a listener would hand bytes to (the link factory's protocols,
``MpnNetwork.answer``).

A crash is :meth:`Daemon.kill`: the process's pending calls are dropped, its engine's
connections closed, and nothing of it is used again; the next life is built from the same
database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy.engine import Engine
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads

from gateway.billing.bills import BillService
from gateway.billing.expiry import ExpiryJob, expiry_service
from gateway.config import Config
from gateway.infra.jobs import timer
from gateway.ingest import Ingest
from gateway.money.settlement import SettlementJob, settlement_service
from gateway.networks.cvs import CvsNetwork
from gateway.networks.issuer import Issuer
from gateway.networks.mpn import DayCloser, MpnNetwork
from gateway.networks.registry import REGISTRY
from gateway.networks.zengin import ZenginNetwork
from gateway.protocols.cvs import CvsLinkFactory
from gateway.protocols.inbox import FileResult, InboxWatcher
from gateway.store import Store
from gateway.webhooks.api import WebhookApi
from gateway.webhooks.delivery import WebhookDelivery
from simulators.world.faults import DatabaseFaults, FaultyEngine
from simulators.world.runtime import Process, SimPool

AGENCY_PEER = "cvs-agency.sim"
LINK_IDLE_TIMEOUT = 60.0


class Daemon:
    """The gateway's objects for one life of the process."""

    def __init__(
        self,
        config: Config,
        process: Process,
        db_faults: DatabaseFaults,
        *,
        hook: Callable[[str, str], bool],
        poster: Any,
        engine: Engine,
        randbelow: Callable[[int], int],
        on_file: Callable[[str, str, bytes, FileResult], None],
    ) -> None:
        self.config = config
        self.process = process
        self.life = process.life
        # The seed's engine: kept across lives (and seeds) only for its cache of compiled
        # statements; a crash closes every connection of it.
        self.engine = engine
        faulty = cast(Engine, FaultyEngine(engine, db_faults))
        self.pool = SimPool(process, hook)
        self.store = Store(
            faulty,
            cast(IReactorThreads, process),
            pool=self.pool,
            sleep=lambda seconds: None,
            listen=False,  # one daemon at a time, and the simulated clock has no other thread
        )
        self.store.start()
        self.services: list[Service] = []

        self.bills = BillService(self.store, process, config, Issuer(config, randbelow))
        self.webhook_api = WebhookApi(self.store, process, config)
        self.ingest = Ingest(self.store, process, self.bills.event_doc, REGISTRY.finders(config))

        assert config.cvs is not None and config.mpn is not None and config.zengin is not None
        agency = config.cvs.agency(None)
        self.cvs = CvsNetwork(agency, None, self.ingest, process)
        self.link = CvsLinkFactory(
            self.cvs.submit, process, LINK_IDLE_TIMEOUT, peers=[AGENCY_PEER], max_unacked=20
        )
        assert agency.files is not None
        self._start(
            InboxWatcher(
                "cvs",
                agency.files.inbox,
                _told(self.cvs.apply_file, "cvs", on_file),
                process,
                agency.files.poll_interval,
            )
        )
        self._start(
            expiry_service(ExpiryJob(self.store, process, self.bills.event_doc), 1800, process)
        )
        self.webhooks = WebhookDelivery(
            self.store,
            process,
            config.webhooks,
            client=poster,
            owner=f"sim-daemon-{self.life}",
            rng=process.rng,
        )
        self._start(self.webhooks)
        self.settlement = SettlementJob(self.store, process, workers=2)
        self._start(settlement_service(self.settlement, config.settlement.interval, process))

        self.mpn = MpnNetwork(config.mpn, self.store, self.ingest, process)
        self.center_link: Any = None  # set by the world: the center's side of 閉局
        self.day_closer = DayCloser(self.mpn, _CloseLink(self), config.mpn.close_at, process)
        self._start(self.day_closer)

        # The Zengin network's services (ZenginNetwork.services), its request tick every 5
        # minutes instead of every one: the simulation's time is spent where things happen.
        self.zengin = ZenginNetwork(config.zengin, self.store, self.ingest, process)
        self._start(timer("zengin-requests", 300, self.zengin.tick, process))
        self._start(
            InboxWatcher(
                "zengin",
                config.zengin.inbox,
                _told(self.zengin.apply_file, "zengin", on_file),
                process,
                config.zengin.poll_interval,
            )
        )

    def _start(self, service: Any) -> None:
        service.startService()
        self.services.append(service)

    @property
    def alive(self) -> bool:
        return self.process.alive

    def kill(self) -> None:
        """The process dies: no call of it runs again; its connections are closed."""
        self.process.kill()
        self.store.running = False
        self.engine.dispose()


def _told(
    apply: Callable[[str, bytes], Deferred[FileResult]],
    network: str,
    on_file: Callable[[str, str, bytes, FileResult], None],
) -> Callable[[str, bytes], Deferred[FileResult]]:
    """The inbox's handler, with the world told of each result as the inbox gets it."""

    def handler(name: str, data: bytes) -> Deferred[FileResult]:
        def seen(result: FileResult) -> FileResult:
            on_file(network, name, data, result)
            return result

        return apply(name, data).addCallback(seen)

    return handler


class _CloseLink:
    """What DayCloser needs of the MPN link: the 閉局 exchange with the center."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def close_day(self, business_date: Any, counters: Any) -> Deferred[Any]:
        link = self.daemon.center_link
        if link is None:
            raise RuntimeError("the MPN link is down")
        result: Deferred[Any] = link.close_day(self.daemon, business_date, counters)
        return result
