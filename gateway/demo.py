"""``gateway-demo``: the daemon on SQLite, two billers, bills registered over HTTP.

It runs the real programs as an operator and a biller's system would: ``gateway-admin`` to
migrate and onboard, ``twistd -n gateway`` as the daemon, HTTP for the bills. It prints each
bill's barcode, Pay-easy numbers and page URL, the events feed and a few metrics, then stops
the daemon with SIGTERM (``--keep-running`` leaves it up until Ctrl-C).

Simulated payments (stores, Pay-easy, bank transfers) join the demo with their networks.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.model import JST
from gateway.process import DaemonProcess, admin, admin_json, free_port, http

CONFIG = """\
# Written by gateway-demo. See conf/gateway.example.toml and docs/config.md.
[database]
url = "sqlite:///gateway.sqlite3"

[api]
listen = "tcp:{api}:interface=127.0.0.1"
public_url = "http://127.0.0.1:{api}"

[metrics]
listen = "tcp:{metrics}:interface=127.0.0.1"

[tls]
ca = "tls/ca.pem"
certificate = "tls/gateway.pem"
key = "tls/gateway.key"

[cvs]
company_code = "987654"

[mpn]
institution_code = "58191"
connect = "tcp:127.0.0.1:7002"
center_code = "0001"

[zengin]
outbox = "outbox/zengin"
inbox = "inbox/zengin"
"""

BILLERS = [
    ("demo-gas", "東京デモガス株式会社", "ﾄｳｷﾖｳﾃﾞﾓｶﾞｽ"),
    ("demo-school", "学校法人デモ学園", "ｶﾞﾂｺｳﾎｳｼﾞﾝﾃﾞﾓｶﾞｸｴﾝ"),
]


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
            )
        ]
    return [
        {
            "bill_no": f"SCH-{today:%Y}-TUITION-{n:03d}",
            "amount": amount,
            "due_date": due(30),
            "channels": ["cvs", "payeasy"],
            "customer": {"customer_no": f"S{n:04d}", "name": name},
            "description": "後期授業料",
        }
        for n, amount, name in ((1, 55_000, "高橋 美咲"), (2, 280_000, "田中 健"))
    ]


def run(workdir: Path, keep_running: bool) -> int:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    api_port, metrics_port = free_port(), free_port()
    config = workdir / "gateway.toml"
    config.write_text(CONFIG.format(api=api_port, metrics=metrics_port), encoding="utf-8")
    say(f"== gateway-demo in {workdir}  (config: {config})")

    say("\n$ gateway-admin migrate")
    migrated = admin_json(config, "migrate")
    say(f"  schema {migrated['from']} -> {migrated['to']}")
    say("$ gateway-admin certs make tls   (for the network links)")
    admin(config, "certs", "make", str(workdir / "tls"))
    keys: dict[str, str] = {}
    for biller_id, name, kana in BILLERS:
        made = admin_json(
            config, "biller", "create", "--id", biller_id, "--name", name, "--kana", kana
        )
        keys[biller_id] = admin_json(config, "key", "create", "--biller", biller_id)["key"]
        say(
            f"$ gateway-admin biller create --id {biller_id} ...  -> code {made['code']}, "
            f"channels {','.join(made['channels'])}; API key issued (shown once, kept here)"
        )

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
        say("\n== metrics (excerpt of " + daemon.metrics + "/metrics)")
        _, text, _ = http("GET", daemon.metrics + "/metrics")
        for line in str(text).splitlines():
            if line.startswith("gateway_http_requests_total{"):
                say("  " + line)
        say(
            "\nPayments: the simulated convenience-store, Pay-easy and bank networks join this "
            "demo as each network is built; today the bills above are issued and payable."
        )
        if keep_running:
            say("\nThe daemon keeps running; Ctrl-C stops it.")
            try:
                while daemon.proc is not None and daemon.proc.poll() is None:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
    finally:
        rc = daemon.stop()
        say(f"\n$ kill -TERM <twistd>  -> {'stopped cleanly' if rc == 0 else f'exit {rc}'}")
    return 0 if rc == 0 else 1


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
