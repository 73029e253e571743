"""The Prometheus rules (deploy/prometheus/), the Grafana dashboard (deploy/grafana/) and the
runbook (docs/runbook.md) hold together, and name only what the daemon exports:

- promtool accepts the rules and passes their unit tests (deploy/prometheus/tests/);
- every alert has a severity, a runbook section under its own name, and a unit test in which
  it fires; every ``gateway_*_run_failures_total`` the daemon exports has an alert;
- every metric a rule or a dashboard query names is one the real service exports (scraped from
  /metrics, families without a series yet included), or a recording rule of recording.yml;
- the dashboard is valid JSON and promtool parses each of its queries;
- every ``gateway-admin`` command the runbook gives exists.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

import pytest_twisted
import yaml

import gateway.app.reload  # noqa: F401 - registers what twistd's plugin adds (SIGHUP reloads)
from gateway.app.admin.commands import parser as admin_parser
from tests.conftest import Running
from tests.deploy.promserver import (
    ALERTS,
    DASHBOARD,
    PROMTOOL,
    RECORDING,
    RULE_TESTS,
    RULES,
    RUNBOOK,
    alert_rules,
    dashboard_exprs,
    exported_names,
    metric_names,
    needs_promtool,
    rules,
    scrape,
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=300, cwd=RULES.parent.parent
    )


# --- promtool --------------------------------------------------------------------------------


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    done = promtool("check", "rules", str(ALERTS), str(RECORDING))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@needs_promtool
def test_the_rules_pass_their_unit_tests() -> None:
    done = promtool("test", "rules", *map(str, RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout + done.stderr


@needs_promtool
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    doc = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query:{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout


# --- the alerts, their tests and runbook ------------------------------------------------------


def test_every_alert_has_a_severity_a_runbook_section_and_a_unit_test_where_it_fires() -> None:
    alerts = alert_rules()
    runbook = RUNBOOK.read_text(encoding="utf-8")
    fired = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    assert len(alerts) >= 30
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{name}", name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert f'<a id="{name}"></a>' in runbook, f"docs/runbook.md has no section {name}"
        assert re.search(rf"^### {name}$", runbook, re.M), f"docs/runbook.md: no heading {name}"
        assert name in fired, f"no unit test in deploy/prometheus/tests fires {name}"
    sections = set(re.findall(r'<a id="(Gateway\w+)"></a>', runbook))
    assert sections == set(alerts), "runbook sections without an alert"


def test_every_alert_and_recording_rule_reads_recorded_series_that_exist() -> None:
    recorded = {rule["record"] for rule in rules(RECORDING)}
    for rule in rules(ALERTS) + rules(RECORDING):
        names, _ = metric_names(rule["expr"])
        assert {n for n in names if ":" in n} <= recorded, rule


# --- what the daemon exports -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_every_metric_the_rules_and_the_dashboard_name_is_exported(
    gateway: Running,
) -> None:
    exported = exported_names(await scrape(gateway.metrics))
    recorded = {rule["record"] for rule in rules(RECORDING)}
    sources = {f"{ALERTS.name}: {r['alert']}": r["expr"] for r in rules(ALERTS)}
    sources |= {f"{RECORDING.name}: {r['record']}": r["expr"] for r in rules(RECORDING)}
    sources |= {f"{DASHBOARD.name}: query {i}": e for i, e in enumerate(dashboard_exprs())}
    named = set()
    for where, expr in sources.items():
        names, regexes = metric_names(expr)
        for name in names:
            if ":" in name:
                assert name in recorded, f"{where}: {name} is not a recording rule"
            else:
                assert name in exported, f"{where}: the daemon does not export {name}"
                named.add(name)
        for regex in regexes:
            assert any(re.fullmatch(regex, n) for n in exported), f"{where}: {regex} names nothing"
    # The names appear where they should: the new gauges are there, and a typo would not be.
    assert "gateway_tls_certificate_not_after_seconds" in named
    assert "gateway_ledger_pending_max_age_seconds" in named
    assert "gateway_no_such_metric_total" not in exported


@pytest_twisted.ensureDeferred
async def test_every_job_failure_counter_the_daemon_exports_has_an_alert(gateway: Running) -> None:
    exported = exported_names(await scrape(gateway.metrics))
    counters = {n for n in exported if re.fullmatch(r"gateway_\w+_run_failures_total", n)}
    assert len(counters) >= 7, counters
    alerted = set()
    for rule in rules(ALERTS):
        alerted |= metric_names(rule["expr"])[0]
    assert counters <= alerted, f"job failures without an alert: {sorted(counters - alerted)}"


# --- the dashboard ------------------------------------------------------------------------------


def test_the_dashboard_is_grafana_json_with_a_query_in_every_panel() -> None:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert doc["uid"] and doc["title"] and doc["schemaVersion"] >= 30
    variables = {v["name"] for v in doc["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= variables
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    titles = set()
    for panel in doc["panels"]:
        if panel["type"] == "row":
            titles.add(panel["title"])
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
            used = set(re.findall(r"\$\w+", target["expr"]))
            assert used <= {"$job", "$instance", "$__rate_interval", "$__interval"}, used
    # What issue 19 asks the dashboard to show.
    assert {"Intake per network", "Ledger", "Refund cases", "Webhooks"} <= titles
    assert {"Settlement and jobs", "Store and API", "Daemon and links"} <= titles


# --- the runbook ---------------------------------------------------------------------------------


def _commands(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_gateway_admin_command_of_the_runbook_exists() -> None:
    top = _commands(admin_parser())
    text = RUNBOOK.read_text(encoding="utf-8")
    used = re.findall(r"gateway-admin(?:\s+-c\s+\S+)?\s+([a-z-]+)(?:\s+([a-z-]+))?", text)
    assert len(used) >= 10
    for command, action in used:
        assert command in top, f"gateway-admin {command}"
        actions = _commands(top[command])
        if actions:
            assert action in actions, f"gateway-admin {command} {action}"
