"""The one composition root: ``make_service(config, reactor)``.

Children start in this order (and stop in reverse, so listeners close first and work in flight
reaches the store before it stops): store, periodic jobs, metrics listener, merchant API listener.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from gateway.app.console import console_screens
from gateway.billing.at_rest import SecretsAtRest
from gateway.billing.billers import BillerService
from gateway.billing.bills import BillService
from gateway.billing.bulk import MAX_BYTES, BulkService
from gateway.billing.expiry import ExpiryJob, expiry_service
from gateway.billing.idempotency_purge import IdempotencyPurge, idempotency_purge_service
from gateway.billing.keys import Authenticator
from gateway.billing.mandates import MandateService
from gateway.billing.notice_api import NoticeApi
from gateway.billing.notices import NoticeJob
from gateway.billing.notify import Mailer
from gateway.billing.pages import PageService
from gateway.billing.payer_numbers import PayerNumberService
from gateway.billing.payments import PaymentService
from gateway.billing.retention import RetentionJob, retention_service
from gateway.billing.slips import SlipService
from gateway.billing.sms import SmsSender
from gateway.billing.support import SupportService
from gateway.billing.watch import DEFAULT_INTERVAL, WatchJob, watch_service
from gateway.config import Config
from gateway.errors import ConfigError
from gateway.infra.secretbox import SecretBox
from gateway.ingest import Ingest
from gateway.money.payout_service import PayoutService, checked
from gateway.money.reconciliation import (
    ReconciliationApi,
    ReconciliationJob,
    reconciliation_service,
)
from gateway.money.settlement import SettlementApi, SettlementJob, settlement_service
from gateway.networks.base import Wiring
from gateway.networks.issuer import Issuer
from gateway.networks.registry import REGISTRY
from gateway.protocols.api.biller_routes import biller_routes
from gateway.protocols.api.bulk_routes import bulk_routes
from gateway.protocols.api.http import Router, make_site
from gateway.protocols.api.limits import http_limits
from gateway.protocols.api.notice_routes import notice_routes
from gateway.protocols.api.pages import page_routes
from gateway.protocols.api.payer_routes import payer_routes
from gateway.protocols.api.payout_routes import payout_routes
from gateway.protocols.api.recon_routes import recon_routes
from gateway.protocols.api.routes import api_routes
from gateway.protocols.api.settlement_routes import settlement_routes
from gateway.protocols.api.slip_routes import slip_routes
from gateway.protocols.api.support_routes import support_routes
from gateway.protocols.api.webhook_routes import webhook_routes
from gateway.protocols.bill_inbox import BillInbox
from gateway.protocols.inbox import FileResult, InboxWatcher
from gateway.protocols.listen import ListenerService
from gateway.protocols.ops import ops_site, watch_folders
from gateway.protocols.sms_client import HttpSmsProvider
from gateway.protocols.webhook_client import client_for
from gateway.store import Store
from gateway.store.migrate import head_revision, migrate
from gateway.webhooks.api import WebhookApi
from gateway.webhooks.delivery import WebhookDelivery

log = Logger()


class StoreService(Service):
    """Starts the store's thread pool first and stops it last."""

    def __init__(self, store: Store, migrate_on_start: bool) -> None:
        self.store = store
        self.migrate_on_start = migrate_on_start

    def startService(self) -> None:
        if self.migrate_on_start:
            before, after = migrate(self.store.engine)
            log.info("Schema migrated from {before} to {after}", before=before, after=after)
        self.store.start()
        super().startService()

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        self.store.stop()
        log.info("Store stopped")
        return None


def bulk_inbox(bulk: BulkService, folder: Path, interval: float) -> IService:
    """The billers' watched folder (``[bulk] inbox``): ``FOLDER/<biller_id>/NAME.csv``."""
    return BillInbox(
        folder,
        lambda biller_id, name, data: Deferred.fromCoroutine(
            bulk.register_file(biller_id, name, data)
        ),
        lambda biller_id: Deferred.fromCoroutine(bulk.biller_exists(biller_id)),
        bulk.bills.clock,
        interval,
        refuse=bulk.refuse_entry,
        max_bytes=MAX_BYTES,
    )


