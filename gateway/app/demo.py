"""``gateway-demo``: the daemon on SQLite, two billers, bills registered over HTTP.

It runs the real programs as an operator and a biller's system would: ``gateway-admin`` to
migrate and onboard, ``twistd -n gateway`` as the daemon, HTTP for the bills. It prints each
bill's barcode, Pay-easy numbers and page URL, the events feed and a few metrics, then stops
the daemon with SIGTERM (``--keep-running`` leaves it up until Ctrl-C).

The center is connected to two convenience-store agencies (``[[cvs.agencies]]``): "gs", which
gave the center one code for all its billers, and "kessai", which gives each biller its own; the
gas company is under gs, the school under kessai. Each agency, simulated, pays its billers' bills
at random chains and stores over its own mutual-TLS 速報 link (voiding some, paying some twice)
and delivers a 確報 file into its own inbox, and the demo prints every bill's state, its payments
(a store payment with the agency it came from), the refund cases and the events feed.
Then the MPN center simulator (the banks behind it) asks about the bills still open and pays them
through Pay-easy (照会, 消込, some 再送確認 and 取消, a wrong 確認番号 tried first). Last, a water
utility collects by bank account transfer: mandates registered over the API, the Zengin request
file of a debit date written by ``gateway-admin zengin request``, the simulated bank debiting
(some accounts short of funds, one stopped by its payer) and its result file applied from the
inbox. Its fallback after a failed debit is the store and Pay-easy: the two bills whose debits
failed are reissued for them, their customers get an SMS with the page URL at the simulated SMS
provider, pay at stores, and no later request file carries them (gateway.app.demo_fallback).
Then every biller gets a contract (a fee plan that began last month): last month is
settled and its PDF statement written, and this month's settlement is shown as it stands.
Last, the month is closed on the demo's own clock (gateway.app.demo_month): settled, its payout
file paid by the simulated bank, the center's bank statement imported and reconciled to zero
open items (one remittance planted a bank day late, matched as late).
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import shutil
import subprocess
import sys
import time
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gateway import calendar
from gateway.app.demo_data import (
    AGENCIES,
    AGENCY_OF,
    BANK_CODES,
    BILLERS,
    CONFIG,
    DEMO_PLAN,
    SEEDS,
    WATER,
    WATER_CUSTOMERS,
    WATER_SETTINGS,
    remitters_toml,
)
from gateway.app.demo_fallback import SmsSimulator, Steps, fall_back_to_stores
from gateway.app.demo_month import close_month
from gateway.app.process import DaemonProcess, admin, admin_json, free_port, http
from gateway.mappers.zengin.mapper import parse_file
from gateway.model import JST


def _pad(text: str, width: int) -> str:
    """``text`` padded to ``width`` terminal columns (a full-width character takes two)."""
    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(width - used, 0)


def say(text: str = "") -> None:
    print(text, flush=True)


def bills_for(biller_id: str, today: datetime) -> list[dict[str, Any]]:
    def due(days: int) -> str:
        return (today + timedelta(days=days)).date().isoformat()

    if biller_id == "demo-gas":
        month = f"{today.month}月分 ガス料金"
        return [
            {
                "bill_no": f"GAS-{today:%Y%m}-{n:04d}",
                "amount": amount,
                "due_date": due(days),
                "channels": ["cvs", "payeasy", "transfer"],
                "customer": {
                    "customer_no": f"G{n:05d}",
                    "name": name,
                    "kana": kana,
                    "email": f"customer{n}@example.jp",
                },
                "tax": {"taxable": True, "tax_amount": amount * 10 // 110},
                "description": month,
            }
            for n, amount, days, name, kana in (
                (1, 5_400, 20, "山田 太郎", "ﾔﾏﾀﾞ ﾀﾛｳ"),
                (2, 12_980, 20, "佐藤 花子", "ｻﾄｳ ﾊﾅｺ"),
                (3, 3_300, 10, "鈴木 一郎", "ｽｽﾞｷ ｲﾁﾛｳ"),
                (4, 8_800, 20, "田中 美咲", "ﾀﾅｶ ﾐｻｷ"),
                (5, 4_620, 20, "伊藤 健", "ｲﾄｳ ｹﾝ"),
                (6, 15_730, 20, "渡辺 陽子", "ﾜﾀﾅﾍﾞ ﾖｳｺ"),
                (7, 6_050, 20, "中村 翔", "ﾅｶﾑﾗ ｼﾖｳ"),
            )
        ]
    # An enrolment fee above the CVS ceiling (¥300,000) can only be paid through Pay-easy.
    return [
        {
            "bill_no": f"SCH-{today:%Y}-{kind}-{n:03d}",
            "amount": amount,
            "due_date": due(30),
            "channels": channels,
            "customer": {"customer_no": f"S{n:04d}", "name": name},
            "description": text,
        }
        for n, kind, amount, channels, name, text in (
            (1, "TUITION", 55_000, ["cvs", "payeasy"], "高橋 美咲", "後期授業料"),
            (2, "TUITION", 280_000, ["cvs", "payeasy"], "田中 健", "後期授業料"),
            (3, "ENROL", 450_000, ["payeasy"], "佐々木 大翔", "入学金"),
        )
    ]


def run(workdir: Path, keep_running: bool) -> int:
    CVS_RUNS.clear()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    api_port, metrics_port, mpn_port, sms_port = (free_port() for _ in range(4))
    sms_key = secrets.token_urlsafe(24)
    links = {agency: free_port() for agency in AGENCIES}  # each agency's 速報 link
    config = workdir / "gateway.toml"
    config.write_text(
        CONFIG.format(
            api=api_port,
            metrics=metrics_port,
            link_gs=links["gs"],
            link_kessai=links["kessai"],
            mpn=mpn_port,
            number_key=secrets.token_hex(32),
            secret_key=base64.b64encode(secrets.token_bytes(32)).decode(),
            sms=sms_port,
            sms_key=sms_key,
        )
        + remitters_toml(),
        encoding="utf-8",
    )
    config.chmod(0o600)  # it holds [secrets] key
    say(f"== gateway-demo in {workdir}  (config: {config})")

    say("\n$ gateway-admin migrate")
    migrated = admin_json(config, "migrate")
    say(f"  schema {migrated['from']} -> {migrated['to']}")
    say("$ gateway-admin certs make tls   (for the network links)")
    admin(config, "certs", "make", str(workdir / "tls"))
    keys: dict[str, str] = {}
    for biller_id, name, kana in BILLERS:
        agency, code = AGENCY_OF[biller_id]
        contract = ["--cvs-agency", agency, *(["--cvs-code", code] if code else [])]
        made = admin_json(
            config, "biller", "create", "--id", biller_id, "--name", name, "--kana", kana, *contract
        )
        keys[biller_id] = admin_json(config, "key", "create", "--biller", biller_id)["key"]
        say(
            f"$ gateway-admin biller create --id {biller_id} ... {' '.join(contract)}  -> code "
            f"{made['code']}, channels {','.join(made['channels'])}; API key issued (shown once, "
            "kept here)"
        )
        cvs = made["cvs"]
        say(
            f"  convenience stores through agency {cvs['agency']}: its slips start "
            f"91 {cvs['company_code']} {cvs['prefix']}"
        )

    say(f"\n$ python -m simulators.sms --port {sms_port} ...  (the SMS provider, simulated)")
    sms = SmsSimulator(workdir, sms_port, sms_key)
    say(f"\n$ twistd -n gateway -c {config.name}")
    daemon = DaemonProcess.start(config, api_port, metrics_port, workdir / "twistd.log")
    try:
        daemon.wait("/readyz")
        say(f"  merchant API {daemon.api}   metrics {daemon.metrics}/metrics   log {daemon.log}")
        now = datetime.now(JST)
        for biller_id, _, _ in BILLERS:
            say(f"\n== {biller_id}: registering bills with POST /v1/bills")
            auth = {
                "Authorization": f"Bearer {keys[biller_id]}",
                "Content-Type": "application/json",
            }
            for body in bills_for(biller_id, now):
                headers = dict(auth, **{"Idempotency-Key": f"demo-{body['bill_no']}"})
                status, bill, _ = http("POST", daemon.api + "/v1/bills", body, headers)
                if status != 201:
                    raise RuntimeError(f"POST /v1/bills {body['bill_no']}: {status} {bill}")
                show(bill)
            if biller_id == "demo-gas":
                demonstrate_rules(daemon, auth, bills_for(biller_id, now)[0])
            status, feed, _ = http("GET", daemon.api + "/v1/events?after=0", None, auth)
            say("  events feed: " + ", ".join(f"#{e['seq']} {e['type']}" for e in feed["data"]))
        for biller_id, _, _ in BILLERS:
            agency = AGENCY_OF[biller_id][0]
            pay_at_stores(daemon, workdir, agency, links[agency], biller_id, keys[biller_id])
            pay_through_payeasy(daemon, workdir, mpn_port, biller_id, keys[biller_id])
            show_ledger(daemon, keys[biller_id])
        say("\n== metrics (excerpt of " + daemon.metrics + "/metrics)")
        _, text, _ = http("GET", daemon.metrics + "/metrics")
        for line in str(text).splitlines():
            if (
                line.startswith(
                    (
                        "gateway_http_requests_total{",
                        "gateway_ingest_messages_total{",
                        "gateway_cvs_link_acks_total{",
                        "gateway_refund_cases",
                        "gateway_mpn_answers_total{",
                        "gateway_zengin_",
                    )
                )
                and not line.endswith(" 0.0")
                and "_created" not in line
            ):
                say("  " + line)
        debit_by_transfer(daemon, workdir, config, links["gs"], sms)
        settle_and_report(daemon, workdir, config, keys)
        close_month(say, workdir, config, CVS_RUNS)
        if keep_running:
            say("\nThe daemon keeps running; Ctrl-C stops it.")
            try:
                while daemon.proc is not None and daemon.proc.poll() is None:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
    finally:
        rc = daemon.stop()
        sms.stop()
        say(f"\n$ kill -TERM <twistd>  -> {'stopped cleanly' if rc == 0 else f'exit {rc}'}")
    return 0 if rc == 0 else 1


# Each CVS agency simulator's run (its agency, its summary): what it remitted, for the bank
# statement at the month's close (gateway.app.demo_month).
CVS_RUNS: list[tuple[str, dict[str, Any]]] = []


def simulate(module: str, *args: str) -> dict[str, Any]:
    """Run a network simulator's command; its JSON summary, or the reason it failed."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    summary: dict[str, Any] = json.loads(proc.stdout)
    if module == "simulators.cvs":
        inbox = Path(args[args.index("--inbox") + 1]).name  # inbox/cvs-<agency>
        CVS_RUNS.append((inbox.removeprefix("cvs-"), summary))
    return summary


