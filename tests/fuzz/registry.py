"""The fuzz targets: every parser the outside world reaches, by name.

Each target names the function that checks one input (``module:function``). A check function
takes the input's bytes, hands them to the gateway as the outside world would, and returns
quietly when the gateway accepts the input or refuses it with the typed error its parser
documents; anything else it lets out (another exception, or an ``AssertionError`` of a property
the check tests) is a finding.

This module imports nothing of the gateway: the runner imports each target's module under
atheris's instrumentation (``atheris.instrument_imports``), and a module imported before that
would not be instrumented.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"  # committed: tests/fuzz/corpus/<target>/
REGRESSIONS = HERE / "regressions"  # committed: inputs that found a bug, named after it


@dataclass(frozen=True)
class Target:
    name: str
    check: str  # "module:function"
    what: str  # the parser and the errors it may raise
    max_len: int  # libFuzzer's -max_len: the longest input worth trying

    def load(self) -> Callable[[bytes], None]:
        module, function = self.check.split(":")
        check: Callable[[bytes], None] = getattr(importlib.import_module(module), function)
        return check

    @property
    def corpus(self) -> Path:
        return CORPUS / self.name

    @property
    def regressions(self) -> Path:
        return REGRESSIONS / self.name


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "cvs_record",
            "tests.fuzz.mappers:cvs_record",
            "gateway.mappers.cvs.mapper.parse_record (RecordError), then to_canonical and "
            "build_record, which must give back the same 120 bytes",
            256,
        ),
        Target(
            "cvs_file",
            "tests.fuzz.mappers:cvs_file",
            "gateway.mappers.cvs.mapper.parse_file (FileErrors), then the file's events",
            4096,
        ),
        Target(
            "cvs_agency",
            "tests.fuzz.mappers:cvs_agency",
            "gateway.mappers.cvs.agency.parse_agency_csv (FileErrors, AgencyError), then each "
            "row's event, and build_agency_csv of the rows, which must read back the same rows",
            4096,
        ),
        Target(
            "cvs_link",
            "tests.fuzz.links:cvs_link",
            "gateway.protocols.cvs.CvsLinkProtocol on a StringTransport: bytes from the agency; "
            "nothing may raise, every frame written is a well-formed AK, HA or HB",
            2048,  # several frames; a too-long one shows in its length prefix
        ),
        Target(
            "mpn_message",
            "tests.fuzz.mappers:mpn_message",
            "gateway.mappers.mpn.mapper.parse_message (RecordError), then build_message, which "
            "must give back the same bytes, the response and the canonical event",
            512,
        ),
        Target(
            "mpn_link",
            "tests.fuzz.links:mpn_link",
            "gateway.protocols.mpn.MpnLinkProtocol on a StringTransport: bytes from the center; "
            "nothing may raise, every message written has a readable header",
            2048,  # several frames; a too-long one shows in its length prefix
        ),
        Target(
            "zengin_file",
            "tests.fuzz.mappers:zengin_file",
            "gateway.mappers.zengin.mapper.parse_file (FileErrors), then the debit date "
            "(ValueError), the result's events and build_file",
            4096,
        ),
        Target(
            "bills_csv",
            "tests.fuzz.bodies:bills_csv",
            "gateway.billing.bulk.check_file over gateway.mappers.bills_csv (InvalidRequest), "
            "then the errors file the gateway writes",
            4096,
        ),
        Target(
            "api_json",
            "tests.fuzz.bodies:api_json",
            "a JSON request body as the API reads it (Call.json_body: Problem, InvalidRequest), "
            "then every body parser: bills, reissue, cancel, mandates, webhook endpoints, "
            "redelivery, fee plans, billers, refund cases (InvalidRequest)",
            2048,
        ),
        Target(
            "config",
            "tests.fuzz.config:config",
            "the TOML configuration as load_config reads it: tomllib, then "
            "gateway.config.parse_config (ConfigError)",
            16384,
        ),
    )
}
