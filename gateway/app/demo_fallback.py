"""``gateway-demo``'s failed debits falling back to a store payment (issue 22, docs/notices.md).

The water utility's fallback is ``cvs,payeasy`` (``gateway-admin biller set --fallback``), its
fallback and receipt notices go by SMS. The demo's bank answers one debit 資金不足 and one
stopped by its payer: the daemon reissues both bills for the store and Pay-easy (transfer taken
off), the customers get an SMS with the page URL at the simulated provider
(``python -m simulators.sms``, a process of its own like the other simulators), the page shows
the barcode, the agency's simulator pays them at stores over the 速報 link, the receipt SMS
follow, and the request files of the following debit dates carry neither bill.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from gateway import calendar
from gateway.app.process import DaemonProcess, admin_json, http


class SmsSimulator:
    """``python -m simulators.sms`` on ``port``, recording into ``record``."""

    def __init__(self, workdir: Path, port: int, key: str) -> None:
        self.record = workdir / "sms.jsonl"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulators.sms",
                "--port",
                str(port),
                "--key",
                key,
                "--record",
                str(self.record),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = json.loads(self.proc.stdout.readline())["url"]

    def messages(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        lines = self.record.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages()
            if len(found) >= count:
                return found
            time.sleep(0.2)
        raise RuntimeError(f"the simulated SMS provider got {len(self.messages())} of {count}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _masked(number: str) -> str:
    return f"{number[:3]}****{number[-4:]}"


def _events(daemon: DaemonProcess, auth: dict[str, str], kind: str) -> list[dict[str, Any]]:
    _, feed, _ = http("GET", daemon.api + "/v1/events?limit=500", None, auth)
    return [e["data"] for e in feed["data"] if e["type"] == kind]


def _wait(check: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not happen within {timeout:g}s")


@dataclass(frozen=True)
class Steps:
    """What the demo's other steps do that this one uses (gateway.app.demo's functions)."""

    say: Callable[[str], None]
    simulate: Callable[..., dict[str, Any]]  # (module, *args): a simulator's JSON summary
    applied: Callable[[Path, str], None]  # an inbox file taken into done/: its report shown
    show_ledger: Callable[[DaemonProcess, str], None]


def fall_back_to_stores(
    steps: Steps,
    daemon: DaemonProcess,
    workdir: Path,
    config: Path,
    key: str,
    link_port: int,
    sms: SmsSimulator,
    debit_date: date,
    failed: int,
) -> None:
    """Show the ``failed`` debits reissued for the store, their SMS and pages, their payment at
    stores, and that no later request file carries them."""
    say, simulate, applied, show_ledger = (
        steps.say,
        steps.simulate,
        steps.applied,
        steps.show_ledger,
    )
    auth = {"Authorization": f"Bearer {key}"}
    say("\n== demo-water: the failed debits fall back to the store and Pay-easy")

    def reissued() -> list[dict[str, Any]] | None:
        found = _events(daemon, auth, "bill.fallback_issued")
        return found if len(found) >= failed else None

    issued = _wait(reissued, "the fallback")
    for data in issued:
        bill, fb = data["bill"], data["fallback"]
        say(
            f"  bill.fallback_issued {bill['bill_no']}: debit of {fb['failed_debit_date']} "
            f"failed (result {fb['result_code']}) -> channels "
            f"+{','.join(fb['channels_added'])} -{','.join(fb['channels_removed'])}, "
            f"reissue {bill['reissue']}, due {bill['due_date']}"
        )
    for message in sms.wait_for(len(issued)):
        say(f"  SMS to {_masked(message['to'])} ({message['id']}): {message['text']}")
    _, first, _ = http("GET", f"{daemon.api}/v1/bills/{issued[0]['bill']['bill_no']}", None, auth)
    _, page, _ = http("GET", first["page_url"])
    marks = {"the barcode": "<svg", "the Pay-easy numbers": 'id="payeasy"', "a debit": "口座振替"}
    shows = [what for what, mark in marks.items() if mark in page]
    say(f"  its page {first['page_url']} shows {' and '.join(shows)}")

    say("$ python -m simulators.cvs ... --void 0 --double 0  (the customers pay at stores)")
    summary = simulate(
        "simulators.cvs",
        "--api",
        daemon.api,
        "--key",
        key,
        "--link",
        f"tcp:127.0.0.1:{link_port}",
        "--tls-dir",
        str(workdir / "tls"),
        "--inbox",
        str(workdir / "inbox" / "cvs-gs"),
        "--seed",
        "5",
        "--bills",
        "10",
        "--void",
        "0",
        "--double",
        "0",
        "--speed",
        "0",
    )
    say(f"  agency gs: {summary['paid']} paid at stores (速報, acks {summary['acks']})")
    applied(workdir / "inbox" / "cvs-gs" / Path(summary["file"]).name, "確報 file")
    for message in sms.wait_for(len(issued) + summary["paid"])[len(issued) :]:
        say(f"  SMS to {_masked(message['to'])}: {message['text']}")
    show_ledger(daemon, key)
    later = [calendar.next_business_day(debit_date)]
    later += [calendar.on_or_before(date.fromisoformat(d["bill"]["due_date"])) for d in issued]
    for day in sorted(set(later)):
        made = admin_json(config, "zengin", "request", "--date", day.isoformat())
        files = ", ".join(f"{Path(f['file']).name} ({f['records']})" for f in made["files"])
        say(f"$ gateway-admin zengin request --date {day}  -> {files or 'no debit to request'}")
    _, notices, _ = http("GET", daemon.api + "/v1/notices?limit=100", None, auth)
    states: dict[str, int] = {}
    for n in notices["data"]:
        label = f"{n['kind']} {n['medium']} {n['status']}"
        states[label] = states.get(label, 0) + 1
    say("  GET /v1/notices: " + ", ".join(f"{n} {label}" for label, n in states.items()))