def pay_at_stores(
    daemon: DaemonProcess, workdir: Path, agency: str, link_port: int, biller_id: str, key: str
) -> None:
    """The biller's agency, simulated, pays its open bills: 速報 over that agency's mutual-TLS
    link, some voided, some paid twice, then a 確報 file into that agency's inbox."""
    say(
        f"\n== {biller_id}: customers pay at convenience stores; agency {agency} reports them "
        "(python -m simulators.cvs)"
    )
    inbox = workdir / "inbox" / f"cvs-{agency}"
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
        str(inbox),
        "--seed",
        str(SEEDS[biller_id]),
        "--bills",
        "10",
        "--void",
        "0.25",
        "--double",
        "0.34",
        "--speed",
        "0",
    )
    say(
        f"  agency: {summary['paid']} payments sent as 速報 (acks {summary['acks']}), "
        f"{summary['voided']} voided (速報取消), {summary['double']} bill(s) paid twice, "
        f"{summary['confirmed']} confirmed in the 確報 file"
    )
    applied(inbox / Path(summary["file"]).name, "確報 file")


def applied(dropped: Path, what: str) -> None:
    """Wait until the daemon's inbox has taken ``dropped`` into done/; print its report."""
    done = dropped.parent / "done" / dropped.name
    for _ in range(100):
        if done.exists():
            break
        time.sleep(0.1)
    else:
        raise RuntimeError(f"the {what} {dropped.name} was not applied")
    report = done.with_name(done.name + ".report.txt").read_text(encoding="utf-8").strip()
    say(f"  inbox: {done.name} -> done/  ({report})")


