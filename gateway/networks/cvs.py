"""The convenience-store network's ways in.

:class:`CvsNetwork` joins the CVS link, the result-file inbox and the agency CSV pull to the
ledger (gateway.ingest) through the cvs mappers. ``services()`` lists what make_service starts
for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from sqlalchemy.engine import Connection
from twisted.application.service import IService
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.chain_rules import ChainRules, chain_of_store, receipt_stamped
from gateway.clock import now
from gateway.config import Config, CvsAgency, CvsConfig, CvsLinkConfig, TLSConfig
from gateway.errors import Conflict, FileErrors, RecordError
from gateway.infra.crashpoints import crash_point
from gateway.infra.reload import ServerTLS
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
from gateway.mappers.cvs.stamp import DEFAULT_STAMP_THRESHOLDS, stamp_required, threshold_on
from gateway.model import (
    Biller,
    BillTerms,
    Channel,
    CollectionEvent,
    Payment,
    Slip,
    Tax,
    business_date,
)
from gateway.networks.base import Started, Wiring
from gateway.protocols.cvs import listen_cvs_link
from gateway.protocols.cvs_agency import AgencyPoller, AgencySettings
from gateway.protocols.inbox import FileResult, InboxWatcher
from gateway.protocols.link_state import LinkState
from gateway.protocols.listen import ListenerService
from gateway.store.billers import billers_under_agency
from gateway.store.bills import BillMatch, Identifiers, match_cvs_keys

log = Logger()

_PEERS = "cvs.link.peers"


def _summary(summary: dict[str, int]) -> str:
    total = sum(summary.values())
    parts = ", ".join(f"{k} {v}" for k, v in sorted(summary.items()))
    return f"applied: {total} message(s): {parts}" if total else "applied: no messages"


class CvsNetwork:
    """One agency's ways in: its link, its result-file inbox, its CSV pull.

    Every message is of this agency: a 速報, a 確報 file or a CSV row whose barcode carries
    another maker code is refused (the record with ``10``, the file or the pull as a whole,
    naming each line), and every accepted one is recorded with the agency's id."""

    def __init__(
        self, config: CvsAgency, tls: TLSConfig | None, ingest: Ingest, reactor: Any
    ) -> None:
        self.config = config
        self.tls = tls
        self.ingest = ingest
        self.reactor = reactor
        self.link_commits = ingest.committer("cvs.link.commit")
        # what its services are called (inbox metrics, listener logs): the single [cvs] of
        # older files keeps the names it had
        self.label = "cvs" if config.id == "default" else f"cvs-{config.id}"

    def _foreign(self, record: int, digits: str) -> RecordError | None:
        """The error for a barcode of another agency (None: it is this agency's)."""
        code = barcode.company_code_of(digits)
        if code == self.config.company_code:
            return None
        return RecordError(
            network="cvs",
            record=record,
            field="company_code",
            value=code,
            reason=f"is not agency {self.config.id}'s company code ({self.config.company_code})",
        )

    def _ours(self, event: CollectionEvent) -> CollectionEvent:
        return replace(event, agency=self.config.id)

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
        foreign = self._foreign(0, parsed.barcode)
        if foreign is not None:
            log.warn(
                "cvs link of agency {agency}: record refused ({source}): {error}",
                agency=self.config.id,
                source=source,
                error=str(foreign),
            )
            return succeed("10")
        event = to_canonical(parsed, raw=record, source=source, received_at=now(self.reactor))
        d = self.link_commits.submit(Received(self._ours(event)))

        def failed(failure: Failure) -> str:
            log.failure(
                "cvs link: record not committed ({source}); answering 90", failure, source=source
            )
            return "90"

        def committed(_: object) -> str:
            crash_point("cvs.after_commit")  # a test-only switch: does nothing in production
            return "00"

        return d.addCallbacks(committed, failed)

    def apply_file(self, name: str, data: bytes) -> Deferred[FileResult]:
        """A 確報 result file, all records or none."""
        try:
            parsed = parse_file(data, source=name, ceiling=barcode.MAX_AMOUNT)
        except FileErrors as e:
            return succeed(FileResult(False, e.report()))
        foreign = [
            error
            for line, rec in enumerate(parsed.records, 2)
            if (error := self._foreign(line, rec.barcode)) is not None
        ]
        if parsed.company_code != self.config.company_code:
            foreign.insert(0, self._header_error(parsed.company_code))
        if foreign:
            return succeed(FileResult(False, FileErrors(name, foreign).report()))
        events = parsed.events(name=name, received_at=now(self.reactor))
        messages = [Received(self._ours(ev), line) for line, ev in enumerate(events, 2)]
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
        foreign = [
            error
            for (line, _), row in zip(lines, rows, strict=True)
            if (error := self._foreign(line, row.barcode)) is not None
        ]
        if foreign:
            return succeed(FileResult(False, FileErrors(source, foreign).report()))
        messages = []
        for (line, raw), row in zip(lines, rows, strict=True):
            event = agency_row_to_canonical(
                row, raw=raw, source=f"{source}:{line}", received_at=received_at
            )
            messages.append(Received(self._ours(event), line))
        d = self.ingest.apply_file(messages, "cvs.agency")
        return d.addCallback(lambda summary: FileResult(True, _summary(summary)))

    def _header_error(self, code: str) -> RecordError:
        return RecordError(
            network="cvs",
            record=1,
            field="company_code",
            value=code,
            reason=f"the header is not of agency {self.config.id} ({self.config.company_code})",
        )

    def services(self) -> list[IService]:

        services: list[IService] = []
        if self.config.files is not None:
            services.append(
                InboxWatcher(
                    self.label,
                    self.config.files.inbox,
                    self.apply_file,
                    self.reactor,
                    self.config.files.poll_interval,
                )
            )
        if self.config.pull is not None:
            a = self.config.pull
            settings = AgencySettings(
                a.url,
                a.user_id,
                a.password,
                a.interval,
                a.lookback_days,
                a.margin_days,
                a.max_backoff,
                a.timeout,
                agency=self.config.id,
            )
            services.append(AgencyPoller(settings, self.apply_agency_csv, self.reactor))
        if self.config.link is not None:
            assert self.tls is not None, "config checks that [tls] is present"
            services.append(CvsLinkListener(self, self.config.link, self.tls))
        return services


