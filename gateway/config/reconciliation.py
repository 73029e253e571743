"""``[reconciliation]``: the center's bank statement and the networks' remittances
(docs/config.md; docs/settlement.md, "Reconciliation"). The section is optional: without it
remittances are still expected from the ledger (no agency fee, no remitter name) and statements
can be imported."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.config.table import Table
from gateway.errors import ConfigError
from gateway.model import Channel
from gateway.recon_model import Remitter, normalize_name

YEARS = ("wareki", "western")
AGENCY_PATTERNS = {
    Channel.CVS: (r"[A-Za-z0-9_-]{1,32}", "a [[cvs.agencies]] id"),
    Channel.PAYEASY: (r"[0-9]{5}", "a 収納機関番号 (5 digits)"),
    Channel.TRANSFER: (r"[0-9]{10}", "a 委託者コード (10 digits)"),
}


@dataclass(frozen=True)
class ReconciliationConfig:
    remitters: tuple[Remitter, ...] = ()
    # The center's collection account, BANK-BRANCH-TYPE-NUMBER: a Zengin statement of another
    # account is refused. None: any.
    account: str | None = None
    statement_years: str = "wareki"  # YYMMDD of Zengin statements: 令和 or 20YY
    payeasy_days: int = 1  # a 閉局's 消込 are remitted this many bank business days later
    transfer_days: int = 0  # debited transfers are credited this many bank days after the debit
    interval: float = 3600.0  # seconds between reconciliation runs (and one at start)
    lookback_days: int = 45  # a run reconciles the transfer dates of this many days back
    late_days: int = 3  # a missing remittance matches a deposit this many bank days late (0: off)


def parse_reconciliation(t: Table) -> ReconciliationConfig:
    account = t.string(
        "account",
        None,
        pattern=r"[0-9]{4}-[0-9]{3}-[1249]-[0-9]{1,7}",
        hint="BANK-BRANCH-TYPE-NUMBER, e.g. 0005-135-1-1234567",
    )
    if account is not None:
        bank, branch, kind, number = account.split("-")
        account = f"{bank}-{branch}-{kind}-{number.zfill(7)}"
    years = t.string(
        "statement_years", "wareki", pattern="wareki|western", hint="wareki or western"
    )
    remitters: list[Remitter] = []
    for item in t.array_of_tables("remitters") or []:
        remitter = _remitter(item)
        for other in remitters:
            if (other.network, other.agency) == (remitter.network, remitter.agency):
                raise ConfigError(item.key("agency"), f"{remitter.agency} is listed twice")
            if normalize_name(other.name) == normalize_name(remitter.name):
                raise ConfigError(item.key("name"), f"{remitter.name!r} names two remitters")
        remitters.append(remitter)
        item.done()
    return ReconciliationConfig(
        remitters=tuple(remitters),
        account=account,
        statement_years=years,
        payeasy_days=t.integer("payeasy_days", 1, low=0, high=20),
        transfer_days=t.integer("transfer_days", 0, low=0, high=20),
        interval=t.number("interval", 3600.0, low=0.0),
        lookback_days=t.integer("lookback_days", 45, low=1, high=366),
        late_days=t.integer("late_days", 3, low=0, high=10),
    )


def check_remitter_agencies(config: ReconciliationConfig, cvs: Any) -> None:
    """A CVS remitter names one of the [[cvs.agencies]] (``cvs``: the CvsConfig, or None)."""
    ids = [a.id for a in cvs.agencies] if cvs is not None else []
    for i, remitter in enumerate(config.remitters):
        if remitter.network is Channel.CVS and remitter.agency not in ids:
            known = ", ".join(ids) or "none: [cvs] is not configured"
            raise ConfigError(
                f"reconciliation.remitters[{i}].agency",
                f"{remitter.agency!r} is not a [[cvs.agencies]] id ({known})",
            )


def _remitter(t: Table) -> Remitter:
    network = t.string("network", pattern="cvs|payeasy|transfer", hint="cvs, payeasy or transfer")
    channel = Channel(network)
    pattern, hint = AGENCY_PATTERNS[channel]
    agency = t.string("agency", pattern=pattern, hint=hint)
    name = t.string("name")
    if not 1 <= len(name.strip()) <= 48 or re.search(r"[\x00-\x1f]", name):
        raise ConfigError(t.key("name"), "must be the 振込依頼人名, 1 to 48 characters")
    return Remitter(
        network=channel,
        agency=agency,
        name=name.strip(),
        fee_per_item=t.integer("fee_per_item", 0, low=0, high=1_000_000),
        fee_per_remittance=t.integer("fee_per_remittance", 0, low=0, high=1_000_000),
        fee_tax_rate=t.integer("fee_tax_rate", 10, low=0, high=100),
    )