def pay_through_payeasy(
    daemon: DaemonProcess, workdir: Path, mpn_port: int, biller_id: str, key: str
) -> None:
    """The MPN center simulator (the banks behind it) asks about the bills still open and pays
    them: 照会, 消込, some 再送確認, some 取消, some paid twice, wrong 確認番号 tried first."""
    say(f"\n== {biller_id}: customers pay the rest through Pay-easy (python -m simulators.mpn)")
    summary = simulate(
        "simulators.mpn",
        "--listen",
        f"tcp:{mpn_port}:interface=127.0.0.1",
        "--tls-dir",
        str(workdir / "tls"),
        "--api",
        daemon.api,
        "--key",
        key,
        "--seed",
        str(SEEDS[biller_id]),
        "--bills",
        "10",
        "--rate",
        "0",
        # one business day, one center: each run continues where the one before left off
        "--first-serial",
        str(1000 * (1 + list(SEEDS).index(biller_id))),
    )
    say(
        f"  center: {summary['payments']} 消込 for {summary['bills']} open bill(s), "
        f"{summary['voided']} cancelled (取消), double-paid: {summary['double_paid'] or 'none'}; "
        f"answers {summary['answers']}; every answer as expected: {not summary['mismatches']}"
    )


def debit_by_transfer(
    daemon: DaemonProcess, workdir: Path, config: Path, link_port: int, sms: SmsSimulator
) -> None:
    """A water utility collects by account transfer: mandates, the request file of a debit
    date, the simulated bank, its result file through the inbox; the failed debits fall back to
    the store (gateway.app.demo_fallback)."""

    biller_id, name, kana = WATER
    say(f"\n== {biller_id}: monthly water charges by bank account transfer (口座振替)")
    admin_json(config, "biller", "create", "--id", biller_id, "--name", name, "--kana", kana)
    contract = admin_json(
        config,
        "biller",
        "zengin",
        "--id",
        biller_id,
        "--consignor-code",
        "4400012345",
        "--account",
        "0005-135-1-7777777",
    )
    say(
        f"$ gateway-admin biller zengin --id {biller_id} --consignor-code 4400012345 ...  -> "
        f"委託者 {contract['consignor_name']}, bank {contract['bank']}, {contract['branch']}"
    )
    made = admin_json(config, "biller", "set", "--id", biller_id, *WATER_SETTINGS)
    say(
        f"$ gateway-admin biller set --id {biller_id} {' '.join(WATER_SETTINGS)}  -> fallback "
        f"{','.join(made['fallback']['ways'])}, fallback notice by "
        f"{','.join(made['notices']['fallback'])}"
    )
    key = admin_json(config, "key", "create", "--biller", biller_id)["key"]
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    day = calendar.add_business_days(datetime.now(JST).date(), 3)
    last = WATER_CUSTOMERS[-1][0]
    for customer_no, holder, number, amount, phone in WATER_CUSTOMERS:
        mandate = {
            "bank_code": "0005",
            "branch_code": "135",
            "account_type": "1",
            "account_number": number,
            "holder_kana": holder,
        }
        status, made, _ = http("PUT", f"{daemon.api}/v1/mandates/{customer_no}", mandate, auth)
        if status != 201:
            raise RuntimeError(f"PUT /v1/mandates/{customer_no}: {status} {made}")
        say(
            f"  PUT /v1/mandates/{customer_no} ({holder}) -> {made['holder_kana']}, "
            f"{made['bank_name']} {made['branch_name']} {made['account_number']}"
        )
        body = {
            "bill_no": f"WTR-{day:%Y%m}-{customer_no}",
            "amount": amount,
            "due_date": day.isoformat(),
            # by transfer only; the customer whose mandate is revoked also at stores and Pay-easy
            "channels": ["cvs", "payeasy", "transfer"] if customer_no == last else ["transfer"],
            "customer": {"customer_no": customer_no, "phone": phone},
            "description": f"{day.month}月分 水道料金",
        }
        status, bill, _ = http("POST", daemon.api + "/v1/bills", body, auth)
        if status != 201:
            raise RuntimeError(f"POST /v1/bills {body['bill_no']}: {status} {bill}")
    http("DELETE", f"{daemon.api}/v1/mandates/{last}", None, auth)
    say(f"  DELETE /v1/mandates/{last} -> revoked: its bill is left for the other channels")

    say(f"$ gateway-admin zengin request --date {day}")
    made = admin_json(config, "zengin", "request", "--date", day.isoformat())
    for f in made["files"]:
        say(f"  {Path(f['file']).name}: {f['records']} debit(s), ¥{f['total']:,}")
    # The bank's answers, fixed so that every run shows them: the second debit is short of
    # funds (1), the third was stopped by its payer (3), the others go through (0).
    (request,) = made["files"]
    debits = parse_file(Path(request["file"]).read_bytes()).debits
    overrides = [f"{d.customer_number}={BANK_CODES.get(n, '0')}" for n, d in enumerate(debits)]
    say("$ python -m simulators.zengin --once --override ...  (the bank debits and answers)")
    summary = simulate(
        "simulators.zengin",
        "--outbox",
        str(workdir / "outbox" / "zengin"),
        "--inbox",
        str(workdir / "inbox" / "zengin"),
        "--work",
        str(workdir / "bank"),
        "--once",
        *(arg for o in overrides for arg in ("--override", o)),
    )
    say(
        f"  bank: {summary['debited_count']} debited (¥{summary['debited_total']:,}), "
        f"{summary['failed_count']} not (codes {summary['codes']})"
    )
    (result,) = [workdir / "inbox" / "zengin" / name for name in summary["results"]]
    applied(result, "result file")
    show_ledger(daemon, key)
    for customer_no, *_ in WATER_CUSTOMERS:
        _, m, _ = http("GET", f"{daemon.api}/v1/mandates/{customer_no}", None, auth)
        reason = f" ({m['status_reason']})" if m["status_reason"] else ""
        say(f"  mandate {customer_no}: {m['status']}{reason}")
    failed = summary["failed_count"]
    steps = Steps(say, simulate, applied, show_ledger)
    fall_back_to_stores(steps, daemon, workdir, config, key, link_port, sms, day, failed)