def link_files(tls: TLSConfig, link: CvsLinkConfig, label: str) -> TLSFiles:
    """The TLS files of an agency's link: ``[tls]``, with the link's own CA if it has one."""
    return TLSFiles(
        link.ca or tls.ca,
        tls.certificate,
        tls.key,
        ca_option="tls.ca" if link.ca is None else "cvs.link.ca",
        link=label,
    )


class CvsLinkListener(ListenerService):
    """An agency's 速報 link. A reload (SIGHUP, gateway.app.reload) reads its TLS files and
    ``peers`` again for the connections made after it; established connections stay up, and
    what else changed in ``[cvs.link]`` waits for a restart."""

    def __init__(self, network: CvsNetwork, link: CvsLinkConfig, tls: TLSConfig) -> None:
        self.agency = network.config.id
        self.label = network.label
        # A missing or wrong file stops the daemon before it listens.
        self.tls = ServerTLS(link_files(tls, link, self.label), link.peers, option=_PEERS)
        self.state = LinkState(network.reactor)  # open while the agency holds a connection
        super().__init__(
            f"{self.label}-link",
            link.listen,
            lambda: listen_cvs_link(
                network.reactor,
                link.listen,
                self.tls,
                network.submit,
                link.heartbeat_timeout,
                max_unacked=link.max_unacked,
                max_connections=link.max_connections,
                handshake_timeout=link.handshake_timeout,
                state=self.state,
                reuse_port=link.reuse_port,
            ),
            network.reactor,
            reuse_port=link.reuse_port,
        )

    def prepare_reload(self, config: Config) -> Callable[[], str]:
        """Check the new files and peers of this agency's link (:class:`ConfigError` if one is
        wrong); the function returned puts them in force and says what it did."""
        agencies = config.cvs.agencies if config.cvs is not None else ()
        agency = next((a for a in agencies if a.id == self.agency), None)
        if agency is None or agency.link is None or config.tls is None:
            return lambda: f"{self.label} link kept (gone from the file: a restart removes it)"
        apply = self.tls.prepare(link_files(config.tls, agency.link, self.label), agency.link.peers)

        def applied() -> str:
            apply()
            return f"{self.label} link (peers {', '.join(self.tls.peers)})"

        return applied


