"""What the tests of deploy/ share: the rule and dashboard files, the metric names the daemon
exports, the real service in this process, and a real Prometheus (the Debian package
``prometheus``, which CI installs) that scrapes it with the project's rules."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import treq
import yaml
from prometheus_client.parser import text_string_to_metric_families
from twisted.application.service import MultiService
from twisted.internet.error import ConnectError
from twisted.internet.task import deferLater

from gateway.app.process import free_port
from gateway.config import load_config
from tests.conftest import Running

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus"
ALERTS = RULES / "alerts.yml"
RECORDING = RULES / "recording.yml"
RULE_TESTS = sorted((RULES / "tests").glob("*.yml"))
DASHBOARD = ROOT / "deploy" / "grafana" / "gateway.json"
RUNBOOK = ROOT / "docs" / "runbook.md"

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is missing (Debian package prometheus; .ci/run installs it)"
)
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is missing (Debian package prometheus)"
)

#: What Grafana puts in a dashboard's queries, as a checked query may read it.
DASHBOARD_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$job": "gateway",
    "$instance": ".*",
}


def reactor() -> Any:
    from twisted.internet import reactor as global_reactor  # noqa: TID251 - the tests' reactor

    return global_reactor


# --- the files -------------------------------------------------------------------------------


def rules(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def alert_rules() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules(ALERTS)}


def dashboard_exprs() -> list[str]:
    """Every query of the dashboard, its template variables replaced by values."""
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in DASHBOARD_VARIABLES.items():
                expr = expr.replace(name, value)
            exprs.append(expr)
    return exprs


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NAME_REGEX = re.compile(r'__name__\s*=~\s*"((?:[^"\\]|\\.)*)"')


def metric_names(expr: str) -> tuple[set[str], set[str]]:
    """(the metric names ``expr`` reads: the daemon's ``gateway_…`` and recorded ``…:…:…``,
    the ``__name__=~`` regexes it selects by). Label names and values, functions and
    keywords are left out: label values are quoted, and no label or function of the rules
    begins with ``gateway_`` or holds a colon."""
    regexes = set(_NAME_REGEX.findall(expr))
    bare = _QUOTED.sub('""', expr)
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # ranges [5m], subqueries [1h:1m]
    names = {token for token in _NAME.findall(bare) if token.startswith("gateway_") or ":" in token}
    return names, regexes


def exported_names(metrics_text: str) -> set[str]:
    """Every sample name the scraped families can have, whether or not a labelled family has
    a series yet: counters with ``_total``, histograms with ``_bucket``, ``_sum``, ``_count``."""
    names: set[str] = set()
    for family in text_string_to_metric_families(metrics_text):
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        elif family.type == "summary":
            names.update(family.name + suffix for suffix in ("", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def samples(metrics_text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The values of the samples called ``name``, by their sorted labels."""
    found = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def scrape(metrics_url: str) -> str:
    response = await treq.get(metrics_url + "/metrics")
    assert response.code == 200
    text: str = await response.text()
    return text


# --- the real service in this process ------------------------------------------------------


@dataclass
class Daemon:
    running: Running
    top: MultiService

    def services(self, kind: type) -> list[Any]:
        return [s for s in self.top if isinstance(s, kind)]


@contextlib.asynccontextmanager
async def daemon(tmp_path: Path, config: str) -> AsyncIterator[Daemon]:
    """make_service on ``config`` in this process (as tests/conftest.py's ``gateway``), its
    services kept at hand."""
    from gateway.app.service import make_service

    path = tmp_path / "gateway.toml"
    path.write_text(config, encoding="utf-8")
    loaded = load_config(path)
    top = make_service(loaded, reactor())
    top.startService()
    try:
        api = await top.getServiceNamed("api").listening  # type: ignore[attr-defined]
        metrics = await top.getServiceNamed("metrics").listening  # type: ignore[attr-defined]
        yield Daemon(
            Running(
                loaded,
                path,
                f"http://127.0.0.1:{api.getHost().port}",
                f"http://127.0.0.1:{metrics.getHost().port}",
            ),
            top,
        )
    finally:
        await top.stopService()


# --- a real Prometheus ----------------------------------------------------------------------


class Prometheus:
    """The Prometheus server scraping ``target`` (host:port) every second under the job name
    ``gateway``, with deploy/prometheus/alerts.yml and recording.yml evaluated every second."""

    def __init__(self, root: Path, target: str) -> None:
        assert PROMETHEUS is not None
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS), str(RECORDING)],
            "scrape_configs": [
                {"job_name": "gateway", "static_configs": [{"targets": [target]}]},
            ],
        }
        (root / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")
        self.log = root / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={root / 'prometheus.yml'}",
                    f"--storage.tsdb.path={root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def _get(self, path: str, **params: str) -> Any:
        response = await treq.get(self.url + path, params=params)
        body = await response.text()
        return json.loads(body) if response.code == 200 else None

    async def wait(self, what: str, check: Any, timeout: float = 60.0) -> Any:
        """Poll the async ``check`` until it gives something true; that value."""
        deadline = reactor().seconds() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            try:
                found = await check()
            except (ConnectError, ConnectionError):  # not listening yet
                found = None
            if found:
                return found
            if reactor().seconds() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await deferLater(reactor(), 0.25)

    async def value(self, expr: str) -> float | None:
        """The value of ``expr`` now (one series), or None."""
        doc = await self._get("/api/v1/query", query=expr)
        if not doc or not doc["data"]["result"]:
            return None
        return float(doc["data"]["result"][0]["value"][1])

    async def alerts(self, name: str) -> list[dict[str, Any]]:
        """The active (pending or firing) alerts called ``name``."""
        doc = await self._get("/api/v1/alerts")
        if not doc:
            return []
        return [a for a in doc["data"]["alerts"] if a["labels"]["alertname"] == name]

    async def scraped(self, expr: str, value: float) -> None:
        """Wait until Prometheus has scraped ``expr`` at ``value``, then one evaluation more."""
        await self.wait(f"{expr} == {value}", lambda: self._is(expr, value))
        await deferLater(reactor(), 2.5)

    async def _is(self, expr: str, value: float) -> bool:
        return await self.value(expr) == value

    async def active(
        self, name: str, states: Iterable[str] = ("pending", "firing")
    ) -> dict[str, Any]:
        """Wait until ``name`` is active in one of ``states``; that alert."""
        wanted = set(states)

        async def check() -> dict[str, Any] | None:
            return next((a for a in await self.alerts(name) if a["state"] in wanted), None)

        found: dict[str, Any] = await self.wait(f"alert {name} {sorted(wanted)}", check)
        return found


@contextlib.contextmanager
def prometheus(root: Path, metrics_url: str) -> Any:
    server = Prometheus(root, metrics_url.removeprefix("http://"))
    try:
        yield server
    finally:
        server.stop()