def folders(config: Config) -> dict[str, Path]:
    """The folders the daemon reads and writes, by the name their free space is exported under
    (gateway_folder_free_bytes{folder})."""
    found: dict[str, Path] = {}
    for agency in config.cvs.agencies if config.cvs is not None else ():
        if agency.files is not None:
            label = "cvs" if agency.id == "default" else f"cvs-{agency.id}"
            found[f"{label}.inbox"] = agency.files.inbox
    if config.zengin is not None:
        found["zengin.inbox"] = config.zengin.inbox
        found["zengin.outbox"] = config.zengin.outbox
    if config.bulk is not None:
        found["bulk.inbox"] = config.bulk.inbox
    if config.payouts is not None:
        found["payouts.inbox"] = config.payouts.inbox
        found["payouts.outbox"] = config.payouts.outbox
    if config.database.is_sqlite:
        database = make_url(config.database.url).database
        if database and database != ":memory:":
            found["database"] = Path(database).parent
    return found


def payout_service(
    config: Config, store: Store, reactor: Any, top: MultiService
) -> PayoutService | None:
    """With ``[payouts]``: the payout job (files out, paid out) and the returns inbox."""
    if config.payouts is None:
        return None
    if config.secret_key is None:  # the daemon's options refuse this already
        raise ConfigError("secrets.key", "is required: payout accounts are kept sealed with it")
    payouts = PayoutService(checked(config.payouts), store, reactor, SecretBox(config.secret_key))
    payouts.timer().setServiceParent(top)

    def returns(name: str, data: bytes) -> Deferred[FileResult]:
        return payouts.apply_file(name, data).addCallback(lambda done: FileResult(*done))

    InboxWatcher(
        "payouts", config.payouts.inbox, returns, reactor, config.payouts.poll_interval
    ).setServiceParent(top)
    return payouts