def slip(
    config: CvsAgency,
    biller: Biller,
    serial: int,
    *,
    reissue: int,
    amount: int,
    due_date: date | None,
    tax: Tax,
    today: date,
) -> Slip:
    """A bill's payment slip of the agency ``config``: its 44-digit barcode (the agency's company
    code, the biller's digits as the agency lays them out, the serial), with the revenue stamp
    flag. A bill without a due date gets ``999999`` where the agency takes slips without one;
    :class:`Conflict` naming ``due_date`` where it does not."""
    if due_date is None and not config.no_deadline:
        raise Conflict(
            f"agency {config.id} takes no slip without a deadline: give the bill a due_date",
            field="due_date",
        )
    stamp = stamp_required(
        amount=amount,
        taxable=tax.taxable,
        tax_amount=tax.tax_amount,
        thresholds=config.stamp_thresholds,
        on=today,
    )
    code = barcode.build(
        company_code=config.company_code,
        free_field=config.layout.free_field(config.code_of(biller), serial),
        reissue=reissue,
        due=due_date,
        stamp=stamp,
        amount=amount,
        ceiling=config.ceiling,
    )
    return Slip(reissue, code.digits, amount, due_date, stamp)


@dataclass(frozen=True)
class CvsBills:
    """A CVS message names its bill by the barcode's bill key (company code + free field),
    unique across agencies since their company codes are."""

    config: CvsConfig | None
    channel: Channel = Channel.CVS

    def lookup(self, event: CollectionEvent) -> tuple[str, str] | None:
        return ("cvs", event.bill_key)

    def match(self, conn: Connection, events: Sequence[CollectionEvent]) -> BillMatch | None:
        return match_cvs_keys("cvs", [e.bill_key for e in events])

    def billers(self, conn: Connection, events: Sequence[CollectionEvent]) -> dict[str, str]:
        """A barcode of no known bill still names its biller: the agency by the company code,
        then the biller by that agency's layout of the free field (billing.billers)."""
        if self.config is None:
            return {}
        wanted: dict[str, dict[str, str]] = {}  # agency id → bill key → biller code
        agencies = {}
        for e in events:
            company_code, free_field = barcode.split_bill_key(e.bill_key)
            agency = self.config.agency_of_code(company_code)
            if agency is None:
                continue
            code = agency.layout.biller_code(free_field)
            if code is not None:
                wanted.setdefault(agency.id, {})[e.bill_key] = code
                agencies[agency.id] = agency
        found: dict[str, str] = {}
        for agency_id, codes in wanted.items():
            agency = agencies[agency_id]
            ids = billers_under_agency(
                conn,
                agency_id,
                default=agency_id == self.config.default_agency,
                codes=sorted(set(codes.values())),
                assigned=agency.codes_per_biller,
            )
            found.update({key: ids[code] for key, code in codes.items() if code in ids})
        return found

    def judge(self, payment: Payment, rules: ChainRules) -> Payment:
        """A new store payment as its biller's chain rules (gateway.chain_rules) see it:
        ``chain_accepted`` — is the chain that took it one the biller accepts — and
        ``stamped`` — did that chain stamp the receipt: when the slip's 印紙フラグ asked for
        it, or at a chain that stamps every receipt of the threshold or more whatever the tax,
        when the amount reaches the threshold in force (its agency's ``stamp_thresholds``) on
        the day it was paid."""
        flag = payment.event_key[barcode.STAMP_DIGIT - 1 : barcode.STAMP_DIGIT] == "1"
        chain = chain_of_store(payment.store)
        if chain is None:
            return replace(payment, stamped=flag)
        thresholds = DEFAULT_STAMP_THRESHOLDS
        if self.config is not None:
            try:
                thresholds = self.config.agency(payment.agency).stamp_thresholds
            except KeyError:  # an agency taken out of the configuration: the defaults
                pass
        threshold = threshold_on(thresholds, business_date(payment.paid_at))
        stamped = receipt_stamped(
            slip_flag=flag,
            stamps_all=rules.stamps_all(chain),
            amount=payment.amount,
            threshold=None if threshold is None else threshold.threshold,
        )
        return replace(payment, chain_accepted=rules.accepts(chain), stamped=stamped)


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
            config.cvs.agency(biller.cvs_agency),
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
        return CvsBills(config.cvs)

    def start(self, wiring: Wiring) -> Started:
        config = wiring.config
        assert config.cvs is not None
        services: list[IService] = []
        for agency in config.cvs.agencies:
            network = CvsNetwork(agency, config.tls, wiring.ingest, wiring.reactor)
            services.extend(network.services())
        links = [s for s in services if isinstance(s, CvsLinkListener)]
        if not links:
            return Started(services)
        # /readyz: each agency's 速報 link, open while the agency holds a connection
        return Started(services, lambda: {"cvs": {k.agency: k.state.document() for k in links}})


CVS = Cvs()