def settle_and_report(
    daemon: DaemonProcess, workdir: Path, config: Path, keys: dict[str, str]
) -> None:
    """Each biller's contract began last month (nothing was collected then): that month is
    settled now, its statement written; this month's settlement is shown as it stands."""
    today = datetime.now(JST).date()
    last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    say("\n== settlement: the center pays its billers out (docs/settlement.md)")
    plan = workdir / "plan.json"
    plan.write_text(json.dumps({**DEMO_PLAN, "effective_from": last_month.isoformat()}))
    say(
        f"  plan.json: monthly, payout T+3 bank days, ¥60 per store payment (¥10 per unpaid "
        f"slip, ¥200 stamp), ¥80 Pay-easy, ¥100 transfer, ¥500 per settlement, 10 % tax; "
        f"from {last_month}"
    )
    for biller_id in keys:
        admin_json(config, "contract", "set", "--biller", biller_id, "--plan", str(plan))
        say(f"$ gateway-admin contract set --biller {biller_id} --plan plan.json")
    say("$ gateway-admin settle")
    for s in admin_json(config, "settle")["created"]:
        period = f"{s['period']['start']}..{s['period']['end']}"
        say(
            f"  {s['biller_id']} {period}: ¥{s['collected']:,} collected, payout "
            f"¥{s['payout']:,} on {s['payout_date']} (¥{s['carried_out']:,} carried to the next)"
        )
        out = workdir / f"statement-{s['biller_id']}-{s['period']['start'][:7]}.pdf"
        admin(config, "statement", "--settlement", s["settlement_id"], "--output", str(out))
        say(f"$ gateway-admin statement --settlement {s['settlement_id']} -> {out.name}")
    for biller_id, key in keys.items():
        auth = {"Authorization": f"Bearer {key}"}
        _, up, _ = http("GET", daemon.api + "/v1/settlements/upcoming", None, auth)
        say(
            f"\n  GET /v1/settlements/upcoming ({biller_id}, {up['period']['start']}.."
            f"{up['period']['end']} so far, paid out on {up['payout_date']}):"
        )
        for line in up["lines"]:
            unit = f" × ¥{line['unit_amount']:,}" if line["unit_amount"] is not None else ""
            say(
                f"    {_pad(line['description'], 44)} {line['quantity']:>4}{unit:<10} "
                f"¥{line['amount']:>10,}"
            )
        say(f"    {_pad('支払予定額 (payout)', 59)} ¥{up['payout']:>10,}")
        query = f"from={today}&to={today}"
        _, report, _ = http("GET", f"{daemon.api}/v1/reports/daily-collections?{query}", None, auth)
        for r in report["data"]:
            say(
                f"    today {r['channel']:<8} chain/bank {r['chain'] or '-':<7} {r['count']:>3} "
                f"payment(s) ¥{r['amount']:>9,} (confirmed {r['confirmed_count']})"
            )