def make_service(config: Config, reactor: Any) -> MultiService:
    top = MultiService()
    store = Store.from_url(config.database.url, reactor, config.database.pool_size)
    StoreService(store, config.database.migrate_on_start).setServiceParent(top)

    idempotency_purge_service(
        IdempotencyPurge(store, reactor, config.api.idempotency_ttl), reactor
    ).setServiceParent(top)

    # Bills made before migration 0009 and webhook secrets stored in clear
    # (gateway.billing.at_rest).
    if config.secret_key is not None:
        SecretsAtRest(store, SecretBox(config.secret_key)).setServiceParent(top)

    # Webhooks: after the store (stopped before it), before the listeners.
    WebhookDelivery(
        store, reactor, config.webhooks, client=client_for(reactor, config.webhooks)
    ).setServiceParent(top)

    # Readiness is the store's: the API can serve without a network link. The networks add
    # what an operator wants to see beside it (link state, the last 閉局).
    checks: list[Callable[[], dict[str, Any]]] = []

    async def readiness() -> dict[str, Any]:
        detail: dict[str, Any] = {}
        for check in checks:
            detail.update(check())
        try:
            current = await store.ping()
        except Exception as e:
            return {"store": f"unavailable: {type(e).__name__}", "detail": detail}
        if not current:
            return {
                "store": f"schema is not at {head_revision()}: run gateway-admin migrate",
                "detail": detail,
            }
        return {"store": "ok", "detail": detail}

    def ready() -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(readiness())

    ListenerService(
        "metrics", config.metrics.listen, ops_site(ready, reactor), reactor
    ).setServiceParent(top)

    bills = BillService(store, reactor, config, Issuer(config))
    auth = Authenticator(store, reactor, config.api.auth_cache_seconds)
    payments = PaymentService(store, reactor)
    mandates = MandateService(store, reactor, config.zengin)
    routes = api_routes(bills, payments, mandates, config.api.max_page_size)
    routes += payer_routes(PayerNumberService(store, reactor, config))  # reusable お客様番号
    routes += webhook_routes(WebhookApi(store, reactor, config), config.api.max_page_size)
    pages = PageService(
        store,
        reactor,
        config.bills.retention_days,
        descriptions=REGISTRY.descriptions(),
        barcode_text=Issuer.human_readable,
    )
    routes += page_routes(pages)
    bulk = BulkService(bills, reactor)
    routes += bulk_routes(bulk)
    routes += slip_routes(SlipService(store, reactor, Issuer.human_readable))  # printed slips
    routes += notice_routes(NoticeApi(store, reactor), config.api.max_page_size)
    routes += settlement_routes(SettlementApi(store, reactor), config.api.max_page_size)
    billers = BillerService(store, reactor, config)
    routes += biller_routes(billers, config.api.max_page_size)
    support = SupportService(store, reactor, bills.event_doc)  # the support desk (admin keys)
    routes += support_routes(support, billers, config.api.max_page_size)
    if config.console.enabled:  # the console's screens (docs/console.md)
        routes += console_screens(config, store, reactor, bills, bulk, support, ready)
    expiry = ExpiryJob(store, reactor, bills.event_doc)
    expiry_service(expiry, config.bills.expiry_interval, reactor).setServiceParent(top)
    # Billers settled at once: at most one store connection less than the pool (the API's).
    settle = SettlementJob(
        store,
        reactor,
        config.settlement.max_per_run,
        min(config.settlement.workers, max(1, config.database.pool_size - 1)),
    )
    settlement_service(settle, config.settlement.interval, reactor).setServiceParent(top)
    routes += payout_routes(payout_service(config, store, reactor, top))
    # The networks' remittances matched to the bank statement (finance: admin keys).
    routes += recon_routes(ReconciliationApi(store, reactor, config))
    recon = ReconciliationJob(store, reactor, config)
    reconciliation_service(recon, reactor).setServiceParent(top)
    retention = RetentionJob(store, reactor, months=config.retention.months)
    retention_service(retention, config.retention.interval, reactor).setServiceParent(top)
    # What the ledger holds, for the alerts and the dashboard (deploy/prometheus/).
    watch_service(WatchJob(store, reactor), DEFAULT_INTERVAL, reactor).setServiceParent(top)
    watch_folders(folders(config))
    limits = http_limits(config.api)
    api = make_site(Router(routes, auth, limits, reactor), limits, reactor)
    ListenerService(
        "api", config.api.listen, api, reactor, reuse_port=config.api.reuse_port
    ).setServiceParent(top)

    # The networks, each as the registry (gateway.networks.registry) has it: its pollers and
    # watchers, then its listeners (which stop first), and what it adds to /readyz.
    ingest = Ingest(store, reactor, bills.event_doc, REGISTRY.finders(config))
    wiring = Wiring(config, store, ingest, reactor)
    for network in REGISTRY.enabled(config):
        started = network.start(wiring)
        for network_service in started.services:
            network_service.setServiceParent(top)
        if started.readiness is not None:
            checks.append(started.readiness)
    if config.bulk is not None:  # the billers' watched folder of bulk bill files
        bulk_inbox(bulk, config.bulk.inbox, config.bulk.poll_interval).setServiceParent(top)
    if config.mail is not None:
        page_url = bills.page_url
        Mailer(config.mail, store, reactor, page_url).setServiceParent(top)
    # Notices (docs/notices.md): the events read into notices and fallbacks; SMS through the
    # configured provider (the endpoint checked against its address policy before anything
    # listens).
    notice_job = NoticeJob(store, reactor, config, Issuer(config), bills.event_doc)
    for notice_service in notice_job.services():
        notice_service.setServiceParent(top)
    if config.sms is not None:
        provider = HttpSmsProvider(reactor, config.sms)
        SmsSender(config.sms, store, reactor, provider, bills.page_url).setServiceParent(top)
    return top
