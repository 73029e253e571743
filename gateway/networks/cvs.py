"""The convenience-store network's ways in.

:class:`CvsNetwork` joins the CVS link, the result-file inbox and the agency CSV pull to the
ledger (gateway.ingest) through the cvs mappers. ``services()`` lists what make_service starts
for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.engine import Connection
from twisted.application.service import IService
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.clock import now
from gateway.config import Config, CvsConfig, TLSConfig
from gateway.errors import FileErrors, RecordError
from gateway.infra.tls import TLSFiles
from gateway.ingest import Ingest, Received
from gateway.mappers.cvs import barcode
from gateway.mappers.cvs.agency import (
    AgencyError,
    agency_lines,
    agency_row_to_canonical,
    parse_agency_csv,
)
from gateway.mappers.cvs.mapper import chain_name, parse_file, parse_record, to_canonical
from gateway.mappers.cvs.stamp import stamp_required
from gateway.model import Biller, BillTerms, Channel, CollectionEvent, Slip, Tax
from gateway.networks.base import Started, Wiring
from gateway.protocols.cvs import listen_cvs_link
from gateway.protocols.cvs_agency import AgencyPoller, AgencySettings
from gateway.protocols.inbox import FileResult, InboxWatcher
from gateway.protocols.listen import ListenerService
from gateway.store.bills import BillMatch, Identifiers, match_cvs_keys
from gateway.store.ledger import billers_by_codes

log = Logger()


def _summary(summary: dict[str, int]) -> str:
    total = sum(summary.values())
    parts = ", ".join(f"{k} {v}" for k, v in sorted(summary.items()))
    return f"applied: {total} message(s): {parts}" if total else "applied: no messages"


class CvsNetwork:
    """The convenience-store network's ways in: link, result files, agency CSV."""

    def __init__(
        self, config: CvsConfig, tls: TLSConfig | None, ingest: Ingest, reactor: Any
    ) -> None:
        self.config = config
        self.tls = tls
        self.ingest = ingest
        self.reactor = reactor
        self.link_commits = ingest.committer("cvs.link.commit")

    def submit(self, record: bytes, source: str) -> Deferred[str]:
        """One 速報 link record: ``00`` once committed (or already stored), ``10`` if it can
        never be accepted, ``90`` if the store could not take it now."""
        try:
            parsed = parse_record(record, ceiling=barcode.MAX_AMOUNT)
        except RecordError as e:
            log.warn(
                "cvs link: record refused ({source}): {error}; bytes {raw!r}",
                source=source,
                error=str(e),
                raw=record.decode("ascii", "replace"),
            )
            return succeed("10")
        event = to_canonical(parsed, raw=record, source=source, received_at=now(self.reactor))
        d = self.link_commits.submit(Received(event))

        def failed(failure: Failure) -> str:
            log.failure(
                "cvs link: record not committed ({source}); answering 90", failure, source=source
            )
            return "90"

        return d.addCallbacks(lambda _: "00", failed)

    def apply_file(self, name: str, data: bytes) -> Deferred[FileResult]:
        """A 確報 result file, all records or none."""
        try:
            parsed = parse_file(data, source=name, ceiling=barcode.MAX_AMOUNT)
        except FileErrors as e:
            return succeed(FileResult(False, e.report()))
        events = parsed.events(name=name, received_at=now(self.reactor))
        messages = [Received(ev, line) for line, ev in enumerate(events, 2)]
        d = self.ingest.apply_file(messages, "cvs.file")
        return d.addCallback(lambda summary: FileResult(True, _summary(summary)))

    def apply_agency_csv(self, data: bytes, source: str) -> Deferred[FileResult]:
        """One polled agency CSV, all rows or none."""
        try:
            rows = parse_agency_csv(data, source=source)
        except AgencyError as e:
            return succeed(FileResult(False, f"the agency answered an error: {e}"))
        except FileErrors as e:
            return succeed(FileResult(False, e.report()))
        received_at = now(self.reactor)
        lines = agency_lines(data)  # each row's line number and bytes, as the parser saw them
        messages = []
        for (line, raw), row in zip(lines, rows, strict=True):
            event = agency_row_to_canonical(
                row, raw=raw, source=f"{source}:{line}", received_at=received_at
            )
            messages.append(Received(event, line))
        d = self.ingest.apply_file(messages, "cvs.agency")
        return d.addCallback(lambda summary: FileResult(True, _summary(summary)))

    def services(self) -> list[IService]:

        services: list[IService] = []
        if self.config.files is not None:
            services.append(
                InboxWatcher(
                    "cvs",
                    self.config.files.inbox,
                    self.apply_file,
                    self.reactor,
                    self.config.files.poll_interval,
                )
            )
        if self.config.agency is not None:
            a = self.config.agency
            settings = AgencySettings(
                a.url,
                a.user_id,
                a.password,
                a.interval,
                a.lookback_days,
                a.margin_days,
                a.max_backoff,
                a.timeout,
            )
            services.append(AgencyPoller(settings, self.apply_agency_csv, self.reactor))
        if self.config.link is not None:
            assert self.tls is not None, "config checks that [tls] is present"
            link = self.config.link
            files = TLSFiles(
                link.ca or self.tls.ca,
                self.tls.certificate,
                self.tls.key,
                ca_option="tls.ca" if link.ca is None else "cvs.link.ca",
            )
            files.load()  # a missing or wrong file stops the daemon before it listens
            services.append(
                ListenerService(
                    "cvs-link",
                    link.listen,
                    lambda: listen_cvs_link(
                        self.reactor,
                        link.listen,
                        files,
                        self.submit,
                        link.heartbeat_timeout,
                        peers=link.peers,
                        max_unacked=link.max_unacked,
                        max_connections=link.max_connections,
                        handshake_timeout=link.handshake_timeout,
                    ),
                    self.reactor,
                )
            )
        return services