def show_ledger(daemon: DaemonProcess, key: str) -> None:
    """Every bill's state, its payments (a store payment with the agency it came from), the
    refund cases and the events feed."""
    auth = {"Authorization": f"Bearer {key}"}
    _, listed, _ = http("GET", daemon.api + "/v1/bills?limit=100", None, auth)
    for bill in listed["data"]:
        _, pays, _ = http("GET", f"{daemon.api}/v1/bills/{bill['bill_no']}/payments", None, auth)
        flags = " DOUBLE-PAID" if bill["double_paid"] else ""
        say(f"  {bill['bill_no']:<24} {bill['status']:<9} v{bill['version']}{flags}")
        for p in pays["data"]:
            if "store" in p:
                where = (
                    f"store: chain {p['store']['chain']} {p['store']['store_code']}"
                    f", agency {p['agency']}"
                )
            elif p["channel"] == "transfer":
                bank = p.get("bank", {})
                where = f"transfer: bank {bank.get('bank_code')} branch {bank.get('branch_code')}"
            else:
                bank = p.get("bank", {})
                where = f"Pay-easy: bank {bank.get('bank_code')} via {bank.get('channel')}"
            say(
                f"      {p['status']:<9} ¥{p['amount']:>9,}  paid {p['paid_at']}  {where}"
                + (f"  transfer {p['transfer_date']}" if p["transfer_date"] else "")
            )
    _, cases, _ = http("GET", daemon.api + "/v1/refund-cases", None, auth)
    for case in cases["data"]:
        state = case["status"] + (f" ({case['resolution']})" if case["resolution"] else "")
        say(
            f"  refund case {case['case_id']}: {case['reason']} ¥{case['amount']:,} "
            f"on {case['bill_no']}: {state}"
        )
    _, feed, _ = http("GET", daemon.api + "/v1/events?limit=500", None, auth)
    counts: dict[str, int] = {}
    for e in feed["data"]:
        counts[e["type"]] = counts.get(e["type"], 0) + 1
    say("  events feed: " + ", ".join(f"{n} {t}" for t, n in counts.items()))


