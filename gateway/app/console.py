"""The console's services and routes (docs/console.md), built from the daemon's own services:
the console acts through what the merchant API and the support desk use."""

from __future__ import annotations

from typing import Any

from gateway.billing.bills import BillService
from gateway.billing.bulk import BulkService
from gateway.billing.console_accounts import ConsoleAccounts
from gateway.billing.console_actions import ConsoleBillActions
from gateway.billing.console_billers import ConsoleBillers
from gateway.billing.console_bills import ConsoleBills
from gateway.billing.console_bulk import BulkJobs
from gateway.billing.console_cases import ConsoleCases
from gateway.billing.console_center import ConsoleCenter
from gateway.billing.console_dashboard import ConsoleDashboard
from gateway.billing.console_keys import ConsoleKeys
from gateway.billing.console_payments import ConsolePayments
from gateway.billing.console_users import ConsoleUsers
from gateway.billing.support import SupportService
from gateway.config import Config
from gateway.money.console_fee_plans import ConsoleFeePlans
from gateway.money.console_network import ConsoleNetwork, Readiness
from gateway.money.console_settlements import ConsoleSettlements
from gateway.money.settlement import SettlementApi
from gateway.protocols.api.http import Route
from gateway.protocols.console.routes import ConsoleServices, console_routes
from gateway.store import Store
from gateway.webhooks.api import WebhookApi
from gateway.webhooks.console import ConsoleWebhooks


def console_screens(
    config: Config,
    store: Store,
    reactor: Any,
    bills: BillService,
    bulk: BulkService,
    support: SupportService,
    readiness: Readiness | None = None,
) -> list[Route]:
    services = ConsoleServices(
        users=ConsoleUsers(store, reactor, config.console, bills.box),
        bills=ConsoleBills(store, reactor, bills.render),
        actions=ConsoleBillActions(bills),
        bulk=BulkJobs(bulk, reactor),
        payments=ConsolePayments(store, reactor),
        cases=ConsoleCases(store, reactor),
        settlements=ConsoleSettlements(store, reactor, SettlementApi(store, reactor)),
        dashboard=ConsoleDashboard(store, reactor),
        billers=ConsoleBillers(store, reactor, config),
        fee_plans=ConsoleFeePlans(SettlementApi(store, reactor)),
        webhooks=ConsoleWebhooks(store, WebhookApi(store, reactor, config)),
        keys=ConsoleKeys(store, reactor, config.api.idempotency_ttl),
        accounts=ConsoleAccounts(store, reactor, config.api.idempotency_ttl),
        center=ConsoleCenter(store, support.render),
        network=ConsoleNetwork(store, reactor, config, SettlementApi(store, reactor), readiness),
    )
    return console_routes(services, config.console, config.api.public_url, reactor)