def slip(
    config: CvsConfig,
    biller: Biller,
    serial: int,
    *,
    reissue: int,
    amount: int,
    due_date: date | None,
    tax: Tax,
    today: date,
) -> Slip:
    """A bill's payment slip: its 44-digit barcode, with the revenue stamp flag."""
    stamp = stamp_required(
        amount=amount,
        taxable=tax.taxable,
        tax_amount=tax.tax_amount,
        thresholds=config.stamp_thresholds,
        on=today,
    )
    code = barcode.build(
        company_code=config.company_code,
        free_field=barcode.free_field_for(biller.code, serial),
        reissue=reissue,
        due=due_date,
        stamp=stamp,
        amount=amount,
        ceiling=config.ceiling,
    )
    return Slip(reissue, code.digits, amount, due_date, stamp)


@dataclass(frozen=True)
class CvsBills:
    """A CVS message names its bill by the barcode's bill key (company code + free field)."""

    company_code: str | None
    channel: Channel = Channel.CVS

    def lookup(self, event: CollectionEvent) -> tuple[str, str] | None:
        return ("cvs", event.bill_key)

    def match(self, conn: Connection, events: Sequence[CollectionEvent]) -> BillMatch | None:
        return match_cvs_keys("cvs", [e.bill_key for e in events])

    def billers(self, conn: Connection, events: Sequence[CollectionEvent]) -> dict[str, str]:
        """A barcode of no known bill still names its biller: the biller code that begins the
        free field behind our company code (the bill key is company code + free field)."""
        ours = self.company_code
        codes = {
            e.bill_key: barcode.split_free_field(e.bill_key.removeprefix(ours))[0]
            for e in events
            if ours and e.bill_key.startswith(ours)
        }
        ids = billers_by_codes(conn, sorted(set(codes.values())))
        return {key: ids[code] for key, code in codes.items() if code in ids}


@dataclass(frozen=True)
class CvsPayments:
    """A CVS payment's place is ``CHAIN-STORE``: the chain code and the store code."""

    wording: str = "コンビニエンスストア"

    def detail(self, store: str) -> dict[str, Any]:
        chain, _, store_code = store.partition("-")
        return {"store": {"chain": chain, "store_code": store_code}}

    def place(self, store: str) -> str:
        """The chain's name (or its code) and the store code."""
        code, _, store_code = store.partition("-")
        chain = chain_name(code) or f"チェーンコード {code}"
        return f"{chain} 店舗コード {store_code}" if store_code else chain


class Cvs:
    """The convenience-store network, for the registry."""

    name = "cvs"
    channel = Channel.CVS
    description = CvsPayments()

    def enabled(self, config: Config) -> bool:
        return config.cvs is not None

    def limit(self, config: Config) -> int:
        assert config.cvs is not None
        return config.cvs.ceiling

    def identify(
        self,
        config: Config,
        randbelow: Callable[[int], int],
        biller: Biller,
        serial: int,
        terms: BillTerms,
        today: date,
    ) -> Identifiers:
        """The first slip (reissue 0), and its bill key."""
        assert config.cvs is not None, "the cvs channel is off"
        first = slip(
            config.cvs,
            biller,
            serial,
            reissue=0,
            amount=terms.amount,
            due_date=terms.due_date,
            tax=terms.tax,
            today=today,
        )
        return Identifiers(first, None, barcode.bill_key_of(first.barcode))

    def finder(self, config: Config) -> CvsBills:
        return CvsBills(config.cvs.company_code if config.cvs else None)

    def start(self, wiring: Wiring) -> Started:
        config = wiring.config
        assert config.cvs is not None
        network = CvsNetwork(config.cvs, config.tls, wiring.ingest, wiring.reactor)
        return Started(network.services())


CVS = Cvs()