def show(bill: dict[str, Any]) -> None:
    say(
        f"  {bill['bill_no']:<24} ¥{bill['amount']:>9,}  due {bill['due_date']}  "
        f"{bill['status']} v{bill['version']}"
    )
    if "cvs" in bill:
        stamp = "  (収入印紙 required)" if bill["cvs"]["stamp"] else ""
        say(f"      barcode  {bill['cvs']['human_readable']}{stamp}")
    if "payeasy" in bill:
        pe = bill["payeasy"]
        say(
            f"      Pay-easy 収納機関番号 {pe['institution_code']}  お客様番号 "
            f"{pe['customer_number']}  確認番号 {pe['confirmation_number']}"
        )
    say(f"      page     {bill['page_url']}")


def demonstrate_rules(daemon: DaemonProcess, auth: dict[str, str], first: dict[str, Any]) -> None:
    url = daemon.api + "/v1/bills"
    headers = dict(auth, **{"Idempotency-Key": f"demo-{first['bill_no']}"})
    status, _, hdrs = http("POST", url, first, headers)
    say(
        f"  replay of {first['bill_no']} with its Idempotency-Key -> {status}, "
        f"Idempotent-Replayed: {hdrs.get('Idempotent-Replayed')}"
    )
    status, problem, _ = http("POST", url, dict(first, amount=6_000), auth)
    say(
        f"  same bill_no, other amount -> {status}: {problem['errors'][0]['field']}: "
        f"{problem['errors'][0]['message']}"
    )
    no = bills_for("demo-gas", datetime.now(JST))
    status, bill, _ = http("POST", f"{url}/{no[1]['bill_no']}/reissue", {"amount": 13_200}, auth)
    say(f"  reissue {no[1]['bill_no']} at ¥13,200 -> {status}, reissue {bill['reissue']}:")
    show(bill)
    status, bill, _ = http("POST", f"{url}/{no[2]['bill_no']}/cancel", None, auth)
    say(f"  cancel {no[2]['bill_no']} -> {status}, status {bill['status']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gateway-demo", description=__doc__.splitlines()[0])
    p.add_argument("--dir", default="var/demo", help="working directory (recreated)")
    p.add_argument("--keep-running", action="store_true", help="leave the daemon up")
    args = p.parse_args(argv)
    try:
        return run(Path(args.dir).resolve(), args.keep_running)
    except (RuntimeError, OSError) as e:
        print(f"gateway-demo: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
